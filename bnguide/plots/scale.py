"""Figures of the part *BN at scale and in deployment*: each takes a Result, returns the Axes.

Used in :doc:`/book/scale/sync-bn`, :doc:`/book/scale/ghost-bn`, :doc:`/book/scale/folding` and
:doc:`/book/scale/normalizers`.

Examples
--------
>>> from bnguide.benchmarks import fold_speed
>>> ax = plot_fold_speedup(fold_speed.run(fold_speed.Config(repeats=1)))  # doctest: +SKIP
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnguide.plots._bands import seed_band
from bnguide.style import COLORS

__all__ = [
    "NORM_COLORS",
    "plot_fold_speedup",
    "plot_ghost_accuracy",
    "plot_ghost_loss",
    "plot_normalizers",
    "plot_sync_accuracy",
    "plot_sync_cost",
    "plot_sync_loss",
]

SYNC_STYLE = {  # variant -> (label, colour, line style)
    "local": ("per-process BN", COLORS["baseline"], "-"),
    "sync": ("SyncBatchNorm", COLORS["bn"], "-"),
    "single": ("one process, whole batch", COLORS["alt1"], "--"),
}
NORM_COLORS = {
    "none": COLORS["baseline"],
    "batch": COLORS["bn"],
    "batch-renorm": COLORS["alt4"],
    "group": COLORS["alt1"],
    "layer": COLORS["alt2"],
    "instance": COLORS["alt3"],
    "rms": "#000000",
}


def _smooth(y, window):
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def plot_sync_loss(result, batch_index: int = 0, *, window: int = 20, ax=None):
    """Training loss (moving average over ``window`` steps, mean over seeds) of the three
    variants at one per-process batch size.

    Parameters
    ----------
    result : bnguide.experiments.sync_bn_small_batch.Result
        The experiment's result.
    batch_index : int
        Which per-process batch size to show (index into ``result.per_rank_batches``).
    window : int
        Steps in the moving average.
    ax : matplotlib Axes, optional
        Where to draw (default: the current Axes).

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    for variant, (label, color, ls) in SYNC_STYLE.items():
        curve = _smooth(result.loss[variant][:, batch_index].mean(0), window)
        ax.plot(np.arange(window, window + len(curve)), curve, color=color, ls=ls, label=label)
    b, w = result.per_rank_batches[batch_index], result.config.world_size
    ax.set_title(f"{w} processes x {b} examples (global batch {w * b})")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"training loss ({window}-step average)")
    ax.legend()
    return ax


def plot_sync_accuracy(result, ax=None):
    """Test accuracy after training against the per-process batch size (band: seeds).

    Parameters
    ----------
    result : bnguide.experiments.sync_bn_small_batch.Result
        The experiment's result.
    ax : matplotlib Axes, optional
        Where to draw (default: the current Axes).

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    x = result.per_rank_batches
    for variant, (label, color, ls) in SYNC_STYLE.items():
        seed_band(ax, x, 100 * result.test_acc[variant], label, color, ls=ls)
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(b) for b in x])
    ax.set_xlabel(f"examples per process ({result.config.world_size} processes)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy after training")
    ax.legend()
    return ax


def plot_sync_cost(result, ax=None):
    """Milliseconds per training step, per-process BN against SyncBatchNorm (mean over seeds).

    Parameters
    ----------
    result : bnguide.experiments.sync_bn_small_batch.Result
        The experiment's result.
    ax : matplotlib Axes, optional
        Where to draw (default: the current Axes).

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    x = np.arange(len(result.per_rank_batches))
    for k, variant in enumerate(("local", "sync")):
        label, color, _ = SYNC_STYLE[variant]
        ax.bar(
            x + (k - 0.5) * 0.38, result.step_ms[variant].mean(0), 0.38, color=color, label=label
        )
    ax.set_xticks(x, [str(b) for b in result.per_rank_batches])
    ax.set_ylim(0, 1.3 * max(result.step_ms[v].mean(0).max() for v in ("local", "sync")))
    ax.set_xlabel(f"examples per process ({result.config.world_size} processes)")
    ax.set_ylabel("time per training step (ms)")
    ax.set_title("What synchronization costs")
    ax.legend(loc="upper left", ncols=2)
    return ax


def _ghost_arms(result):
    # the large-batch arms, sorted by ghost size, and the small-batch reference arm
    large = np.flatnonzero(result.batch == result.config.batch_size)
    large = large[np.argsort(result.ghost[large])]
    small = np.flatnonzero(result.batch != result.config.batch_size)
    return large, small


