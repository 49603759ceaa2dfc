"""Tests of bnguide.theory: Theorem 4.1 of Santurkar et al. 2018 on random instances."""

import pytest
import torch
import torch.nn.functional as F

from bnguide.theory import random_instances, theorem_4_1


def test_equality_without_eps():
    y, g, gamma = random_instances(300, 16, seed=0)
    check = theorem_4_1(y, g, gamma, eps=0.0)
    torch.testing.assert_close(check.lhs, check.rhs, rtol=1e-9, atol=0)
    assert bool(check.holds().all())


@pytest.mark.parametrize("eps", [1e-5, 1e-2, 1.0])
def test_bound_holds_with_eps(eps):
    y, g, gamma = random_instances(300, 8, seed=1)
    check = theorem_4_1(y, g, gamma, eps=eps)
    assert bool(check.holds().all())
    assert bool((check.lhs <= check.scaled_norm).all())


def test_left_side_is_torch_batch_norm_gradient():
    y, g, gamma = random_instances(20, 12, seed=2)
    check = theorem_4_1(y, g, gamma, eps=1e-3)
    yt = y.T.clone().requires_grad_(True)  # (m, n): units are channels
    z = F.batch_norm(yt, None, None, weight=gamma, training=True, eps=1e-3)
    (dy,) = torch.autograd.grad(z, yt, g.T)
    torch.testing.assert_close(check.lhs, dy.T.square().sum(1))


def test_subtracted_terms_are_non_negative_and_sizeable():
    y, g, gamma = random_instances(200, 32, seed=3)
    check = theorem_4_1(y, g, gamma)
    assert bool((check.mean_term >= 0).all()) and bool((check.projection_term >= 0).all())
    # the generator makes both terms matter, not just the scaling by gamma / sigma
    assert float((check.mean_term / check.scaled_norm).median()) > 0.1
    assert float((check.projection_term / check.scaled_norm).median()) > 0.1


def test_a_larger_weight_on_the_projection_term_breaks_the_bound():
    # the algebra gives exactly 1/m; any larger weight (e.g. 1/sqrt(m)) is violated
    y, g, gamma = random_instances(100, 16, seed=4)
    check = theorem_4_1(y, g, gamma)
    stronger = check.scaled_norm - check.mean_term - check.m**0.5 * check.projection_term
    assert bool((check.lhs > stronger).all())


def test_bad_inputs_are_rejected():
    y, g, gamma = random_instances(4, 5)
    with pytest.raises(ValueError, match=r"shape \(n, m\)"):
        theorem_4_1(y, g[:, :3], gamma)
    with pytest.raises(ValueError, match="at least 2 values"):
        theorem_4_1(y[:, :1], g[:, :1], gamma)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        theorem_4_1(y, g, gamma, eps=-1.0)
    with pytest.raises(ValueError, match="need n >= 1 instances of m >= 2"):
        random_instances(3, 1)
