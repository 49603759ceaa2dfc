"""Tests for bnguide.plots.practice: every figure has a title, labelled axes and a legend."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnguide.experiments import (
    confounded_comparison,
    distribution_shift,
    eval_statistics,
    recurrent,
    regularization,
    small_batches,
)
from bnguide.plots import practice

RNG = np.random.default_rng(0)


def _acc(*shape):
    return RNG.uniform(0.5, 1.0, size=shape)


def _regularization():
    config = regularization.Config(batch_sizes=(4, 16), seeds=(0, 1))
    per = {v: _acc(2, 2) for v in config.variants}
    return regularization.Result(
        config, np.array([4, 16]), per, per, per, per, _acc(2, 2), _acc(2, 2)
    )


def _eval_statistics():
    config = eval_statistics.Config(checkpoints=(10, 20), seeds=(0,))
    methods = ("ema 0.01", "ema 0.1", "precise")
    return eval_statistics.Result(
        config,
        np.array([10, 20]),
        methods,
        {m: _acc(1, 2) for m in methods},
        {m: _acc(1, 2) for m in methods},
        {m: _acc(1, 2) for m in methods},
        {},
    )


def _shift():
    config = distribution_shift.Config(contrasts=(0.5, 1.0, 2.0), brightnesses=(0.2,), seeds=(0,))
    n = len(config.shifts)
    return distribution_shift.Result(
        config,
        config.shifts,
        {m: _acc(1, n) for m in distribution_shift.METHODS},
        _acc(1, n, 2),
        {m: _acc(1) for m in distribution_shift.METHODS},
    )


def _small():
    config = small_batches.Config(batch_sizes=(2, 4), seeds=(0,))
    return small_batches.Result(
        config,
        np.array([2, 4]),
        {n: _acc(1, 2) for n in config.norms},
        {"batch": _acc(1, 2), "batch-renorm": _acc(1, 2)},
        {n: _acc(2) for n in config.norms},
    )


def _recurrent():
    config = recurrent.Config(steps=50, smooth=25, seeds=(0, 1))
    return recurrent.Result(
        config,
        np.array([25, 50]),
        {n: _acc(2) for n in config.norms},
        {n: _acc(2, 2) for n in config.norms},
        {n: _acc(2) for n in config.norms},
        {n: 1 for n in config.norms},
        {n: 0 for n in config.norms},
    )


def _confounded():
    config = confounded_comparison.Config(seeds=(0, 1))
    cells = {(n, lr): _acc(2) for n in ("none", "batch") for lr in config.lrs}
    return confounded_comparison.Result(config, cells, {})


CASES = [
    (practice.plot_batch_noise, _regularization, {}),
    (practice.plot_regularization, _regularization, {"metric": "test_accuracy"}),
    (practice.plot_regularization, _regularization, {"metric": "loss_gap"}),
    (practice.plot_regularization, _regularization, {"metric": "accuracy_gap"}),
    (practice.plot_eval_accuracy, _eval_statistics, {}),
    (practice.plot_eval_distance, _eval_statistics, {}),
    (practice.plot_shift, _shift, {"family": "contrast"}),
    (practice.plot_shift, _shift, {"family": "brightness"}),
    (practice.plot_bn_activation_size, _shift, {}),
    (practice.plot_small_batches, _small, {"batch_stats": True}),
    (practice.plot_recurrent_loss, _recurrent, {}),
    (practice.plot_confounded, _confounded, {}),
]


@pytest.mark.parametrize("plot, make, kwargs", CASES)
def test_figures_are_labelled(plot, make, kwargs):
    fig, ax = plt.subplots()
    returned = plot(make(), ax=ax, **kwargs)
    assert returned is ax
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_legend() is not None and ax.get_legend().get_texts()
    plt.close(fig)


def test_bad_choices_are_rejected():
    with pytest.raises(ValueError, match="metric must be one of"):
        practice.plot_regularization(_regularization(), "auc")
    with pytest.raises(ValueError, match="family must be 'contrast' or 'brightness'"):
        practice.plot_shift(_shift(), "hue")
    plt.close("all")