def plot_ghost_accuracy(result, ax=None):
    """Final training and test accuracy (eval mode) against the ghost batch size; dashed: the
    plain-BN run with a small batch.

    Parameters
    ----------
    result : bnguide.experiments.ghost_batch.Result
        The experiment's result.
    ax : matplotlib Axes, optional
        Where to draw (default: the current Axes).

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    large, small = _ghost_arms(result)
    x = result.ghost[large]
    seed_band(ax, x, 100 * result.train_acc[:, large, -1], "training set", COLORS["bn"])
    seed_band(ax, x, 100 * result.test_acc[:, large, -1], "test set", COLORS["alt1"])
    for k in small:
        ax.axhline(
            100 * result.test_acc[:, k, -1].mean(), color=COLORS["alt1"], ls="--", lw=1.2,
            label=f"test set, {result.labels[k]}",
        )  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(g) for g in x])
    ax.set_xlabel(f"ghost batch size (batch {result.config.batch_size}; rightmost = plain BN)")
    ax.set_ylabel("accuracy after training (%)")
    ax.set_title("Accuracy")
    ax.legend()
    return ax


def plot_ghost_loss(result, ax=None):
    """Training loss over the last epoch against the ghost batch size (log scales); dashed:
    the plain-BN run with a small batch.

    Parameters
    ----------
    result : bnguide.experiments.ghost_batch.Result
        The experiment's result.
    ax : matplotlib Axes, optional
        Where to draw (default: the current Axes).

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    large, small = _ghost_arms(result)
    x = result.ghost[large]
    seed_band(ax, x, result.final_loss[:, large], "large batch, ghost BN", COLORS["bn"])
    for k in small:
        ax.axhline(
            result.final_loss[:, k].mean(), color=COLORS["baseline"], ls="--", lw=1.2,
            label=result.labels[k],
        )  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(x, [str(g) for g in x])
    ax.set_xlabel("ghost batch size")
    ax.set_ylabel("training loss, last epoch")
    ax.set_title("How well the training set is fit")
    ax.legend()
    return ax


def plot_fold_speedup(result, ax=None):
    """Inference speed-up from folding, per model and batch size.

    Parameters
    ----------
    result : bnguide.benchmarks.fold_speed.Result
        The experiment's result.
    ax : matplotlib Axes, optional
        Where to draw (default: the current Axes).

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    models, batches = result.config.models, result.config.batch_sizes
    width = 0.8 / len(batches)
    colors = [COLORS["bn"], COLORS["alt1"], COLORS["alt2"], COLORS["alt3"]]
    for j, batch in enumerate(batches):
        x = np.arange(len(models)) + (j - (len(batches) - 1) / 2) * width
        ax.bar(x, result.speedup[:, j], width, color=colors[j % 4], label=f"batch {batch}")
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="no change")
    ax.set_xticks(np.arange(len(models)), [m.upper() for m in models])
    ax.set_ylim(0, 1.35 * result.speedup.max())
    ax.set_xlabel("network")
    ax.set_ylabel("unfolded time / folded time")
    ax.set_title("Inference speed-up from folding BN")
    ax.legend(loc="upper center", ncols=len(batches) + 1)
    return ax


def plot_normalizers(result, metric: str = "accuracy", labels: dict | None = None, ax=None):
    """One line per normalizer against the batch size; ``metric`` is ``"accuracy"`` (test, %)
    or ``"step_ms"`` (milliseconds per training step). Bands span the seeds.

    Parameters
    ----------
    result : bnguide.experiments.normalizer_benchmark.Result
        The experiment's result.
    metric : {"accuracy", "step_ms"}
        Test accuracy or milliseconds per training step.
    labels : dict, optional
        Legend label per normalizer name (default: the names).
    ax : matplotlib Axes, optional
        Where to draw (default: the current Axes).

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    if metric not in ("accuracy", "step_ms"):
        raise ValueError(f"metric must be 'accuracy' or 'step_ms', got {metric!r}.")
    data = result.accuracy if metric == "accuracy" else result.step_ms
    x = result.batch_sizes
    for norm, values in data.items():
        label = (labels or {}).get(norm, norm)
        scale = 100 if metric == "accuracy" else 1
        seed_band(ax, x, scale * values, label, NORM_COLORS.get(norm, "grey"))
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(b) for b in x])
    ax.set_xlabel(f"batch size (every run: {result.config.steps} steps)")
    if metric == "accuracy":
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("Accuracy against batch size")
    else:
        ax.set_yscale("log")
        ax.set_ylabel("time per training step (ms)")
        ax.set_title("Time per step against batch size")
    ax.legend(ncols=2)
    return ax
