"""Figures of the chapter *The data*: sample images, class balance and pixel histograms.

Examples
--------
>>> from bnguide.plots.data import plot_samples
>>> fig = plot_samples("mnist", per_class=4)  # doctest: +SKIP
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnguide.data import class_names, load_arrays
from bnguide.data_summary import SplitSummary

__all__ = ["plot_samples", "plot_class_balance", "plot_pixel_histogram"]


def plot_samples(name: str, per_class: int = 6, *, seed: int = 0):
    """A grid of ``per_class`` random training images for each class; returns the Figure.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    per_class : int, optional
        Images per class.
    seed : int, optional
        Seed of the random choice.

    Returns
    -------
    matplotlib.figure.Figure
    """
    images, labels = load_arrays(name, "train")
    rng = np.random.default_rng(seed)
    names = class_names(name)
    fig, axes = plt.subplots(per_class, 10, figsize=(8, 0.85 * per_class + 0.6))
    for label in range(10):
        picks = rng.choice(np.flatnonzero(labels == label), size=per_class, replace=False)
        for row, index in enumerate(picks):
            ax = axes[row, label]
            ax.imshow(images[index], cmap="gray_r", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[0, label].set_title(names[label], fontsize=8, fontweight="normal")
    fig.suptitle(f"{name}: {per_class} random training images per class")
    return fig


def plot_class_balance(summaries: list[SplitSummary], ax=None):
    """Grouped bars: the share of each class in every given split. Returns the Axes.

    Parameters
    ----------
    summaries : list of SplitSummary
        One per split, from :func:`bnguide.data_summary.summarize`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    width = 0.8 / len(summaries)
    for i, s in enumerate(summaries):
        share = 100 * s.class_counts / s.class_counts.sum()
        ax.bar(np.arange(10) + i * width, share, width, label=f"{s.name} {s.split}")
    ax.axhline(10, color="black", lw=0.8, ls="--", label="perfect balance (10%)")
    ax.set_xticks(np.arange(10) + width * (len(summaries) - 1) / 2, [str(k) for k in range(10)])
    ax.set_xlabel("class label")
    ax.set_ylabel("share of the split (%)")
    ax.set_title("Class balance")
    ax.legend(ncols=2)
    return ax


def plot_pixel_histogram(name: str, ax=None):
    """Histogram of the pixel values of a training set, log scale. Returns the Axes.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    images, _ = load_arrays(name, "train")
    counts = np.bincount(images.ravel(), minlength=256)
    ax.bar(np.arange(256) / 255, counts / counts.sum(), width=1 / 255, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("pixel value (scaled to [0, 1])")
    ax.set_ylabel("fraction of pixels")
    ax.set_title(f"{name}: pixel values")
    ax.legend()
    return ax
