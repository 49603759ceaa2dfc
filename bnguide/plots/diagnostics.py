"""Figures of the network diagnostics: per-layer histograms, the initial-scale sweep and the
learned ``gamma`` and ``beta``.

Used in chapters *Learning rate and sigmoid* (:func:`plot_layer_histograms`) and *Scale
invariance* (:func:`plot_init_scale`, :func:`plot_learned_affine`).

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import init_scale
>>> from bnguide.plots import diagnostics
>>> sweep = cached_run(init_scale.run, init_scale.Config())  # doctest: +SKIP
>>> axes = diagnostics.plot_init_scale(sweep)  # doctest: +SKIP
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnguide.style import COLORS

__all__ = ["plot_init_scale", "plot_layer_histograms", "plot_learned_affine"]

_NAMES = {"plain": "no BN", "sigmoid": "no BN", "bn": "BN", "bn-sigmoid": "BN"}


def plot_layer_histograms(result, *, axes=None):
    """Activation (top) and gradient (bottom) histograms of every hidden layer.

    Columns: without BN at initialization, after training; with BN at initialization, after
    training. One curve per layer (pale: first, dark: last), averaged over the seeds; the
    legend gives each layer's share of saturated sigmoid outputs.

    Parameters
    ----------
    result : bnguide.experiments.saturation.Result
    axes : (2, 4) array of matplotlib Axes, optional

    Returns
    -------
    numpy.ndarray of matplotlib Axes
    """
    if axes is None:
        _, axes = plt.subplots(2, 4, figsize=(14, 6), sharey="row")
    axes = np.asarray(axes)
    if axes.shape != (2, 4):
        raise ValueError(f"plot_layer_histograms needs a (2, 4) grid of axes, got {axes.shape}.")
    columns = [(v, m) for v in result.stats for m in ("init", "trained")]
    for j, (variant, moment) in enumerate(columns):
        stats = result.stats[variant][moment]
        layers = stats.saturated.shape[1]
        color = COLORS["bn"] if variant.startswith("bn") else COLORS["baseline"]
        shades = np.linspace(0.25, 1.0, layers)
        for l in range(layers):
            sat = 100 * stats.saturated[:, l].mean()
            kw = {"color": color, "alpha": shades[l], "lw": 1.3}
            axes[0, j].stairs(
                stats.activation_hist[:, l].mean(0),
                stats.activation_edges,
                **kw,
                label=f"layer {l + 1}: {sat:.2g}% saturated",
            )
            axes[1, j].stairs(stats.gradient_hist[:, l].mean(0), stats.gradient_edges, **kw)
        t = stats.threshold
        for x in (t, 1 - t):
            axes[0, j].axvline(x, color="#999999", ls=":", lw=1)
        when = "at initialization" if moment == "init" else "after training"
        axes[0, j].set_title(f"{_NAMES.get(variant, variant)}, {when}", color=color, fontsize=10)
        axes[0, j].set_xlabel("sigmoid output")
        axes[1, j].set_xlabel("log10 |dL/da| (a: the sigmoid's input)")
        axes[0, j].legend(fontsize=7, loc="upper left")
    axes[0, 0].set_ylabel("share of outputs")
    axes[1, 0].set_ylabel("share of gradients")
    return axes


def plot_init_scale(result, *, ax=None):
    """Test accuracy after training against the initial weight std, with and without BN.

    Every seed is a dot, the mean a line; the dashed line is chance (10 classes).

    Parameters
    ----------
    result : bnguide.experiments.init_scale.Result
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    stds = np.asarray(result.config.stds)
    for name, acc in result.accuracy.items():
        color = COLORS["bn"] if name == "bn" else COLORS["baseline"]
        ax.plot(stds, acc.mean(1), "-", color=color, label=_NAMES.get(name, name))
        for s in range(acc.shape[1]):
            ax.plot(stds, acc[:, s], "o", color=color, alpha=0.5, ms=4)
    ax.axhline(0.1, color="#999999", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("initial weight std")
    ax.set_ylabel(f"test accuracy after {result.config.steps} steps")
    ax.set_title("Which sigmoid MLPs train from which initial scale")
    ax.legend()
    return ax


def plot_learned_affine(result, *, std: float = 0.1, axes=None):
    """Histograms of the learned ``gamma`` and ``beta`` of every BN layer, all seeds pooled.

    Parameters
    ----------
    result : bnguide.experiments.init_scale.Result
    std : float
        Which initial scale's BN nets to show (one of ``result.config.stds``).
    axes : pair of matplotlib Axes, optional

    Returns
    -------
    pair of matplotlib Axes
    """
    stds = list(result.config.stds)
    if std not in stds:
        raise ValueError(f"std {std} was not run; choose one of {stds}.")
    i = stds.index(std)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    layers = result.gamma.shape[2]
    shades = np.linspace(0.35, 1.0, layers)
    for values, ax, name, start in (
        (result.gamma[i], axes[0], "γ (scale)", 1.0),
        (result.beta[i], axes[1], "β (shift)", 0.0),
    ):
        lo, hi = min(values.min(), start) - 0.05, max(values.max(), start) + 0.05
        edges = np.linspace(lo, hi, 31)
        for l in range(layers):
            counts = np.histogram(values[:, l].ravel(), edges)[0]
            ax.stairs(
                counts, edges, color=COLORS["bn"], alpha=shades[l], lw=1.4, label=f"layer {l + 1}"
            )
        ax.axvline(start, color="#333333", ls="--", lw=1, label=f"initial value {start:g}")
        ax.set_xlabel(name)
        ax.set_ylabel("units")
        ax.set_title(f"Learned {name.split()[0]} after {result.config.steps} steps")
        ax.legend(fontsize=8)
    return axes
