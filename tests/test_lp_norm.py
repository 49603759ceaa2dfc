"""Tests of bnguide.norms.lp: the L1 / L2 / L-infinity normalizations of Santurkar et al. 2018."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bnguide.norms.lp import LpNorm1d, LpNorm2d, lp_norm, lp_scale

P_VALUES = [1.0, 2.0, 3.0, math.inf]


def _reference(x: np.ndarray, p: float, eps: float, gamma: np.ndarray, beta: np.ndarray):
    """NumPy float64 reference for an (N, C) input, written from the definition."""
    mu = x.mean(axis=0)
    c = x - mu
    if p == math.inf:
        s = np.abs(c).max(axis=0)
    else:
        s = (np.abs(c) ** p).mean(axis=0) ** (1 / p)
    return gamma * c / (s + eps) + beta


@pytest.mark.parametrize("p", P_VALUES)
def test_matches_numpy_reference(p):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(37, 5, generator=gen, dtype=torch.float64) * 3 + 2
    gamma = torch.rand(5, generator=gen, dtype=torch.float64) + 0.5
    beta = torch.randn(5, generator=gen, dtype=torch.float64)
    out = lp_norm(x, None, None, gamma, beta, training=True, eps=1e-3, p=p)
    ref = _reference(x.numpy(), p, 1e-3, gamma.numpy(), beta.numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_l2_is_batch_norm_up_to_eps_placement():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 7, generator=gen, dtype=torch.float64) * 5 - 1
    ours = LpNorm1d(7, p=2, eps=0.0).double()
    theirs = torch.nn.BatchNorm1d(7, eps=1e-300).double()
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("p", P_VALUES)
def test_output_has_zero_mean_and_unit_average_norm(p):
    x = torch.randn(50, 4, dtype=torch.float64) * 10 + 3
    out = lp_norm(x, None, None, training=True, eps=0.0, p=p)
    torch.testing.assert_close(out.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(lp_scale(out, p), torch.ones(4, dtype=torch.float64))


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(1e-2, 1e3),
    shift=st.floats(-1e3, 1e3),
    p=st.sampled_from(P_VALUES),
    seed=st.integers(0, 1000),
)
def test_invariant_to_positive_scale_and_shift(scale, shift, p, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    a = lp_norm(x, None, None, training=True, eps=0.0, p=p)
    b = lp_norm(scale * x + shift, None, None, training=True, eps=0.0, p=p)
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("p", P_VALUES)
def test_gradcheck(p):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(9, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, generator=gen, dtype=torch.float64).add_(0.5).requires_grad_()
    b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: lp_norm(x, None, None, w, b, training=True, eps=1e-3, p=p), (x, w, b)
    )


def test_running_statistics_follow_pytorch_momentum_convention():
    layer = LpNorm1d(3, p=1, momentum=0.25)
    x = torch.randn(20, 3)
    layer(x)
    mean = x.mean(0)
    scale = (x - mean).abs().mean(0)
    torch.testing.assert_close(layer.running_mean, 0.25 * mean)
    torch.testing.assert_close(layer.running_scale, 0.75 * torch.ones(3) + 0.25 * scale)
    assert int(layer.num_batches_tracked) == 1
    assert layer.running_mean.grad_fn is None


def test_cumulative_average_when_momentum_is_none():
    layer = LpNorm1d(2, p=2, momentum=None)
    xs = [torch.randn(10, 2) for _ in range(3)]
    for x in xs:
        layer(x)
    torch.testing.assert_close(layer.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))


def test_eval_mode_uses_running_statistics():
    layer = LpNorm1d(3, p=float("inf"), eps=0.0)
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
        layer.running_scale.copy_(torch.tensor([2.0, 4.0, 8.0]))
    layer.eval()
    x = torch.randn(5, 3)
    torch.testing.assert_close(layer(x), (x - layer.running_mean) / layer.running_scale)


def test_no_running_statistics_means_batch_statistics_in_eval():
    layer = LpNorm1d(3, track_running_stats=False).eval()
    assert layer.running_mean is None and layer.running_scale is None
    x = torch.randn(8, 3)
    torch.testing.assert_close(layer(x), lp_norm(x, None, None, training=True))


def test_state_dict_and_repr():
    layer = LpNorm1d(4, p=1)
    assert set(layer.state_dict()) == {
        "weight",
        "bias",
        "running_mean",
        "running_scale",
        "num_batches_tracked",
    }
    assert repr(layer) == (
        "LpNorm1d(4, p=1.0, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    )
    assert LpNorm1d(2, affine=False).weight is None


def test_2d_treats_positions_as_examples():
    x = torch.randn(4, 3, 5, 6, dtype=torch.float64)
    out2d = LpNorm2d(3, p=1).double()(x)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 3)  # (N*H*W, C)
    out1d = LpNorm1d(3, p=1).double()(flat).reshape(4, 5, 6, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(out2d, out1d)


def test_3d_input_statistics_over_batch_and_length():
    x = torch.randn(3, 2, 7, dtype=torch.float64)
    out = lp_norm(x, None, None, training=True, eps=0.0, p=2)
    flat = x.permute(0, 2, 1).reshape(-1, 2)
    ref = lp_norm(flat, None, None, training=True, eps=0.0, p=2).reshape(3, 7, 2).permute(0, 2, 1)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("p", [0.5, -1.0, float("nan")])
def test_rejects_p_below_one(p):
    with pytest.raises(ValueError, match="p must be >= 1"):
        LpNorm1d(3, p=p)


def test_accepts_inf_as_string_and_rejects_other_strings():
    assert LpNorm1d(3, p="inf").p == math.inf
    with pytest.raises(ValueError, match="p must be a number >= 1 or 'inf'"):
        LpNorm1d(3, p="two")


def test_wrong_input_dimensions_message_matches_torch():
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        LpNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        LpNorm2d(3)(torch.randn(2, 3))


def test_wrong_channel_count_says_how_to_fix():
    with pytest.raises(ValueError, match="num_features=5"):
        LpNorm1d(3)(torch.randn(4, 5))


def test_single_value_per_channel_in_training():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        LpNorm1d(3)(torch.randn(1, 3))


def test_functional_rejects_1d_input():
    with pytest.raises(ValueError, match="Add a batch dimension"):
        lp_norm(torch.randn(5), None, None, training=True)
