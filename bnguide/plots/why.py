"""Figures of the *Why BN works* chapters (Santurkar et al. 2018 reproduced at CPU scale).

Each function takes an experiment Result (``santurkar-noisy-bn``, ``santurkar-mlp``,
``santurkar-deep-linear``) or a :class:`bnguide.theory.Theorem41`, draws on ``ax`` (or new
axes) and returns the Axes (or an array of them).

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import santurkar_mlp
>>> from bnguide.plots import why
>>> result = cached_run(santurkar_mlp.run, santurkar_mlp.Config())  # doctest: +SKIP
>>> axes = why.plot_landscape(result, ("none", "batch"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from bnguide.landscape import band_statistics
from bnguide.plots._bands import seed_band
from bnguide.style import COLORS

__all__ = [
    "COLOR",
    "LABEL",
    "plot_accuracy",
    "plot_deep_linear_layer_cos",
    "plot_deep_linear_loss",
    "plot_deep_linear_worst_loss",
    "plot_distribution_shift",
    "plot_gradient_shift",
    "plot_gradient_shift_by_layer",
    "plot_landscape",
    "plot_landscape_medians",
    "plot_learning_rate_accuracy",
    "plot_moment_sensitivity",
    "plot_theorem_4_1",
    "plot_unit_percentiles",
]

# Keyed by the kinds of bnguide.norms.registry ("none", "batch", "l1", ...) and the noisy
# variants of santurkar-noisy-bn.
LABEL = {
    "none": "standard",
    "batch": "BN",
    "noisy-batch": "noisy BN",
    "none+noise": "standard + noise",
    "l1": "L1 norm",
    "l2": "L2 norm",
    "linf": "L\u221e norm",
}
COLOR = {
    "none": COLORS["baseline"],
    "batch": COLORS["bn"],
    "noisy-batch": COLORS["alt1"],
    "none+noise": COLORS["alt3"],
    "l1": COLORS["alt1"],
    "l2": COLORS["alt2"],
    "linf": COLORS["alt3"],
}


def _ax(ax):
    return ax if ax is not None else plt.figure().gca()


def _standard_and_bn(per_variant: dict) -> list[str]:
    # the default pair of the Definition 2.1 and Figure 4 panels: no normalization and BN
    return [v for v in ("none", "batch") if v in per_variant]


def plot_accuracy(result, variants: Sequence[str] | None = None, *, ax=None, title=None):
    """Training accuracy (eval mode, fixed subset) against steps; mean and min-max over seeds.

    Parameters
    ----------
    result : dataclass
        A :class:`bnguide.experiments.santurkar_mlp.Result` or a
        :class:`bnguide.experiments.santurkar_noisy_bn.Result`.
    variants : sequence of str, optional
        Which variants to draw; by default all.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.
    title : str, optional
        Title of the Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _ax(ax)
    for v in variants or list(result.train_accuracy):
        acc = 100 * np.atleast_2d(result.train_accuracy[v])  # (S, E)
        label = LABEL.get(v, v) + (f" ({len(acc)} seeds)" if len(acc) > 1 else "")
        ax.plot(result.eval_steps, acc.mean(0), color=COLOR.get(v), label=label)
        if len(acc) > 1:
            ax.fill_between(
                result.eval_steps, acc.min(0), acc.max(0), color=COLOR.get(v), alpha=0.2
            )
    ax.set_xlabel(f"training step (batches of {result.config.batch_size})")
    ax.set_ylabel("training accuracy (%)")
    ax.set_title(title or f"Training accuracy on {result.config.dataset}")
    ax.legend(loc="lower right")
    return ax


