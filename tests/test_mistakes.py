"""Each deliberate mistake really differs from the correct reference (and only as described)."""

import numpy as np
import torch

from bnguide import mistakes, numpy_bn


def test_unbiased_variance_shrinks_outputs_by_sqrt_n_minus_1_over_n():
    x = torch.randn(32, 5, dtype=torch.float64) * 2 + 3
    right = torch.nn.functional.batch_norm(x, None, None, training=True, eps=0.0 + 1e-12)
    wrong = mistakes.batch_norm_unbiased_variance(x, eps=1e-12)
    torch.testing.assert_close(wrong, right * (31 / 32) ** 0.5)


def test_shortcut_variance_is_fine_in_float64_and_wrong_in_float32():
    x64 = torch.randn(64, 3, dtype=torch.float64) + 2
    torch.testing.assert_close(
        mistakes.batch_norm_shortcut_variance(x64),
        torch.nn.functional.batch_norm(x64, None, None, training=True),
    )
    x32 = 1e3 + 1e-2 * torch.randn(256, 3, generator=torch.Generator().manual_seed(0))
    exact = torch.nn.functional.batch_norm(x32.double(), None, None, training=True)
    assert (mistakes.batch_norm_shortcut_variance(x32).double() - exact).abs().max() > 0.5


def test_backward_ignoring_variance_differs_only_for_non_constant_upstream_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    _, cache = numpy_bn.batchnorm_forward(x, gamma, beta)
    right = numpy_bn.batchnorm_backward(np.ones_like(x), cache)
    wrong = mistakes.backward_ignoring_variance(np.ones_like(x), cache)
    for a, b in zip(right, wrong, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
    dout = rng.standard_normal(x.shape)
    right_dx = numpy_bn.batchnorm_backward(dout, cache)[0]
    assert np.abs(mistakes.backward_ignoring_variance(dout, cache)[0] - right_dx).max() > 1e-2
    # the parameter gradients are right even in the wrong version
    for a, b in zip(
        numpy_bn.batchnorm_backward(dout, cache)[1:],
        mistakes.backward_ignoring_variance(dout, cache)[1:],
        strict=True,
    ):
        np.testing.assert_allclose(a, b)


def test_zero_var_init_differs_from_torch_only_in_running_var():
    buggy, ref = mistakes.ZeroVarInitBatchNorm1d(3), torch.nn.BatchNorm1d(3)
    assert torch.equal(buggy.running_var, torch.zeros(3))
    assert torch.equal(buggy.running_mean, ref.running_mean)
    x = torch.randn(8, 3)
    torch.testing.assert_close(buggy(x), ref(x))  # training output unaffected
    buggy.reset_running_stats()
    assert torch.equal(buggy.running_var, torch.zeros(3))
    buggy.eval()
    ref.eval()
    assert buggy(x).abs().max() > 100 * ref(x).abs().max() / 2
