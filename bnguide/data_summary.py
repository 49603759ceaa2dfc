"""Summaries of a dataset split: class balance and pixel statistics (chapter *The data*).

Examples
--------
>>> from bnguide.data_summary import summarize
>>> summary = summarize("mnist", "test")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnguide.data import class_names, load_arrays

__all__ = ["SplitSummary", "summarize"]


@dataclass(frozen=True)
class SplitSummary:
    """What one split of a dataset holds.

    Attributes
    ----------
    name, split : str
        Which dataset and split.
    n_examples : int
        Number of images.
    class_counts : numpy.ndarray
        ``(10,)`` number of examples per label.
    pixel_mean, pixel_std : float
        Mean and standard deviation of all pixels, scaled to [0, 1].
    fraction_zero : float
        Fraction of pixels that are exactly 0 (background).
    mean_image : numpy.ndarray
        ``(28, 28)`` average image, scaled to [0, 1].
    """

    name: str
    split: str
    n_examples: int
    class_counts: np.ndarray
    pixel_mean: float
    pixel_std: float
    fraction_zero: float
    mean_image: np.ndarray

    @property
    def classes(self) -> tuple[str, ...]:
        return class_names(self.name)

    @property
    def imbalance(self) -> float:
        """Largest class count divided by the smallest."""
        return float(self.class_counts.max() / self.class_counts.min())


def summarize(name: str, split: str = "train") -> SplitSummary:
    """Compute the :class:`SplitSummary` of ``name``/``split`` from the raw uint8 files.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    split : str, optional
        ``"train"`` or ``"test"``.

    Returns
    -------
    SplitSummary
        Counts per class and pixel statistics of the split.
    """
    images, labels = load_arrays(name, split)  # (N, 28, 28) uint8, (N,) uint8
    pixels = images.astype(np.float64) / 255.0
    return SplitSummary(
        name=name,
        split=split,
        n_examples=len(images),
        class_counts=np.bincount(labels, minlength=10),
        pixel_mean=float(pixels.mean()),
        pixel_std=float(pixels.std()),
        fraction_zero=float((images == 0).mean()),
        mean_image=pixels.mean(axis=0),
    )