def plot_unit_percentiles(result, unit: int = 0, *, seed_index: int = 0, axes=None):
    """15th / 50th / 85th percentiles of one unit's input over training, one panel per variant.

    The unit is read where the next layer reads it: after the normalization and the noise.

    Parameters
    ----------
    result : bnguide.experiments.santurkar_noisy_bn.Result
        What :func:`bnguide.experiments.santurkar_noisy_bn.run` returned.
    unit : int, optional
        Which of the probed units.
    seed_index : int, optional
        Which seed.
    axes : sequence of matplotlib.axes.Axes, optional
        One per variant; by default a new figure.

    Returns
    -------
    array of matplotlib.axes.Axes
    """
    variants = list(result.units)
    if axes is None:
        _, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants), 3.2), sharey=False)
    axes = np.atleast_1d(axes)
    steps = result.snapshot_steps
    for ax, v in zip(axes, variants, strict=True):
        values = result.units[v][seed_index, :, :, unit]  # (T, n_probe)
        lo, mid, hi = np.percentile(values, [15, 50, 85], axis=1)
        ax.fill_between(steps, lo, hi, color=COLOR.get(v), alpha=0.25, label="15th-85th pct")
        ax.plot(steps, mid, color=COLOR.get(v), label="median")
        ax.set_title(LABEL.get(v, v))
        ax.set_xlabel("training step")
    axes[0].set_ylabel(f"input of unit {unit}, hidden layer {result.config.probe_layer + 1}")
    axes[0].legend(loc="best")
    return axes


def plot_distribution_shift(result, *, ax=None, relative: bool = False):
    """Mean 1-Wasserstein distance between consecutive snapshots of the probed layer's inputs.

    Parameters
    ----------
    result : bnguide.experiments.santurkar_noisy_bn.Result
        What :func:`bnguide.experiments.santurkar_noisy_bn.run` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.
    relative : bool, optional
        Not used by this function.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _ax(ax)
    steps = result.snapshot_steps[1:]
    for v, shift in result.shift.items():
        ax.plot(steps, shift.mean(0), color=COLOR.get(v), label=LABEL.get(v, v), marker=".")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"W1 shift per {result.config.snapshot_every} steps")
    ax.set_title(f"How fast hidden layer {result.config.probe_layer + 1}'s inputs move")
    ax.legend(loc="best")
    return ax


def plot_gradient_shift(result, layer: int, variants=None, *, axes=None, title=""):
    """Definition 2.1 over training for one layer: ``||G - G'||`` and ``cos(G, G')``.

    Parameters
    ----------
    result : dataclass
        A :class:`bnguide.experiments.santurkar_mlp.Result` (for the deep linear network, one
        seed's layer: :func:`plot_deep_linear_layer_cos`).
    layer : int
        The layer, counted from 0.
    variants : sequence of str, optional
        Which variants to draw; by default no normalization and BN.
    axes : sequence of two matplotlib.axes.Axes, optional
        By default a new figure.
    title : str, optional
        Prefix of the panel titles.

    Returns
    -------
    array of matplotlib.axes.Axes
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9.6, 3.4))
    steps = result.probe_steps
    for v in variants or _standard_and_bn(result.ics_l2):
        axes[0].plot(steps, result.ics_l2[v][:, layer], color=COLOR.get(v), label=LABEL.get(v, v))
        axes[1].plot(steps, result.ics_cos[v][:, layer], color=COLOR.get(v), label=LABEL.get(v, v))
    axes[0].set_ylabel("||G - G'||")
    axes[0].set_title(f"{title}L2 difference, layer {layer + 1}")
    axes[1].set_ylabel("cos(G, G')")
    axes[1].set_ylim(-1.05, 1.05)
    axes[1].set_title(f"{title}cosine, layer {layer + 1}")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.legend(loc="best")
    return axes


_SHIFT_LABELS = {
    "ics_cos": "cos(G, G')",
    "ics_l2": "||G - G'||",
    "ics_relative_l2": "||G - G'|| / ||G||",
}


def _shift(result, variant, field):
    # (P, layers): one of Definition 2.1's measurements, the relative one derived from ||G||.
    if field == "ics_relative_l2":
        return result.ics_l2[variant] / result.grad_layer_norm[variant]
    return getattr(result, field)[variant]


