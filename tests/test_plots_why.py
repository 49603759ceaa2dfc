"""bnguide.plots.why: the gradient-shift figure over one seed and over several, Figures 1 and 4."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnguide.plots import why

RNG = np.random.default_rng(0)


def _result():
    return SimpleNamespace(ics_cos={v: RNG.uniform(-1, 1, (6, 5)) for v in ("none", "batch")})


def test_several_seeds_draw_the_mean_of_the_per_seed_medians_and_their_range():
    seeds = [_result() for _ in range(3)]
    ax = why.plot_gradient_shift_by_layer(seeds)
    medians = np.stack([np.median(r.ics_cos["batch"], 0) for r in seeds])  # (seeds, layers)
    line = next(ln for ln in ax.get_lines() if ln.get_label() == why.LABEL["batch"])
    np.testing.assert_allclose(line.get_ydata(), medians.mean(0))
    band = ax.collections[1].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose([band.min(), band.max()], [medians.min(), medians.max()])
    assert "3 seeds" in ax.get_ylabel() and ax.get_legend() is not None
    plt.close("all")


def test_one_seed_draws_the_median_over_training_with_quartiles():
    r = _result()
    ax = why.plot_gradient_shift_by_layer(r, variants=("batch",))
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.median(r.ics_cos["batch"], 0))
    assert "25th-75th" in ax.get_ylabel()
    plt.close("all")


def test_relative_l2_divides_by_the_gradient_norm_and_bad_fields_are_refused():
    r = _result()
    r.ics_l2 = {"batch": RNG.uniform(0, 1, (6, 5))}
    r.grad_layer_norm = {"batch": RNG.uniform(1, 2, (6, 5))}
    ax = why.plot_gradient_shift_by_layer(r, variants=("batch",), field="ics_relative_l2")
    expected = np.median(r.ics_l2["batch"] / r.grad_layer_norm["batch"], 0)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), expected)
    assert ax.get_ylabel().startswith("||G - G'|| / ||G||")
    with pytest.raises(ValueError, match="field must be one of"):
        why.plot_gradient_shift_by_layer(r, field="cos")
    plt.close("all")


def test_default_variants_are_no_normalization_and_bn():
    ax = why.plot_gradient_shift_by_layer(_result())
    assert [ln.get_label() for ln in ax.get_lines()] == [why.LABEL["none"], why.LABEL["batch"]]
    plt.close("all")


def test_landscape_medians_draw_both_medians_per_variant():
    summaries = {"none": {"loss_band": 2.0, "grad_envelope": 30.0}, "l1": {"loss_band": 0.5,
                 "grad_envelope": 4.0}}  # fmt: skip
    ax = why.plot_landscape_medians(summaries)
    heights = [p.get_height() for p in ax.patches]
    assert heights == [2.0, 0.5, 30.0, 4.0]  # the loss bands, then the envelopes
    assert [t.get_text() for t in ax.get_xticklabels()] == [why.LABEL["none"], why.LABEL["l1"]]
    plt.close("all")


def test_learning_rate_accuracy_draws_mean_and_range_per_run():
    config = SimpleNamespace(norms=("none", "batch"), lrs=(0.1, 0.5), dataset="fashion-mnist")
    runs = [
        SimpleNamespace(
            config=config,
            eval_steps=np.array([0, 50]),
            train_accuracy={
                k: RNG.uniform(0, 1, 2) for k in ("none@0.1", "batch@0.1", "none@0.5", "batch@0.5")
            },
        )  # fmt: skip
        for _ in range(3)
    ]
    ax = why.plot_learning_rate_accuracy(runs)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == [
        "standard, lr 0.1", "standard, lr 0.5", "BN, lr 0.1", "BN, lr 0.5"
    ]  # fmt: skip
    assert [ln.get_linestyle() for ln in lines] == ["-", "--", "-", "--"]
    acc = 100 * np.stack([r.train_accuracy["batch@0.5"] for r in runs])
    np.testing.assert_allclose(lines[3].get_ydata(), acc.mean(0))
    assert "3 seeds" in ax.get_title()
    plt.close("all")
