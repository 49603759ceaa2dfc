"""Invariants batch norm must satisfy for any input (hypothesis), in NumPy and in PyTorch."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bnguide import numpy_bn
from bnguide.functional import batch_norm

EPS = 1e-10  # tiny, so the identities below hold to float64 precision


@st.composite
def batches(draw):
    """A float64 (N, C) or (N, C, L) batch whose channels have a clear spread."""
    n = draw(st.integers(2, 12))
    c = draw(st.integers(1, 4))
    shape = (n, c) if draw(st.booleans()) else (n, c, draw(st.integers(1, 3)))
    x = draw(arrays(np.float64, shape, elements=st.floats(-100, 100, allow_subnormal=False)))
    axes = numpy_bn.reduce_axes(len(shape))
    spread = x.std(axis=axes)
    # a channel with (nearly) constant values has no scale to normalize: not this test's topic
    if np.any(spread < 1e-3 * (1 + np.abs(x).max())):
        x = x + np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(shape)
    return x


def _bn(x, eps=EPS):
    c = x.shape[1]
    return numpy_bn.batchnorm_forward(x, np.ones(c), np.zeros(c), eps=eps)


def _bn_torch(x, eps=EPS):
    return batch_norm(torch.from_numpy(x), None, None, training=True, eps=eps).numpy()


@settings(max_examples=60, deadline=None)
@given(batches())
def test_output_has_zero_mean_unit_variance_per_channel(x):
    axes = numpy_bn.reduce_axes(x.ndim)
    var = x.var(axis=axes)
    for out in (_bn(x)[0], _bn_torch(x)):
        np.testing.assert_allclose(out.mean(axis=axes), 0.0, atol=1e-9)
        # exactly 1 without eps; var / (var + eps) with it
        np.testing.assert_allclose(out.var(axis=axes), var / (var + EPS), rtol=1e-9)
        np.testing.assert_allclose(out.var(axis=axes), 1.0, rtol=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    batches(),
    st.lists(st.floats(0.01, 100.0), min_size=4, max_size=4),
    st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4),
)
def test_invariant_to_positive_rescaling_and_shift_per_channel(x, scales, shifts):
    c = x.shape[1]
    shape = (1, c) + (1,) * (x.ndim - 2)
    a = np.array(scales[:c]).reshape(shape)
    b = np.array(shifts[:c]).reshape(shape)
    # eps scales like the variance: BN(a x + b, eps a^2) = BN(x, eps). One eps serves all
    # channels here, so the others see an even tinier eps; both are negligible next to var.
    y = a * x + b
    eps = EPS * a.min() ** 2
    expected = _bn(x)[0]
    np.testing.assert_allclose(_bn(y, eps)[0], expected, atol=1e-6)
    np.testing.assert_allclose(_bn_torch(y, eps), expected, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(batches(), st.integers(0, 2**16))
def test_input_gradient_sums_to_zero_and_is_orthogonal_to_x_hat(x, seed):
    c = x.shape[1]
    axes = numpy_bn.reduce_axes(x.ndim)
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.5, 2.0, c)
    dout = rng.standard_normal(x.shape)
    out, cache = numpy_bn.batchnorm_forward(x, gamma, np.zeros(c), eps=EPS)
    xt = torch.from_numpy(x).requires_grad_()
    batch_norm(xt, None, None, torch.from_numpy(gamma), training=True, eps=EPS).backward(
        torch.from_numpy(dout)
    )
    # size of the terms that cancel, and the part eps leaves over (exactly 0 when eps = 0)
    scale = np.abs(dout).sum(axis=axes) * gamma * cache.inv_std.ravel()
    leftover = EPS / x.var(axis=axes)
    for dx in (
        numpy_bn.batchnorm_backward(dout, cache)[0],
        numpy_bn.batchnorm_backward_graph(dout, cache)[0],
        xt.grad.numpy(),
    ):
        np.testing.assert_array_less(np.abs(dx.sum(axis=axes)), 1e-9 * scale + 1e-12)
        dot = (dx * cache.x_hat).sum(axis=axes)
        np.testing.assert_array_less(np.abs(dot), (1e-9 + leftover) * scale + 1e-12)