def plot_gradient_shift_by_layer(result, variants=None, *, field="ics_cos", ax=None, title=None):
    """Median over training of ``cos(G, G')`` (or another Definition 2.1 measure) per layer.

    With one result, the line is the median over the probed steps and the band the 25th-75th
    percentile; with several (one per seed), the line is the mean over seeds of each seed's
    median and the band its min-max over seeds.

    Parameters
    ----------
    result : dataclass or sequence of dataclasses
        A :class:`bnguide.experiments.santurkar_mlp.Result` or a
        :class:`bnguide.experiments.santurkar_deep_linear.Result` (which holds its seeds), or a
        list of them (seeds).
    variants : sequence of str, optional
        Which variants to draw; by default no normalization and BN.
    field : str, optional
        ``"ics_cos"`` (default), ``"ics_l2"`` or ``"ics_relative_l2"`` (``||G - G'|| / ||G||``,
        MLP results only: it needs ``grad_layer_norm``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.
    title : str, optional
        Title of the Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if field not in _SHIFT_LABELS:
        raise ValueError(f"field must be one of {list(_SHIFT_LABELS)}, got {field!r}.")
    ax = _ax(ax)
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    for v in variants or _standard_and_bn(results[0].ics_cos):
        cos = np.stack([_shift(r, v, field) for r in results])  # (seeds, P, layers)
        if cos.ndim == 4:  # one result holding its seeds (the deep linear network's)
            cos = np.concatenate(cos)
        layers = np.arange(1, cos.shape[2] + 1)
        if len(cos) == 1:
            q25, q50, q75 = np.percentile(cos[0], [25, 50, 75], axis=0)
            ax.plot(layers, q50, color=COLOR.get(v), marker="o", ms=3, label=LABEL.get(v, v))
            ax.fill_between(layers, q25, q75, color=COLOR.get(v), alpha=0.2)
        else:
            seed_band(ax, layers, np.median(cos, axis=1), LABEL.get(v, v), COLOR.get(v), ms=3)
    if field == "ics_cos":
        ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("layer (1 = input layer)")
    name = _SHIFT_LABELS[field]
    if len(cos) == 1:
        ax.set_ylabel(f"{name}: median, 25th-75th pct")
    else:
        ax.set_ylabel(f"{name}: median, {len(cos)} seeds")
    ax.set_title(title or "Gradient shift by layer")
    ax.legend(loc="lower left")
    return ax


def plot_landscape(result, variants=None, *, axes=None, log_loss: bool = False):
    """Figure 4 of the paper: loss band, gradient-predictiveness band and effective beta.

    The bands span the minimum to the maximum over the step sizes at each probed step.

    Parameters
    ----------
    result : dataclass
        A :class:`bnguide.experiments.santurkar_mlp.Result` (the deep linear network's worst
        loss along the gradient: :func:`plot_deep_linear_worst_loss`).
    variants : sequence of str, optional
        Which variants to draw; by default no normalization and BN.
    axes : sequence of three matplotlib.axes.Axes, optional
        By default a new figure.
    log_loss : bool, optional
        Draw the loss on a log scale.

    Returns
    -------
    array of matplotlib.axes.Axes
    """
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13.5, 3.6))
    steps = result.probe_steps
    for v in variants or _standard_and_bn(result.band_losses):
        c, label = COLOR.get(v), LABEL.get(v, v)
        losses, diffs = result.band_losses[v], result.grad_diffs[v]  # (P, K)
        axes[0].fill_between(steps, losses.min(1), losses.max(1), color=c, alpha=0.35, label=label)
        axes[1].fill_between(steps, diffs.min(1), diffs.max(1), color=c, alpha=0.35, label=label)
        stats = band_statistics(losses, diffs, result.step_sizes, result.grad_norm[v])
        axes[2].plot(steps, stats["beta"], color=c, label=label)
    lo, hi = result.step_sizes.min() / result.config.lr, result.step_sizes.max() / result.config.lr
    axes[0].set_title(f"Loss along the gradient ({lo:g}x-{hi:g}x lr)")
    axes[0].set_ylabel("loss")
    axes[1].set_title("Gradient predictiveness")
    axes[1].set_ylabel("||grad L(w) - grad L(w - eta g)||")
    axes[2].set_title("Effective beta-smoothness")
    axes[2].set_ylabel("max over eta of grad change / ||eta g||")
    if log_loss:
        for ax in axes:
            ax.set_yscale("log")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.legend(loc="best")
    return axes


def plot_landscape_medians(summaries: dict, *, ax=None, title=None):
    """Figure 4's two medians per variant as bars: loss-band width and gradient envelope.

    Parameters
    ----------
    summaries : dict
        Variant name -> the dict of
        :func:`bnguide.experiments.santurkar_mlp.landscape_summary` (``"loss_band"``,
        ``"grad_envelope"``, ...).
    ax : matplotlib.axes.Axes, optional
        The panel to draw the bars on (a new figure if left out).
    title : str, optional
        Replaces the default title, "Landscape along the gradient".

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _ax(ax)
    names = list(summaries)
    x = np.arange(len(names))
    colors = [COLOR.get(v) for v in names]
    band = [summaries[v]["loss_band"] for v in names]
    envelope = [summaries[v]["grad_envelope"] for v in names]
    ax.bar(x - 0.2, band, 0.4, color=colors, label="loss band (median width)")
    ax.bar(
        x + 0.2, envelope, 0.4, color=colors, alpha=0.45, hatch="//",
        label="gradient envelope (median)",
    )  # fmt: skip
    ax.set_xticks(x, [LABEL.get(v, v) for v in names])
    ax.set_yscale("log")
    ax.set_ylabel("median over the probed steps")
    ax.set_title(title or "Landscape along the gradient")
    ax.legend()
    return ax


