"""Ioffe & Szegedy's section 3.3, checked in float64: BN makes a layer blind to the scale of its
weights.

For a scalar ``a > 0`` and ``eps = 0``, ``BN((aW) u) = BN(W u)``: the mean and the standard
deviation both scale by ``a``. Hence the layer Jacobian ``d BN / d u`` does not depend on
``a``, and the gradient with respect to the scaled weights is ``1/a`` times the gradient with
respect to ``W``: larger weights get smaller gradients, which keeps their growth in check and
makes large learning rates safe. It also makes each unit's weight gradient orthogonal to its
weights (the loss is constant along ``W``'s own direction). Used in chapter *Scale invariance*.

Examples
--------
>>> from bnguide.scale_invariance import check_rescaling
>>> check = check_rescaling(scales=(0.01, 100.0))
>>> bool(check.gradient_error.max() < 1e-12)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["RescalingCheck", "check_rescaling"]


@dataclass
class RescalingCheck:
    """Relative errors of the section-3.3 identities, one entry per scale ``a``.

    Attributes
    ----------
    scales : numpy.ndarray
        The scales ``a``.
    output_error : numpy.ndarray
        ``max |BN(aWu) - BN(Wu)| / max |BN(Wu)|``.
    jacobian_error : numpy.ndarray
        Relative error between ``d BN(aWu) / du`` and ``d BN(Wu) / du`` (as a vector-Jacobian
        product with a random upstream gradient).
    gradient_error : numpy.ndarray
        ``|| a * dL/d(aW) - dL/dW || / || dL/dW ||``: zero when the gradient scales by ``1/a``.
    orthogonality : float
        ``max_j |<dL/dW_j, W_j>| / (||dL/dW_j|| ||W_j||)`` over units ``j``: zero when every
        unit's weight gradient is orthogonal to its weights.
    eps : float
    """

    scales: np.ndarray
    output_error: np.ndarray
    jacobian_error: np.ndarray
    gradient_error: np.ndarray
    orthogonality: float
    eps: float


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def check_rescaling(
    scales: Sequence[float] = (1e-3, 1e-1, 10.0, 1e3),
    *,
    n: int = 64,
    d_in: int = 20,
    d_out: int = 10,
    eps: float = 0.0,
    seed: int = 0,
) -> RescalingCheck:
    """Check ``BN(aWu) = BN(Wu)`` and ``dL/d(aW) = (1/a) dL/dW`` in float64.

    The layer is ``y = gamma * BN(u W) + beta`` followed by a sigmoid and a random linear loss
    ``L = sum(R * sigmoid(y))``, all random from ``seed``; BN uses the batch's statistics.

    Parameters
    ----------
    scales : sequence of float
        The factors ``a``, positive.
    n, d_in, d_out : int
        Batch size, inputs and units of the layer.
    eps : float
        BN's epsilon. The identities are exact only for ``eps = 0``; a positive ``eps``
        breaks them once ``a`` makes the variance comparable to ``eps``.
    seed : int

    Returns
    -------
    RescalingCheck
    """
    scales = np.asarray(scales, dtype=float)
    if scales.ndim != 1 or len(scales) == 0 or not (scales > 0).all():
        raise ValueError(f"scales must be a non-empty list of positive numbers, got {scales}.")
    if n < 2:
        raise ValueError(f"n must be at least 2 (batch statistics), got {n}.")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}.")
    gen = torch.Generator().manual_seed(int(seed))
    kw = {"generator": gen, "dtype": torch.float64}
    u = torch.randn(n, d_in, **kw) + 0.5  # (N, d_in)
    w = torch.randn(d_in, d_out, **kw) / d_in**0.5  # (d_in, d_out)
    gamma, beta = torch.rand(d_out, **kw) + 0.5, torch.randn(d_out, **kw)
    r = torch.randn(n, d_out, **kw)  # random upstream weights of the loss
    g_out = torch.randn(n, d_out, **kw)  # random upstream gradient for the Jacobian

    def bn(z):  # (N, d_out), batch statistics, biased variance as in the paper
        mean, var = z.mean(0), z.var(0, unbiased=False)
        return (z - mean) / torch.sqrt(var + eps)

    def layer(weight, inputs):
        return bn(inputs @ weight)

    def gradients(weight):
        weight = weight.clone().requires_grad_(True)
        inputs = u.clone().requires_grad_(True)
        out = layer(weight, inputs)
        loss = (r * torch.sigmoid(gamma * out + beta)).sum()
        (g_w,) = torch.autograd.grad(loss, weight, retain_graph=True)
        (g_u,) = torch.autograd.grad(out, inputs, g_out)
        return out.detach(), g_w, g_u

    out1, g_w1, g_u1 = gradients(w)
    errors = {"output": [], "jacobian": [], "gradient": []}
    for a in scales:
        out_a, g_wa, g_ua = gradients(a * w)
        errors["output"].append(float((out_a - out1).abs().max() / out1.abs().max()))
        errors["jacobian"].append(_rel(g_ua, g_u1))
        errors["gradient"].append(_rel(a * g_wa, g_w1))
    cos = (g_w1 * w).sum(0) / (g_w1.norm(dim=0) * w.norm(dim=0))  # (d_out,)
    return RescalingCheck(
        scales=scales,
        output_error=np.array(errors["output"]),
        jacobian_error=np.array(errors["jacobian"]),
        gradient_error=np.array(errors["gradient"]),
        orthogonality=float(cos.abs().max()),
        eps=float(eps),
    )
