"""Helpers shared by the normalizers of :mod:`bnguide.norms` (chapter *The other normalizers*)."""

from __future__ import annotations

import numbers

import torch

from bnguide._validation import TorchRuntimeError

__all__ = ["as_shape", "channel_view", "check_trailing_shape", "mean_and_biased_var"]


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


def as_shape(normalized_shape) -> tuple[int, ...]:
    """``normalized_shape`` (an int or a sequence of ints) as a tuple of ints."""
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


def check_trailing_shape(
    input: torch.Tensor, shape: tuple[int, ...], name: str, *params: torch.Tensor | None
) -> None:
    """Raise torch's errors for a bad ``normalized_shape``, ``weight``/``bias`` or input shape."""
    # torch's messages first (RuntimeError, also a ValueError), then how to fix
    if len(shape) == 0:
        raise TorchRuntimeError(
            f"Expected normalized_shape to be at least 1-dimensional, i.e., containing at "
            f"least one element, but got normalized_shape = () ({name})."
        )
    for label, p in zip(("weight", "bias")[: len(params)], params, strict=True):
        if p is not None and tuple(p.shape) != shape:
            raise TorchRuntimeError(
                f"Expected {label} to be of same shape as normalized_shape, but got {label} of "
                f"shape {list(p.shape)} and normalized_shape = {list(shape)} ({name})."
            )
    if input.dim() < len(shape) or tuple(input.shape[input.dim() - len(shape) :]) != shape:
        raise TorchRuntimeError(
            f"Given normalized_shape={list(shape)}, expected input with shape "
            f"[*, {', '.join(map(str, shape))}], but got input of size{list(input.shape)} "
            f"({name}: normalized_shape must equal the input's last dimensions)."
        )
