"""Figures of the *BN in practice* pages built on :mod:`bnguide.training` runs.

Accuracy curves (mean over seeds with the min-max band) with the paper's points beside them,
and the percentile traces of Ioffe & Szegedy's Figure 1(b, c). Every function takes a result
(and an optional ``ax``) and returns the Axes. Used in :doc:`/book/practice/ioffe-mnist`,
:doc:`/book/practice/learning-rate-and-sigmoid`, :doc:`/book/practice/bn-placement` and
:doc:`/book/in-3-minutes`.

Examples
--------
>>> import matplotlib.pyplot as plt
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import ioffe_mnist
>>> from bnguide.plots.ioffe import plot_ioffe_accuracy
>>> result = cached_run(ioffe_mnist.run, ioffe_mnist.Config())  # doctest: +SKIP
>>> ax = plot_ioffe_accuracy(result)  # doctest: +SKIP
>>> plt.show()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bnguide.style import COLORS
from bnguide.training import TrainLog

__all__ = [
    "plot_accuracy",
    "plot_ioffe_accuracy",
    "plot_learning_rate",
    "plot_paired_differences",
    "plot_percentiles",
    "plot_placement",
    "plot_result",
    "plot_slow_start",
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
    log : bnguide.training.TrainLog
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
    unit: int | None = None,
    label: str | None = None,
    color: str | None = None,
):
    """The 15th, 50th and 85th percentiles of the input to a sigmoid over training.

    Parameters
    ----------
    log : bnguide.training.TrainLog
    name : str
        The variant.
    ax : matplotlib Axes, optional
    seed_index : int
        Which seed's net to show.
    pooled : bool
        Percentiles over all units of the layer instead of the probed unit.
    unit : int, optional
        Show this unit of the layer instead (percentiles over the first 1,000 test images),
        e.g. :func:`bnguide.experiments.ioffe_mnist.typical_unit`.
    label, color : str, optional
        Title prefix and line colour.

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    if pooled and unit is not None:
        raise ValueError("give either pooled=True or a unit, not both.")
    if unit is not None:
        values = log.probe_units[log.index(name), seed_index, :, unit]  # (E, Q)
    else:
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
    if pooled:
        what = "all units of the last hidden layer"
    elif unit is not None:
        what = f"unit {unit} of the last hidden layer"
    else:
        what = "one unit of the last hidden layer"
    ax.set_title(f"{label or name}: input to the sigmoid ({what})", fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("input to the sigmoid")
    ax.legend(loc="best")
    return ax


def plot_slow_start(sweep, *, ax=None, paper: bool = True):
    """The plain sigmoid net's test accuracy from several initial weight scales (mean, min-max).

    Parameters
    ----------
    sweep : bnguide.experiments.init_scale.Result
        For example ``cached_run(init_scale.run, ioffe_mnist.SLOW_START)``.
    ax : matplotlib Axes, optional
    paper : bool
        Mark the paper's no-BN accuracy at 4,000 steps (Figure 1a; its init scale is not given).

    Returns
    -------
    matplotlib Axes
    """
    from bnguide.experiments.ioffe_mnist import PAPER_ACCURACY

    ax = ax or plt.gca()
    shades = (COLORS["alt2"], COLORS["alt3"], COLORS["baseline"], COLORS["alt4"], COLORS["alt1"])
    steps = np.asarray(sweep.steps)
    for i, std in enumerate(sweep.config.stds):
        acc = 100 * sweep.curve["plain"][i]  # (S, E)
        color = shades[i % len(shades)]
        label = f"no BN, init std {std:g} (mean of {len(acc)} seeds, band: min-max)"
        ax.plot(steps, acc.mean(0), color=color, label=label)
        ax.fill_between(steps, acc.min(0), acc.max(0), color=color, alpha=0.2)
    if paper:
        ax.plot(PAPER_ACCURACY["steps"][:1], 100 * PAPER_ACCURACY["baseline"][:1], "s",
                color=COLORS["baseline"], mec=COLORS["paper"], ms=7, ls="none",
                label="paper, without BN (read off Fig. 1a)")  # fmt: skip
    ax.set_xlabel(f"training step (mini-batches of {sweep.config.batch_size})")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("The plain net's slow start against its initial weight scale")
    ax.legend(loc="lower right", fontsize=8)
    return ax


_LR_COLORS = {
    "baseline": COLORS["baseline"],
    "baseline-x5": COLORS["alt3"],
    "baseline-x10": COLORS["alt2"],
    "bn": COLORS["bn"],
    "bn-x5": COLORS["alt4"],
    "bn-x30": COLORS["alt1"],
    "bn-x5-sigmoid": COLORS["alt1"],
    "sigmoid-x5": COLORS["baseline"],
}
_LR_COLORS.update(
    {f"{n}-m": _LR_COLORS[n] for n in ("baseline", "baseline-x5", "bn", "bn-x5", "bn-x30")}
)


def plot_learning_rate(result, axes=None, *, momentum: bool = False):
    """The ReLU nets at several learning rates; sigmoid against ReLU at 5x; optionally momentum.

    Parameters
    ----------
    result : bnguide.experiments.learning_rate.Result
    axes : sequence of matplotlib Axes, optional
        Two (three with ``momentum``).
    momentum : bool
        Add a third panel: the ReLU nets trained with momentum SGD.

    Returns
    -------
    The Axes.
    """
    from bnguide.experiments.learning_rate import LABELS

    panels = 3 if momentum else 2
    if axes is None:
        _, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), sharey=True)
    if len(axes) != panels:
        raise ValueError(f"plot_learning_rate needs {panels} axes, got {len(axes)}.")
    log = result.log
    relu = [n for n in ("baseline", "baseline-x5", "baseline-x10", "bn", "bn-x5", "bn-x30")
            if n in log.names]  # fmt: skip
    sigmoid = [n for n in ("bn-x5", "bn-x5-sigmoid", "sigmoid-x5") if n in log.names]
    groups = [relu, sigmoid]
    titles = [
        "ReLU: learning rate x1, x5, x10 / x30",
        "BN at x5: ReLU or sigmoid; sigmoid without BN",
    ]
    if momentum:
        groups.append([n for n in log.names if n.endswith("-m")])
        titles.append("ReLU, momentum 0.9: x1, x5 / x30")
    for ax, names, title in zip(axes, groups, titles, strict=True):
        plot_accuracy(
            log, names, ax=ax, labels=LABELS, colors=_LR_COLORS, title=title, ylim=(0, 100)
        )
        ax.legend(loc="lower right", fontsize=7.5)
    return axes