def plot_learning_rate_accuracy(results, *, ax=None):
    """Figure 1: training accuracy of every (norm, learning rate) run, mean and range of seeds.

    Parameters
    ----------
    results : sequence of bnguide.experiments.santurkar_learning_rate.Result
        One per seed, with the same config but for the seed.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        Solid lines at the first learning rate of the config, dashed at the others.
    """
    ax = _ax(ax)
    results = list(results)
    first = results[0]
    norms = first.config.norms
    for k in sorted(first.train_accuracy, key=lambda k: norms.index(k.split("@")[0])):
        norm, lr = k.split("@")  # keys "norm@lr"
        style = "-" if float(lr) == first.config.lrs[0] else "--"
        acc = 100 * np.stack([r.train_accuracy[k] for r in results])  # (seeds, evaluations)
        c = COLOR.get(norm)
        ax.plot(first.eval_steps, acc.mean(0), style, color=c, label=f"{LABEL.get(norm)}, lr {lr}")
        ax.fill_between(first.eval_steps, acc.min(0), acc.max(0), color=c, alpha=0.15)
    ax.set_xlabel("training step")
    ax.set_ylabel("training accuracy (%), eval mode")
    ax.set_ylim(0, 100)
    dataset = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(first.config.dataset)
    ax.set_title(f"MLP on {dataset}: mean and range of {len(results)} seeds")
    ax.legend()
    return ax


