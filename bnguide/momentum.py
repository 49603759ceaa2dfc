"""The "momentum" of batch norm's running statistics in PyTorch, Keras/TensorFlow, Flax and CS231n.

All four keep an exponential moving average of the batch statistics, but they disagree on what
the number called momentum means: PyTorch weights the *new* batch with it, the others weight the
*old* running value. They also differ in which variance they average (PyTorch the unbiased
one). This module states each convention, converts between them and simulates each update rule
so the conversion can be checked. Used in chapter *The full guide: implementation* (page
*Training and evaluation*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CONVENTIONS",
    "Convention",
    "convert",
    "half_life",
    "running_average",
]


@dataclass(frozen=True)
class Convention:
    """How one framework defines its running-statistics update.

    ``weights`` is ``"new"`` when ``running = (1 - momentum) * running + momentum * batch`` and
    ``"old"`` when ``running = momentum * running + (1 - momentum) * batch``.
    """

    name: str
    default: float
    weights: str
    variance: str  # which batch variance is averaged: "unbiased" (n / (n - 1)) or "biased"
    where: str  # the layer or code this describes

    def new_batch_weight(self, momentum: float) -> float:
        """The weight this convention's ``momentum`` gives the new batch."""
        return momentum if self.weights == "new" else 1.0 - momentum


CONVENTIONS: dict[str, Convention] = {
    "pytorch": Convention("PyTorch", 0.1, "new", "unbiased", "torch.nn.BatchNorm1d/2d/3d"),
    "keras": Convention(
        "Keras / TensorFlow", 0.99, "old", "biased", "keras.layers.BatchNormalization"
    ),
    "flax": Convention("Flax", 0.99, "old", "biased", "flax.linen.BatchNorm"),
    "cs231n": Convention("CS231n", 0.9, "old", "biased", "the course's batchnorm_forward"),
}


def _get(convention: str) -> Convention:
    try:
        return CONVENTIONS[convention]
    except KeyError:
        raise ValueError(
            f"unknown convention {convention!r}; choose one of {sorted(CONVENTIONS)}."
        ) from None


def convert(momentum: float, source: str, target: str) -> float:
    """The momentum that gives, under ``target``'s convention, the same update as ``momentum``
    under ``source``'s (for the mean; see :attr:`Convention.variance` for the variance).

    Parameters
    ----------
    momentum : float
        The value under ``source``'s convention.
    source, target : str
        Convention names, e.g. ``"pytorch"`` or ``"keras"``.

    Returns
    -------
    float
        The value under ``target``'s convention.

    Examples
    --------
    >>> convert(0.99, "keras", "pytorch")  # doctest: +ELLIPSIS
    0.01...
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"convert: momentum must lie in [0, 1], got {momentum}.")
    weight = _get(source).new_batch_weight(momentum)
    return weight if _get(target).weights == "new" else 1.0 - weight


def half_life(momentum: float, convention: str = "pytorch") -> float:
    """Number of batches after which an old batch's weight in the average has halved.

    Parameters
    ----------
    momentum : float
        The momentum, under ``convention``.
    convention : str, optional
        Whose meaning of momentum, e.g. ``"pytorch"`` or ``"keras"``.

    Returns
    -------
    float
        The half-life, in batches (not rounded).
    """
    weight = _get(convention).new_batch_weight(momentum)
    if not 0.0 < weight < 1.0:
        raise ValueError(
            f"half_life: the new-batch weight must lie strictly between 0 and 1, got {weight}."
        )
    return math.log(0.5) / math.log(1.0 - weight)


def running_average(
    batch_values: np.ndarray, momentum: float, convention: str, initial: float | np.ndarray
) -> np.ndarray:
    """Apply one framework's update rule to a sequence of batch statistics.

    Parameters
    ----------
    batch_values : ndarray
        ``(T, C)``: the statistic of each of ``T`` batches, per channel.
    momentum : float
        In ``convention``'s meaning.
    convention : str
        A key of :data:`CONVENTIONS`.
    initial : float or ndarray
        The running value before the first batch (0 for the mean, 1 for the variance).

    Returns
    -------
    ndarray
        ``(T, C)``: the running value after each batch.
    """
    weight = _get(convention).new_batch_weight(momentum)
    running = np.broadcast_to(np.asarray(initial, dtype=np.float64), batch_values.shape[1:])
    out = np.empty(batch_values.shape, dtype=np.float64)
    for t, value in enumerate(batch_values):
        running = (1.0 - weight) * running + weight * value
        out[t] = running
    return out
