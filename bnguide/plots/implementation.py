"""Figures of chapter *The full guide: implementation* and of *Batch norm in 3 minutes*.

Each function takes the result of a :mod:`bnguide` helper (and an optional ``ax``) and returns
the Axes: conditioning of gradient descent (:mod:`bnguide.conditioning`), the bias drift of
normalizing outside the gradient step (:mod:`bnguide.outside_normalization`), running averages
under different momentum conventions (:mod:`bnguide.momentum`), the error of variance formulas
(:mod:`bnguide.numerics`), and what gamma and beta do to the input of a sigmoid.

Examples
--------
>>> from bnguide.plots.implementation import plot_gamma_beta
>>> ax = plot_gamma_beta({"gamma = 1, beta = 0": (1.0, 0.0), "gamma = 2, beta = 1": (2.0, 1.0)})
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from bnguide.conditioning import GDResult
from bnguide.numerics import SweepResult
from bnguide.outside_normalization import DriftResult
from bnguide.style import COLORS

__all__ = [
    "plot_bias_drift",
    "plot_conditioning",
    "plot_gamma_beta",
    "plot_running_averages",
    "plot_variance_error",
]

_SERIES = ("baseline", "alt3", "alt1", "bn", "alt2", "alt4")


def plot_conditioning(results: Mapping[str, GDResult], *, ax=None):
    """Excess loss of gradient descent against steps, one line per input preprocessing.

    Parameters
    ----------
    results : mapping
        Preprocessing name -> :class:`bnguide.conditioning.GDResult`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    for key, (name, result) in zip(_SERIES, results.items(), strict=False):
        excess = np.maximum(result.excess / result.optimum, 1e-16)
        ax.semilogy(np.arange(len(excess)), excess, color=COLORS[key], label=name)
    ax.set_xlabel("gradient-descent step (full batch, step size 1/L)")
    ax.set_ylabel("(loss − best loss) / best loss")
    ax.set_title("Linear regression: scaled inputs converge faster")
    ax.legend(loc="upper right")
    return ax


def plot_bias_drift(outside: DriftResult, inside: DriftResult, *, axes=None):
    """The bias and the loss over training, mean outside versus inside the gradient step.

    Parameters
    ----------
    outside, inside : DriftResult
        From :func:`bnguide.outside_normalization.simulate_bias_drift` with
        ``mean_in_graph=False`` and ``True``.
    axes : pair of matplotlib Axes, optional

    Returns
    -------
    pair of matplotlib Axes
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    steps = np.arange(len(outside.loss))
    styles = (
        (outside, COLORS["baseline"], "-", "mean treated as a constant (outside the step)"),
        (inside, COLORS["bn"], "--", "mean differentiated (as in batch norm)"),
    )
    for result, color, line, label in styles:
        axes[0].plot(steps, np.linalg.norm(result.bias, axis=1), line, color=color, label=label)
        axes[1].plot(steps, result.loss, line, color=color, label=label)
    axes[0].set_title("The bias grows without bound")
    axes[0].set_ylabel("‖b‖ (norm of the learned bias)")
    axes[1].set_title("…while the loss does not move")
    axes[1].set_ylabel("training loss")
    spread = np.ptp(np.concatenate([outside.loss, inside.loss]))
    centre = float(np.mean(outside.loss))
    axes[1].set_ylim(centre - 0.5 - spread, centre + 0.5 + spread)
    for ax in axes:
        ax.set_xlabel("gradient-descent step")
        ax.legend(loc="upper left", fontsize=8)
    return axes


def plot_running_averages(batch_values: np.ndarray, averages: Mapping[str, np.ndarray], *, ax=None):
    """Batch statistics of one channel and running averages of them.

    Parameters
    ----------
    batch_values : ndarray
        ``(T,)``: the statistic of each batch.
    averages : mapping
        Label -> ``(T,)`` running average after each batch.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    steps = np.arange(1, len(batch_values) + 1)
    ax.plot(steps, batch_values, ".", color="#999999", ms=4, label="batch mean")
    for key, (label, values) in zip(("bn", "alt3", "alt1", "alt2"), averages.items(), strict=False):
        ax.plot(steps, values, color=COLORS[key], label=label)
    ax.set_xlabel("training batch")
    ax.set_ylabel("mean of one feature")
    ax.set_title("Running mean under different momentum settings")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_variance_error(sweep: SweepResult, *, ax=None):
    """Relative error of E[x²] - E[x]² and of the two-pass variance against mean / std.

    Parameters
    ----------
    sweep : SweepResult
        From :func:`bnguide.numerics.variance_error_sweep`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    ratio = sweep.offsets / sweep.std
    floor = 1e-10  # an exact result would not show on a log scale
    ax.loglog(
        ratio,
        np.maximum(sweep.shortcut, floor),
        "o-",
        color=COLORS["baseline"],
        label="E[x²] − E[x]² (one pass)",
    )
    ax.loglog(
        ratio,
        np.maximum(sweep.two_pass, floor),
        "s-",
        color=COLORS["bn"],
        label="E[(x − E[x])²] (two passes)",
    )
    ax.axhline(1.0, color="#666666", lw=0.8, ls=":")
    ax.text(ratio[0], 1.3, "100% error", fontsize=8, color="#666666")
    ax.set_xlabel("mean / standard deviation of the data")
    ax.set_ylabel("relative error of the variance")
    ax.set_title(f"Variance in {sweep.dtype}: one pass against two")
    ax.legend(loc="upper left")
    return ax


def plot_gamma_beta(settings: Mapping[str, tuple[float, float]], *, seed: int = 0, ax=None):
    """Where normalized activations land on a sigmoid for a few (gamma, beta) settings.

    Parameters
    ----------
    settings : mapping
        Label -> ``(gamma, beta)``.
    seed : int
        For the standard-normal sample drawn as the normalized activations.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    grid = np.linspace(-6, 6, 400)
    ax.plot(grid, 1 / (1 + np.exp(-grid)), color="#333333", lw=1.2, label="sigmoid")
    x_hat = np.random.default_rng(seed).standard_normal(4000)
    for key, (label, (gamma, beta)) in zip(
        _SERIES[3:] + _SERIES[:3], settings.items(), strict=False
    ):
        z = gamma * x_hat + beta
        counts, edges = np.histogram(z, bins=60, range=(-6, 6), density=True)
        ax.stairs(
            counts,
            edges,
            color=COLORS[key],
            fill=True,
            alpha=0.35,
            label=f"{label}: γ={gamma:g}, β={beta:g}",
        )
    ax.set_xlabel("input to the sigmoid, γ·x̂ + β")
    ax.set_ylabel("sigmoid output / density")
    ax.set_title("γ and β choose the part of the nonlinearity that is used")
    ax.legend(loc="upper left", fontsize=8)
    return ax
