"""Lp normalization: batch norm with the standard deviation replaced by an average Lp norm.

Santurkar et al. (2018, section 3.3) normalize each channel by subtracting its batch mean and
dividing by the average Lp norm of the centred values, for p = 1, 2 and infinity, and find that
these layers train as well as batch norm although they do not control the variance. We read
"average Lp norm" as the power mean over the channel's m values,

.. math:: s_p = \\Big(\\frac{1}{m}\\sum_i |x_i - \\mu|^p\\Big)^{1/p}, \\qquad
    s_\\infty = \\max_i |x_i - \\mu|,

so that p = 2 is the (biased) standard deviation and :class:`LpNorm1d` with ``p=2`` computes
what batch norm computes, except that ``eps`` is added to the scale rather than to the variance.
Used in chapter *Why BN works: a smoother landscape*.

Examples
--------
>>> import torch
>>> from bnguide.norms.lp import LpNorm1d
>>> layer = LpNorm1d(4, p=1)
>>> layer(torch.randn(32, 4)).shape  # (N, C)
torch.Size([32, 4])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bnguide.nn import NormBase

__all__ = ["LpNorm1d", "LpNorm2d", "lp_norm", "lp_scale"]


def _check_p(p: float) -> float:
    if isinstance(p, str):
        if p.lower() not in ("inf", "infinity"):
            raise ValueError(f"p must be a number >= 1 or 'inf', got {p!r}.")
        return math.inf
    if not (p >= 1):  # also rejects NaN
        raise ValueError(
            f"p must be >= 1 (or math.inf), got {p}: for p < 1 the average Lp 'norm' is not a "
            "norm. Use p=1, p=2 or p=math.inf as in Santurkar et al. (2018)."
        )
    return float(p)


def _dims(input: Tensor) -> list[int]:
    # batch and every spatial dimension: one statistic per channel (dimension 1)
    return [0, *range(2, input.dim())]


def _per_channel(t: Tensor, ndim: int) -> Tensor:
    return t.view((1, -1) + (1,) * (ndim - 2))  # (C,) -> (1, C, 1, ...)


def lp_scale(centered: Tensor, p: float) -> Tensor:
    """The average Lp norm of each channel of an already centred tensor.

    Parameters
    ----------
    centered : Tensor
        ``(N, C, *spatial)`` values whose channel means are zero.
    p : float
        ``1``, ``2``, any number >= 1, or ``math.inf`` / ``"inf"``.

    Returns
    -------
    Tensor
        ``(C,)``: :math:`(\\frac{1}{m}\\sum_i |x_i|^p)^{1/p}` over the batch and spatial
        positions of each channel (the maximum of ``|x_i|`` for p = inf).
    """
    p = _check_p(p)
    dims = _dims(centered)
    if p == math.inf:
        return centered.abs().amax(dims)
    if p == 1:
        return centered.abs().mean(dims)
    if p == 2:
        return centered.square().mean(dims).sqrt()
    return centered.abs().pow(p).mean(dims).pow(1.0 / p)


def lp_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_scale: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    p: float = 2,
) -> Tensor:
    """Lp normalization, with the argument order of :func:`torch.nn.functional.batch_norm`.

    .. math:: y = \\gamma\\,\\frac{x - \\mu_B}{s_p + \\epsilon} + \\beta

    Parameters
    ----------
    input : Tensor
        ``(N, C)`` or ``(N, C, *spatial)``; statistics are per channel over all other dims.
    running_mean, running_scale : Tensor or None
        ``(C,)`` running estimates. Updated in place (momentum weights the new batch, as in
        PyTorch) in training mode when given; used instead of the batch statistics in
        evaluation mode.
    weight, bias : Tensor or None
        ``(C,)`` gamma and beta.
    training : bool
        Use (and record) batch statistics; otherwise use the running ones.
    momentum : float
        Weight of the new batch in the running estimates.
    eps : float
        Added to the scale.
    p : float
        Which average norm divides: ``1``, ``2``, ... or ``math.inf``.

    Returns
    -------
    Tensor
        Same shape as ``input``.
    """
    p = _check_p(p)
    if input.dim() < 2:
        raise ValueError(
            f"lp_norm: expected input of shape (N, C) or (N, C, *spatial), got shape "
            f"{tuple(input.shape)}. Add a batch dimension, e.g. x[None]."
        )
    ndim = input.dim()
    if training or running_mean is None or running_scale is None:
        if input.numel() // input.shape[1] < 2:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size "
                f"{tuple(input.shape)}. Batch statistics need at least 2 examples."
            )
        mean = input.mean(_dims(input))  # (C,)
        centered = input - _per_channel(mean, ndim)  # (N, C, *)
        scale = lp_scale(centered, p)  # (C,)
        if training and running_mean is not None and running_scale is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                running_scale.mul_(1 - momentum).add_(scale.detach(), alpha=momentum)
    else:
        centered = input - _per_channel(running_mean, ndim)
        scale = running_scale
    factor = 1.0 / (scale + eps) if weight is None else weight / (scale + eps)  # (C,)
    if bias is None:
        return centered * _per_channel(factor, ndim)  # (N, C, *)
    return torch.addcmul(_per_channel(bias, ndim), centered, _per_channel(factor, ndim))


class _LpNorm(NormBase):
    """Shared code of :class:`LpNorm1d` and :class:`LpNorm2d` (mirrors ``torch.nn._BatchNorm``)."""

    _expected_dims: tuple[int, ...] = ()
    _version = 2  # num_batches_tracked: version-1 checkpoints load, as torch's batch norm
    _repr_positional = ("num_features",)
    _repr_keywords = ("p", "eps", "momentum", "affine", "track_running_stats")

    def __init__(
        self,
        num_features: int,
        p: float = 2,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        self.num_features = num_features
        self.p = _check_p(p)
        self.eps = eps
        self.momentum = momentum
        stats = {"running_mean": 0.0, "running_scale": 1.0}
        super().__init__(num_features, affine, True, stats, track_running_stats, device, dtype)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in self._expected_dims:
            wanted = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ValueError(f"expected {wanted} input (got {input.dim()}D input)")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) got {input.shape[1]} channels in "
                f"dimension 1 of input shape {tuple(input.shape)}; create it with "
                f"num_features={input.shape[1]}."
            )

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        momentum = self._momentum_step()  # momentum, or 1/t for a cumulative average
        use_batch = self.training or self.running_mean is None
        return lp_norm(
            input,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_scale if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch,
            momentum,
            self.eps,
            self.p,
        )


class LpNorm1d(_LpNorm):
    """Lp normalization over ``(N, C)`` or ``(N, C, L)`` inputs, one statistic per channel.

    Parameters
    ----------
    num_features : int
        ``C``.
    p : float
        ``1``, ``2`` or ``math.inf`` (any p >= 1 works).
    eps, momentum, affine, track_running_stats, device, dtype
        As in :class:`torch.nn.BatchNorm1d`; the buffers are ``running_mean``,
        ``running_scale`` (the running average Lp norm, initialised to 1) and
        ``num_batches_tracked``.

    Shape
    -----
    input and output: ``(N, C)`` or ``(N, C, L)``.
    """

    _expected_dims = (2, 3)


class LpNorm2d(_LpNorm):
    """Lp normalization over ``(N, C, H, W)`` inputs (height and width act as batch dims).

    Parameters are those of :class:`LpNorm1d`.

    Shape
    -----
    input and output: ``(N, C, H, W)``.
    """

    _expected_dims = (4,)
