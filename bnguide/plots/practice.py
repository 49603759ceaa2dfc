"""Figures of the chapters *Regularization*, *Normalization during evaluation*, *Stability issues*,
*Recurrent nets and LayerNorm* and *Pitfalls* (part *BN in practice*).

Each function takes an experiment's Result and an optional ``ax`` and returns the Axes. Lines
are means over seeds; shaded bands span the lowest to the highest seed.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import small_batches
>>> from bnguide.plots.practice import plot_small_batches
>>> result = cached_run(small_batches.run, small_batches.Config())  # doctest: +SKIP
>>> ax = plot_small_batches(result, batch_stats=True)  # doctest: +SKIP
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnguide.plots._bands import seed_band
from bnguide.style import COLORS

__all__ = [
    "plot_batch_noise",
    "plot_bn_activation_size",
    "plot_confounded",
    "plot_eval_accuracy",
    "plot_eval_distance",
    "plot_recurrent_loss",
    "plot_regularization",
    "plot_shift",
    "plot_small_batches",
]

_VARIANT_STYLE = {  # label, colour
    "none": ("no normalization", COLORS["baseline"]),
    "batch": ("BN", COLORS["bn"]),
    "dropout": ("dropout", COLORS["alt1"]),
    "batch-renorm": ("Batch Renormalization", COLORS["alt2"]),
    "group": ("GroupNorm", COLORS["alt1"]),
    "layer": ("LayerNorm", COLORS["alt3"]),
}


def plot_batch_noise(result, ax=None):
    """Spread of the batch mean and standard deviation around the population values vs batch
    size (regularization experiment), with the sampling-theory line for the mean.

    Parameters
    ----------
    result : bnguide.experiments.regularization.Result
        What :func:`bnguide.experiments.regularization.run` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    b = result.batch_sizes
    n = result.config.train_size
    seed_band(ax, b, result.mean_noise, r"batch mean: rms of $(\mu_B-\mu)/\sigma$", COLORS["bn"])
    std_label = r"batch std: rms of $\sigma_B/\sigma-1$"
    seed_band(ax, b, result.std_noise, std_label, COLORS["alt2"], "s")
    fine = np.geomspace(b.min(), b.max(), 50)
    theory = np.sqrt((n - fine) / ((n - 1) * fine))
    ax.plot(
        fine,
        theory,
        ls="--",
        color=COLORS["paper"],
        label=r"theory for the mean, $\approx 1/\sqrt{B}$",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(b, [str(v) for v in b])
    ax.set_xlabel("batch size B")
    ax.set_ylabel("relative error (rms over batches, units)")
    ax.set_title("Noise in BN's batch statistics (first layer)")
    ax.legend()
    return ax


def plot_regularization(result, metric: str = "test_accuracy", ax=None):
    """One metric of the regularization sweep vs batch size, per variant.

    ``metric``: ``"test_accuracy"``, ``"train_accuracy"``, ``"loss_gap"`` (test minus training
    loss) or ``"accuracy_gap"`` (training minus test accuracy).

    Parameters
    ----------
    result : bnguide.experiments.regularization.Result
        What :func:`bnguide.experiments.regularization.run` returned.
    metric : str, optional
        Which metric, see above.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    labels = {
        "test_accuracy": "test accuracy (%)",
        "train_accuracy": "training accuracy (%)",
        "loss_gap": "test loss - training loss",
        "accuracy_gap": "training - test accuracy (points)",
    }
    if metric not in labels:
        raise ValueError(f"metric must be one of {sorted(labels)}, got {metric!r}.")
    for v in result.config.variants:
        if metric == "loss_gap":
            values = result.gap(v, "loss")
        elif metric == "accuracy_gap":
            values = 100 * result.gap(v, "accuracy")
        else:
            values = 100 * getattr(result, metric)[v]
        label, color = _VARIANT_STYLE[v]
        if v == "dropout":
            label = f"dropout p={result.config.dropout:g}"
        seed_band(ax, result.batch_sizes, values, label, color)
    ax.set_xscale("log", base=2)
    ax.set_xticks(result.batch_sizes, [str(v) for v in result.batch_sizes])
    ax.set_xlabel(f"batch size (all runs see {result.config.examples:,} examples)")
    ax.set_ylabel(labels[metric])
    ax.set_title(labels[metric].split(" (")[0].capitalize() + " vs batch size")
    ax.legend()
    return ax


def _method_colors(methods):
    palette = [COLORS["alt3"], COLORS["bn"], COLORS["alt1"], COLORS["alt2"], COLORS["alt4"]]
    return dict(zip(methods, palette, strict=False))


def plot_eval_accuracy(result, ax=None):
    """Test accuracy during training with each kind of population statistics (eval-statistics).

    Parameters
    ----------
    result : bnguide.experiments.eval_statistics.Result
        What :func:`bnguide.experiments.eval_statistics.run` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    colors = _method_colors(result.methods)
    for m in result.methods:
        label = f"EMA, momentum {m.split()[1]}" if m.startswith("ema") else "precise BN (exact)"
        ls = "-" if m == "precise" else "--"
        seed_band(ax, result.steps, 100 * result.accuracy[m], label, colors[m], ls=ls)
    ax.set_xscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Which population statistics?")
    ax.legend()
    return ax


def plot_eval_distance(result, ax=None):
    """Distance of each EMA from the exact population statistics during training.

    Parameters
    ----------
    result : bnguide.experiments.eval_statistics.Result
        What :func:`bnguide.experiments.eval_statistics.run` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    colors = _method_colors(result.methods)
    for m in result.methods:
        if m == "precise":
            continue
        mom = m.split()[1]
        seed_band(ax, result.steps, result.mean_distance[m], f"mean, momentum {mom}", colors[m])
        seed_band(
            ax,
            result.steps,
            result.log_var_ratio[m],
            f"variance, momentum {mom}",
            colors[m],
            marker="s",
            ls=":",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(r"$|\mu-\mu^*|/\sigma^*$ and $|\log(\sigma^2/\sigma^{*2})|$")
    ax.set_title("EMA vs exact statistics")
    ax.legend(ncols=2)
    return ax


def plot_shift(result, family: str = "contrast", ax=None):
    """Test accuracy vs the size of an intensity shift (distribution-shift experiment).

    ``family``: ``"contrast"`` (``x' = c x``) or ``"brightness"`` (``x' = x + b``; the clean
    point ``b = 0`` is taken from the contrast sweep).

    Parameters
    ----------
    result : bnguide.experiments.distribution_shift.Result
        What :func:`bnguide.experiments.distribution_shift.run` returned.
    family : str, optional
        Which shift, see above.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    shifts = np.array(result.shifts)
    clean = int(np.flatnonzero((shifts[:, 0] == 1) & (shifts[:, 1] == 0))[0])
    if family == "contrast":
        cols = np.flatnonzero(shifts[:, 1] == 0)
        x, xlabel = shifts[cols, 0], "contrast factor c (test images c * x)"
    elif family == "brightness":
        cols = np.concatenate([[clean], np.flatnonzero(shifts[:, 1] != 0)])
        x, xlabel = shifts[cols, 1], "brightness offset b (test images x + b)"
    else:
        raise ValueError(f"family must be 'contrast' or 'brightness', got {family!r}.")
    colors = dict(
        zip(
            result.accuracy,
            [COLORS["baseline"], COLORS["bn"], COLORS["alt1"], COLORS["alt2"], COLORS["alt3"]],
            strict=False,
        )
    )
    for m, acc in result.accuracy.items():
        seed_band(ax, x, 100 * acc[:, cols], m, colors[m])
    if family == "contrast":
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Trained on clean MNIST, tested with a {family} shift")
    ax.legend()
    return ax


def plot_bn_activation_size(result, ax=None):
    """RMS of each BN layer's eval-mode output vs the contrast of the test images.

    Parameters
    ----------
    result : bnguide.experiments.distribution_shift.Result
        What :func:`bnguide.experiments.distribution_shift.run` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    shifts = np.array(result.shifts)
    cols = np.flatnonzero(shifts[:, 1] == 0)
    x = shifts[cols, 0]
    palette = [COLORS["bn"], COLORS["alt2"], COLORS["alt1"], COLORS["alt3"]]
    for layer in range(result.bn_rms.shape[2]):
        color = palette[layer % len(palette)]
        seed_band(ax, x, result.bn_rms[:, cols, layer], f"BN layer {layer + 1}", color)
    ax.plot(x, x, ls="--", color=COLORS["paper"], label="proportional to c")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set_xlabel("contrast factor c of the test images")
    ax.set_ylabel("rms of the BN output (eval mode)")
    ax.set_title("Eval-mode activations follow the shift")
    ax.legend()
    return ax


def plot_small_batches(result, ax=None, *, batch_stats: bool = False):
    """Test accuracy vs batch size per normalizer (small-batches experiment).

    With ``batch_stats`` the batch-wise normalizers are also drawn (dotted) when tested with
    batch statistics at their training batch size.

    Parameters
    ----------
    result : bnguide.experiments.small_batches.Result
        What :func:`bnguide.experiments.small_batches.run` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.
    batch_stats : bool, optional
        Also draw the accuracy with batch statistics.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    b = result.batch_sizes
    for norm, acc in result.accuracy.items():
        label, color = _VARIANT_STYLE[norm]
        seed_band(ax, b, 100 * acc, label, color)
        if batch_stats and norm in result.batch_stat_accuracy:
            seed_band(
                ax,
                b,
                100 * result.batch_stat_accuracy[norm],
                f"{label}, batch statistics",
                color,
                marker="x",
                ls=":",
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(b, [str(v) for v in b])
    ax.set_xlabel(f"batch size (all runs see {result.config.examples:,} examples)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Small batches")
    ax.legend()
    return ax


def plot_recurrent_loss(result, ax=None):
    """Training-loss curves of the recurrent experiment, per normalizer.

    Parameters
    ----------
    result : bnguide.experiments.recurrent.Result
        What :func:`bnguide.experiments.recurrent.run` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    labels = {"none": "no normalization", "batch": "BN, per-step statistics", "layer": "LayerNorm"}
    for norm, loss in result.loss.items():
        _, color = _VARIANT_STYLE[norm]
        seed_band(ax, result.window_end, loss, labels[norm], color, marker=None)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"training loss (mean of {result.config.smooth} steps)")
    ax.set_title("Row-by-row MNIST, tanh RNN")
    ax.legend()
    return ax


def plot_confounded(result, ax=None):
    """Grouped bars: test accuracy of the four (normalization, learning rate) cells.

    Parameters
    ----------
    result : bnguide.experiments.confounded_comparison.Result
        What :func:`bnguide.experiments.confounded_comparison.run` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default the current Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    lrs = result.config.lrs
    width = 0.38
    for i, norm in enumerate(("none", "batch")):
        label, color = _VARIANT_STYLE[norm]
        means = [100 * result.mean(norm, lr) for lr in lrs]
        accs = [100 * result.accuracy[(norm, lr)] for lr in lrs]
        pos = np.arange(len(lrs)) + (i - 0.5) * width
        ax.bar(pos, means, width, color=color, label=label)
        for p, a in zip(pos, accs, strict=True):
            ax.plot(np.full(len(a), p), a, "k.", ms=4)
    ax.set_xticks(np.arange(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_xlabel(f"learning rate (SGD, {result.config.steps} steps)")
    ax.set_ylabel("test accuracy (%) (dots: seeds)")
    ax.set_ylim(0, 112)
    ax.set_title("The 2 x 2 design")
    ax.legend(loc="upper left", ncols=2)
    return ax
