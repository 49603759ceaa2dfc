"""Helpers shared by the normalizers of :mod:`bnguide.norms` (chapter *The other normalizers*)."""

from __future__ import annotations

import torch

__all__ = ["channel_view", "mean_and_biased_var"]


def mean_and_biased_var(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased (divide-by-count) variance over ``dims``, both kept as size-1 dims.

    Two-pass: the variance is the mean of squared deviations, never ``E[x^2] - E[x]^2``,
    which cancels catastrophically in float32 when the mean is large. TorchScript compiles it.
    """
    mean = x.mean(dims, keepdim=True)
    var = (x - mean).square().mean(dims, keepdim=True)
    return mean, var


def channel_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape a per-channel vector ``(C,)`` to ``(1, C, 1, ..., 1)`` for an ``ndim``-D input."""
    return t.reshape([1, -1] + [1] * (ndim - 2))  # a list: TorchScript compiles it
