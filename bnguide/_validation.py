"""Input checks shared by the NumPy and PyTorch batch norms, with messages that say how to fix.

Used by :mod:`bnguide.numpy_bn`, :mod:`bnguide.functional` and :mod:`bnguide.nn` (chapter
*The full guide: implementation*). Works on NumPy arrays and torch tensors alike: it only looks
at ``.shape``, ``.ndim`` and ``.dtype``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "TorchRuntimeError",
    "check_batch_size",
    "check_eps",
    "check_floating_point",
    "check_min_dims",
    "check_num_channels",
    "check_per_channel",
]


class TorchRuntimeError(ValueError, RuntimeError):
    """A bad argument where PyTorch raises ``RuntimeError``: catchable as either.

    bnguide reports bad arguments as ``ValueError``; torch's kernels raise ``RuntimeError``
    for the same mistakes (a wrong-size weight, a channel count that does not match). A
    drop-in must raise what torch raises, so these errors are both.
    """


def _is_floating(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return np.issubdtype(x.dtype, np.floating)
    return bool(x.is_floating_point())  # a torch.Tensor


def check_floating_point(x: Any, where: str) -> None:
    """Raise ``ValueError`` unless ``x`` holds floating-point numbers."""
    if not _is_floating(x):
        raise ValueError(
            f"{where}: expected a floating-point input, got dtype {x.dtype}. "
            "Convert it first, e.g. x.float() for a tensor or x.astype(np.float64) for an array."
        )


def check_min_dims(x: Any, where: str) -> None:
    """Raise ``ValueError`` unless ``x`` has at least 2 dimensions, ``(N, C, *)``."""
    if x.ndim < 2:
        raise ValueError(
            f"{where}: expected at least 2D input of shape (N, C) or (N, C, *spatial) "
            f"(got {x.ndim}D input of shape {tuple(x.shape)}). "
            "A single feature vector needs a batch dimension, e.g. x[None]; "
            "batch statistics need more than one example."
        )


def check_num_channels(x: Any, num_features: int, where: str) -> None:
    """Raise :class:`TorchRuntimeError` unless dimension 1 of ``x`` has ``num_features`` entries."""
    if x.shape[1] != num_features:
        raise TorchRuntimeError(
            f"{where}: expected {num_features} channels in dimension 1 (num_features="
            f"{num_features}), got {x.shape[1]} in input of shape {tuple(x.shape)}. "
            f"Create the layer with num_features={x.shape[1]}, or put the channels in "
            "dimension 1: inputs are (N, C) or (N, C, *spatial), not channels-last shapes."
        )


def check_per_channel(tensor: Any, name: str, num_channels: int, where: str) -> None:
    """Raise :class:`TorchRuntimeError` unless a per-channel ``tensor`` has ``num_channels`` values.

    None passes.

    ``name`` is the argument's name in the message (``"weight"``, ``"running_mean"``, ...).
    """
    if tensor is None:
        return
    if tuple(tensor.shape) != (num_channels,):
        raise TorchRuntimeError(
            f"{where}: {name} must have shape ({num_channels},), one value per channel of an "
            f"input with {num_channels} channels in dimension 1; got shape {tuple(tensor.shape)} "
            f"({name} should contain {num_channels} elements not {int(np.prod(tensor.shape))})."
        )


def check_batch_size(size: Any) -> None:
    """Raise torch's ``ValueError`` when training would see one value per channel.

    ``size`` is the input's shape; the message is PyTorch's, word for word.
    """
    count = size[0]
    for extent in size[2:]:
        count *= extent
    if count == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {size}"
        )


def check_eps(eps: float, training: bool) -> None:
    """Raise torch's ``ValueError`` for ``eps <= 0`` in training or ``eps < 0`` in evaluation."""
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
