"""Theorem 4.1 of Santurkar et al. (2018), checked numerically.

Take one unit of a linear layer, its pre-normalization values :math:`y \\in \\mathbb{R}^m` over a
batch, and batch norm :math:`z = \\gamma \\hat y + \\beta` with
:math:`\\hat y = (y - \\mu)/\\sigma`, :math:`\\sigma^2 = \\operatorname{var}(y) + \\epsilon`. If the
layers after it are the same with and without BN, the gradient :math:`g = \\partial \\hat L /
\\partial z` is the gradient the standard network would see, and

.. math:: \\Big\\lVert \\frac{\\partial \\hat L}{\\partial y} \\Big\\rVert^2 \\le
    \\frac{\\gamma^2}{\\sigma^2}\\Big(\\lVert g\\rVert^2 - \\frac{1}{m}\\langle 1, g\\rangle^2
    - \\frac{1}{m}\\langle g, \\hat y\\rangle^2\\Big),

with equality when :math:`\\epsilon = 0`: BN rescales the gradient by :math:`\\gamma/\\sigma` and
removes its components along the constant vector and along :math:`\\hat y`. The left side is
computed here by autograd through the batch-norm forward pass, independently of the formula.
Used in chapter *Why BN works: a smoother landscape*.

Examples
--------
>>> from bnguide.theory import random_instances, theorem_4_1
>>> y, grad_out, gamma = random_instances(n=100)
>>> check = theorem_4_1(y, grad_out, gamma)
>>> bool((check.lhs <= check.rhs * (1 + 1e-9)).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Theorem41", "random_instances", "theorem_4_1"]


@dataclass
class Theorem41:
    """Both sides of Theorem 4.1 for a batch of instances (all tensors ``(n,)``).

    Attributes
    ----------
    lhs : Tensor
        :math:`\\lVert \\partial \\hat L / \\partial y \\rVert^2`, by autograd.
    rhs : Tensor
        The bound.
    scaled_norm : Tensor
        :math:`(\\gamma^2/\\sigma^2) \\lVert g\\rVert^2`: the bound without the subtracted terms.
    mean_term : Tensor
        :math:`(\\gamma^2/\\sigma^2) \\frac1m \\langle 1, g\\rangle^2`.
    projection_term : Tensor
        :math:`(\\gamma^2/\\sigma^2) \\frac1m \\langle g, \\hat y\\rangle^2`.
    m : int
        Batch size.
    """

    lhs: Tensor
    rhs: Tensor
    scaled_norm: Tensor
    mean_term: Tensor
    projection_term: Tensor
    m: int

    def holds(self, rtol: float = 1e-9) -> Tensor:
        """``(n,)`` booleans: ``lhs <= rhs`` up to a relative rounding tolerance."""
        return self.lhs <= self.rhs * (1 + rtol) + 1e-300


def theorem_4_1(y: Tensor, grad_out: Tensor, gamma: Tensor, eps: float = 0.0) -> Theorem41:
    """Evaluate both sides of Theorem 4.1 for ``n`` independent units.

    Parameters
    ----------
    y : Tensor
        ``(n, m)``: row ``i`` is one unit's values over a batch of ``m``.
    grad_out : Tensor
        ``(n, m)``: the gradient of the loss with respect to the BN output ``z``.
    gamma : Tensor
        ``(n,)``: BN's scale for each unit (beta does not enter).
    eps : float
        BN's epsilon (0 gives equality).

    Returns
    -------
    Theorem41
    """
    if y.dim() != 2 or grad_out.shape != y.shape or gamma.shape != y.shape[:1]:
        raise ValueError(
            "theorem_4_1 expects y and grad_out of shape (n, m) and gamma of shape (n,), got "
            f"{tuple(y.shape)}, {tuple(grad_out.shape)}, {tuple(gamma.shape)}."
        )
    n, m = y.shape
    if m < 2:
        raise ValueError(f"the batch needs at least 2 values per unit, got m={m}.")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}.")
    y = y.detach().requires_grad_(True)
    # BN forward written as plain tensor operations (torch's batch_norm refuses eps = 0);
    # autograd differentiates it, so the left side does not use the formula being checked
    centered = y - y.mean(dim=1, keepdim=True)  # (n, m)
    z = gamma[:, None] * centered / (centered.square().mean(dim=1, keepdim=True) + eps).sqrt()
    (dy,) = torch.autograd.grad(z, y, grad_outputs=grad_out)  # (n, m)
    with torch.no_grad():
        var = y.var(dim=1, unbiased=False) + eps  # (n,)
        y_hat = (y - y.mean(dim=1, keepdim=True)) / var.sqrt()[:, None]  # (n, m)
        scale = gamma.square() / var  # (n,)
        scaled_norm = scale * grad_out.square().sum(1)
        mean_term = scale * grad_out.sum(1).square() / m
        projection_term = scale * (grad_out * y_hat).sum(1).square() / m
    return Theorem41(
        lhs=dy.square().sum(1).detach(),
        rhs=scaled_norm - mean_term - projection_term,
        scaled_norm=scaled_norm,
        mean_term=mean_term,
        projection_term=projection_term,
        m=m,
    )


def random_instances(
    n: int = 1000, m: int = 32, *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor, Tensor]:
    """Random units, upstream gradients and gammas that exercise every term of the bound.

    Values have a random scale (log-uniform over 1e-2..1e2) and offset; the gradient is
    Gaussian plus random multiples of the constant vector and of the normalized values, so that
    both subtracted terms are sizeable; gamma is log-uniform over 1e-1..1e1.

    Parameters
    ----------
    n : int, optional
        Number of units.
    m : int, optional
        Batch size.
    seed : int, optional
        Seed of the random draws.
    dtype : torch.dtype, optional
        Precision of the tensors.

    Returns
    -------
    y, grad_out : Tensor
        ``(n, m)``.
    gamma : Tensor
        ``(n,)``.
    """
    if n < 1 or m < 2:
        raise ValueError(f"need n >= 1 instances of m >= 2 values, got n={n}, m={m}.")
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=gen, dtype=dtype)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    scale = 10 ** (4 * rand(n, 1) - 2)  # (n, 1)
    y = scale * randn(n, m) + 10 * randn(n, 1)  # (n, m)
    y_std = (y - y.mean(1, keepdim=True)) / y.std(1, unbiased=False, keepdim=True)
    grad_out = randn(n, m) + 3 * randn(n, 1) + 3 * randn(n, 1) * y_std  # (n, m)
    gamma = 10 ** (2 * rand(n) - 1)  # (n,)
    return y, grad_out, gamma