def plot_paired_differences(result, ax=None):
    """Seed by seed: final test accuracy with BN after the activation minus before it.

    One column per (activation, learning rate) setting.

    Parameters
    ----------
    result : bnguide.experiments.bn_placement.Result
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    from bnguide.experiments.bn_placement import summary

    ax = ax or plt.gca()
    rows = summary(result)
    for k, row in enumerate(rows):
        diff = 100 * row["difference"]  # (S,), percentage points
        ax.plot(np.full(len(diff), k), diff, "o", color=COLORS["alt1"], alpha=0.8,
                label="one seed" if k == 0 else None)  # fmt: skip
        sd = 100 * row["std_difference"] if len(diff) > 1 else 0.0
        ax.errorbar(k + 0.15, diff.mean(), yerr=sd, fmt="D", color=COLORS["paper"], capsize=4,
                    label="mean +- 1 sd" if k == 0 else None)  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ticks = [f"{row['activation']}\nlr {row['lr']:g}" for row in rows]
    ax.set_xticks(range(len(rows)), ticks)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("activation and learning rate")
    ax.set_ylabel("after minus before (points of accuracy)")
    ax.set_title("BN after vs before the activation, paired by seed")
    ax.legend(loc="best")
    return ax


def plot_placement(result, axes=None):
    """Accuracy curves of both placements, one panel per (activation, learning rate).

    Parameters
    ----------
    result : bnguide.experiments.bn_placement.Result
    axes : numpy.ndarray of Axes, optional
        One Axes per (activation, learning rate) pair, in a grid of ``len(config.lrs)``
        columns; by default a new figure.

    Returns
    -------
    numpy.ndarray of Axes
    """
    log = result.log
    pairs = result.config.pairs()
    if axes is None:
        cols = len(result.config.lrs)
        rows = len(pairs) // cols
        _, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.6 * rows), sharey=True,
                               squeeze=False)  # fmt: skip
    axes = np.asarray(axes).ravel()
    for ax, (act, lr) in zip(axes, pairs, strict=True):
        names = (f"{act}-before-lr{lr:g}", f"{act}-after-lr{lr:g}")
        labels = {names[0]: f"BN before {act}", names[1]: f"BN after {act}"}
        colors = {names[0]: COLORS["bn"], names[1]: COLORS["alt1"]}
        plot_accuracy(log, names, ax=ax, labels=labels, colors=colors,
                      title=f"{act}, learning rate {lr:g}", ylim=(90, 100))  # fmt: skip
        ax.legend(loc="lower right", fontsize=7.5)
    return axes


def plot_result(result, outdir: str | Path) -> list[Path]:
    """Write the figures of a result of this family of experiments as PNG files to ``outdir``.

    Used by ``python -m bnguide run`` and ``python -m bnguide plot``.

    Parameters
    ----------
    result : object
        The ``Result`` of :mod:`~bnguide.experiments.ioffe_mnist`,
        :mod:`~bnguide.experiments.learning_rate` or :mod:`~bnguide.experiments.bn_placement`.
    outdir : str or pathlib.Path
        Created if missing.

    Returns
    -------
    list of pathlib.Path
        The files written.
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
    kind = type(result).__module__.rsplit(".", 1)[-1]
    if kind == "ioffe_mnist":  # the reproduction of Figure 1
        fig, ax = plt.subplots(figsize=(7, 4.2))
        plot_ioffe_accuracy(result, ax=ax, ylim=None)
        save(fig, "accuracy")
        for pooled in (False, True):
            fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
            for ax, name in zip(axes, ("baseline", "bn"), strict=True):
                plot_percentiles(log, name, ax=ax, pooled=pooled, label=_IOFFE_LABELS[name],
                                 color=COLORS[name])  # fmt: skip
            save(fig, "percentiles_all_units" if pooled else "percentiles")
    elif kind == "learning_rate":
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        plot_learning_rate(result, axes)
        save(fig, "accuracy")
    elif kind == "bn_placement":
        plot_placement(result)
        save(plt.gcf(), "accuracy")
        fig, ax = plt.subplots(figsize=(6, 4))
        plot_paired_differences(result, ax)
        save(fig, "paired_differences")
    else:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        plot_accuracy(log, ax=ax)
        save(fig, "accuracy")
    return written