def plot_deep_linear_loss(result, *, seed_index: int = 0, ax=None):
    """Full-batch loss of the deep linear network for every variant, one seed (log scale).

    Parameters
    ----------
    result : bnguide.experiments.santurkar_deep_linear.Result
        What :func:`bnguide.experiments.santurkar_deep_linear.run` returned.
    seed_index : int, optional
        Which of ``result.config.seeds`` to draw.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _ax(ax)
    for v, loss in result.loss.items():
        ax.plot(result.loss_steps, loss[seed_index], color=COLOR.get(v), label=LABEL.get(v, v))
    ax.set_yscale("log")
    ax.set_xlabel(f"gradient-descent step (lr {result.config.lr:g})")
    ax.set_ylabel("sum of squared errors")
    ax.set_title(f"Deep linear network: training loss (seed {result.config.seeds[seed_index]})")
    ax.legend(loc="best")
    return ax


def plot_deep_linear_layer_cos(
    result, layer: int, variants=("none", "batch"), *, seed_index: int = 0, ax=None, title=None
):
    """``cos(G, G')`` of one layer of the deep linear network over training, one seed.

    Parameters
    ----------
    result : bnguide.experiments.santurkar_deep_linear.Result
        With ``variants`` among its ``ics_variants``.
    layer : int
        The layer, counted from 0.
    variants : sequence of str, optional
        Which variants to draw.
    seed_index : int, optional
        Which of ``result.config.seeds`` to draw.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.
    title : str, optional
        Title of the Axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _ax(ax)
    for v in variants:
        cos = result.ics_cos[v][seed_index, :, layer]  # (P,)
        ax.plot(result.probe_steps, cos, color=COLOR.get(v), label=LABEL.get(v, v))
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("cos(G, G')")
    seed = result.config.seeds[seed_index]
    ax.set_title(title or f"DLN, lr {result.config.lr:g}: layer {layer + 1} (seed {seed})")
    ax.legend(loc="best")
    return ax


def plot_deep_linear_worst_loss(result, *, seed_index: int = 0, ax=None):
    """The largest loss along the gradient at each probe of the deep linear network, one seed.

    Parameters
    ----------
    result : bnguide.experiments.santurkar_deep_linear.Result
        What :func:`bnguide.experiments.santurkar_deep_linear.run` returned.
    seed_index : int, optional
        Which of ``result.config.seeds`` to draw.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _ax(ax)
    for v, band in result.band_losses.items():
        worst = band[seed_index].max(1)  # (P,): max over the step sizes
        ax.plot(result.probe_steps, worst, color=COLOR.get(v), label=LABEL.get(v, v))
    lo, hi = result.step_sizes.min() / result.config.lr, result.step_sizes.max() / result.config.lr
    ax.set_yscale("log")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("max over eta of L(w - eta g)")
    seed = result.config.seeds[seed_index]
    ax.set_title(f"DLN: worst loss along the gradient ({lo:g}x-{hi:g}x lr), seed {seed}")
    ax.legend(loc="best")
    return ax


def plot_moment_sensitivity(sensitivities: dict, layer: int, *, ax=None):
    """Bars: how strongly each layer's parameters move the mean and spread of one hidden unit.

    Parameters
    ----------
    sensitivities : dict of str to torch.Tensor
        Variant -> what :func:`bnguide.deep_linear.unit_moment_sensitivity` returned.
    layer : int
        The layer of the unit, for the title.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _ax(ax)
    width = 0.8 / len(sensitivities)
    for i, (v, s) in enumerate(sensitivities.items()):
        s = np.asarray(s)
        idx = np.arange(1, len(s) + 1)
        ax.bar(
            idx + (i - (len(sensitivities) - 1) / 2) * width,
            s,
            width,
            color=COLOR.get(v),
            label=LABEL.get(v, v),
        )
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_xlabel("layer whose parameters move")
    ax.set_ylabel("||grad mean|| + ||grad std||")
    ax.set_xlim(0.3, layer + 1.7)
    ax.set_title(f"What moves the distribution of a unit of layer {layer + 1}")
    ax.legend(loc="best")
    return ax


def plot_theorem_4_1(check, *, ax=None):
    """Theorem 4.1: the BN gradient norm (autograd) against the bound and the unreduced norm.

    Parameters
    ----------
    check : Theorem41
        What :func:`bnguide.theory.theorem_4_1` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _ax(ax)
    ax.loglog(
        check.scaled_norm,
        check.lhs,
        ".",
        ms=3,
        color=COLORS["baseline"],
        label="vs (gamma/sigma)^2 ||g||^2 (no subtraction)",
    )
    ax.loglog(check.rhs, check.lhs, ".", ms=3, color=COLORS["bn"], label="vs the bound")
    lims = np.array([min(check.lhs.min(), check.rhs.min()), check.scaled_norm.max()])
    ax.plot(lims, lims, color=COLORS["paper"], lw=1, ls="--", label="y = x")
    ax.set_xlabel("right-hand side")
    ax.set_ylabel("||dL/dy||^2 with BN (autograd)")
    ax.set_title(f"Theorem 4.1 on {len(check.lhs)} random units (m = {check.m})")
    ax.legend(loc="upper left")
    return ax
