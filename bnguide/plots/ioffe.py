"""Figures of the *BN in practice* pages built on :mod:`bnguide.training` runs.

Accuracy curves (mean over seeds with the min-max band) with the paper's points beside them,
and the percentile traces of Ioffe & Szegedy's Figure 1(b, c). Every function takes a result
(and an optional ``ax``) and returns the Axes. Chapter *BN in practice* (pages *Reproducing
Ioffe & Szegedy on MNIST*, *Learning rate and sigmoid*, *Before or after the nonlinearity?*).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from bnguide.style import COLORS
from bnguide.training import TrainLog

__all__ = [
    "plot_accuracy",
    "plot_ioffe_accuracy",
    "plot_percentiles",
    "plot_result",
]

_IOFFE_LABELS = {"baseline": "without BN", "bn": "with BN"}


def plot_accuracy(
    log: TrainLog,
    names: Sequence[str] | None = None,
    *,
    ax=None,
    labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    title: str = "Test accuracy during training",
    ylim: tuple[float, float] | None = None,
):
    """Test accuracy against training steps: the mean over seeds and its min-max band.

    Parameters
    ----------
    log : TrainLog
        A :func:`bnguide.training.train_variants` record.
    names : sequence of str, optional
        Variants to draw (default: all).
    ax : matplotlib Axes, optional
    labels, colors : dict, optional
        Legend label and colour per variant name.
    title : str
    ylim : (float, float), optional
        Accuracy range to show, in percent.

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    labels, colors = labels or {}, colors or {}
    for name in names or log.names:
        acc = 100 * log.test_accuracy[log.index(name)]  # (S, E)
        label = labels.get(name, name)
        if len(log.seeds) > 1:
            label += f" (mean of {len(log.seeds)} seeds, band: min-max)"
        (line,) = ax.plot(log.steps, acc.mean(0), color=colors.get(name), label=label)
        ax.fill_between(log.steps, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel(f"training step (mini-batches of {log.settings.get('batch_size', 60)})")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(loc="lower right")
    return ax


def plot_ioffe_accuracy(result, *, ax=None, paper: bool = True, ylim=(70, 100)):
    """Figure 1(a) of Ioffe & Szegedy: our curves and, as markers, the paper's digitised points.

    Parameters
    ----------
    result : bnguide.experiments.ioffe_mnist.Result
    ax : matplotlib Axes, optional
    paper : bool
        Draw the paper's points.
    ylim : (float, float) or None
        Accuracy range in percent (the paper shows 70-100%).

    Returns
    -------
    matplotlib Axes
    """
    from bnguide.experiments.ioffe_mnist import PAPER_ACCURACY

    ax = plot_accuracy(
        result.log,
        ("baseline", "bn"),
        ax=ax,
        labels=_IOFFE_LABELS,
        colors={"baseline": COLORS["baseline"], "bn": COLORS["bn"]},
        title="MNIST, sigmoid MLP: test accuracy (Figure 1a)",
        ylim=ylim,
    )
    if paper:
        steps = PAPER_ACCURACY["steps"]
        for name, marker in (("baseline", "s"), ("bn", "o")):
            ax.plot(
                steps,
                100 * PAPER_ACCURACY[name],
                marker,
                color=COLORS[name],
                mec=COLORS["paper"],
                ms=6,
                ls="none",
                label=f"paper, {_IOFFE_LABELS[name]} (read off Fig. 1a)",
            )
        ax.legend(loc="lower right")
    return ax


def plot_percentiles(
    log: TrainLog,
    name: str,
    *,
    ax=None,
    seed_index: int = 0,
    pooled: bool = False,
    label: str | None = None,
    color: str | None = None,
):
    """The 15th, 50th and 85th percentiles of the input to a sigmoid over training.

    Parameters
    ----------
    log : TrainLog
    name : str
        The variant.
    ax : matplotlib Axes, optional
    seed_index : int
        Which seed's net to show.
    pooled : bool
        Percentiles over all units of the layer instead of the probed unit.
    label, color : str, optional
        Title prefix and line colour.

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    probe = log.probe_all if pooled else log.probe_unit
    values = probe[log.index(name), seed_index]  # (E, Q)
    keep = log.steps > 0  # before training BN's running statistics are placeholders
    for q, style in zip(range(values.shape[1]), ("--", "-", "--"), strict=False):
        ax.plot(
            log.steps[keep],
            values[keep, q],
            style,
            color=color,
            label=f"{round(100 * log.quantiles[q])}th percentile",
        )
    what = "all units of the last hidden layer" if pooled else "one unit of the last hidden layer"
    ax.set_title(f"{label or name}: input to the sigmoid ({what})", fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("input to the sigmoid")
    ax.legend(loc="best")
    return ax


def plot_result(result, outdir: str | Path) -> list[Path]:
    """Write the figures of a result of this family of experiments as PNG files to ``outdir``.

    Used by ``python -m bnguide run``; returns the paths written.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, stem):
        path = outdir / f"{stem}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    log = result.log
    if set(log.names) == {"baseline", "bn"}:  # the reproduction of Figure 1
        fig, ax = plt.subplots(figsize=(7, 4.2))
        plot_ioffe_accuracy(result, ax=ax, ylim=None)
        save(fig, "accuracy")
        for pooled in (False, True):
            fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
            for ax, name in zip(axes, ("baseline", "bn"), strict=True):
                color = COLORS[name]
                plot_percentiles(
                    log, name, ax=ax, pooled=pooled, label=_IOFFE_LABELS[name], color=color
                )
            save(fig, "percentiles_all_units" if pooled else "percentiles")
    else:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        plot_accuracy(log, ax=ax)
        save(fig, "accuracy")
    return written
