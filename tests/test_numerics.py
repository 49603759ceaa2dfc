"""Variance formulas against float64 references."""

import numpy as np
import pytest
import torch

from bnguide import numerics


def test_two_pass_matches_numpy_float64():
    x = torch.randn(100, 3, dtype=torch.float64) * 5 + 2
    np.testing.assert_allclose(numerics.two_pass_variance(x).numpy(), x.numpy().var(axis=0))
    np.testing.assert_allclose(
        numerics.shortcut_variance(x).numpy(), x.numpy().var(axis=0), rtol=1e-10
    )


def test_multiple_dims():
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    expected = x.permute(1, 0, 2, 3).reshape(3, -1).var(1, correction=0)
    torch.testing.assert_close(numerics.two_pass_variance(x, (0, 2, 3)), expected)


def test_shortcut_fails_where_two_pass_does_not():
    gen = torch.Generator().manual_seed(0)
    x = 1e3 + 1e-2 * torch.randn(4096, generator=gen)  # float32
    exact = numerics.two_pass_variance(x.double())
    assert numerics.relative_error(numerics.shortcut_variance(x), exact) > 0.5
    assert numerics.relative_error(numerics.two_pass_variance(x), exact) < 1e-4


def test_sweep_error_grows_with_the_mean_for_the_shortcut_only():
    sweep = numerics.variance_error_sweep([1.0, 1e2, 1e4], std=1.0, n=512)
    assert sweep.shortcut[0] < 1e-5 < sweep.shortcut[1] < sweep.shortcut[2]
    assert sweep.two_pass.max() < 1e-5
    assert sweep.dtype == "float32"


def test_float64_sweep_is_accurate_far_longer():
    sweep = numerics.variance_error_sweep([1e3], std=1.0, dtype=torch.float64)
    assert sweep.shortcut[0] < 1e-6


def test_relative_error():
    assert numerics.relative_error(
        torch.tensor([1.1, 2.0]), torch.tensor([1.0, 2.0])
    ) == pytest.approx(0.1)
