"""bnguide.plots.why: the gradient-shift figure over one seed and over several."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnguide.plots import why

RNG = np.random.default_rng(0)


def _result():
    return SimpleNamespace(ics_cos={v: RNG.uniform(-1, 1, (6, 5)) for v in ("none", "bn")})


def test_several_seeds_draw_the_mean_of_the_per_seed_medians_and_their_range():
    seeds = [_result() for _ in range(3)]
    ax = why.plot_gradient_shift_by_layer(seeds)
    medians = np.stack([np.median(r.ics_cos["bn"], 0) for r in seeds])  # (seeds, layers)
    line = next(ln for ln in ax.get_lines() if ln.get_label() == why.LABEL["bn"])
    np.testing.assert_allclose(line.get_ydata(), medians.mean(0))
    band = ax.collections[1].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose([band.min(), band.max()], [medians.min(), medians.max()])
    assert "3 seeds" in ax.get_ylabel() and ax.get_legend() is not None
    plt.close("all")


def test_one_seed_draws_the_median_over_training_with_quartiles():
    r = _result()
    ax = why.plot_gradient_shift_by_layer(r, variants=("bn",))
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.median(r.ics_cos["bn"], 0))
    assert "25th-75th" in ax.get_ylabel()
    plt.close("all")


def test_relative_l2_divides_by_the_gradient_norm_and_bad_fields_are_refused():
    r = _result()
    r.ics_l2 = {"bn": RNG.uniform(0, 1, (6, 5))}
    r.grad_layer_norm = {"bn": RNG.uniform(1, 2, (6, 5))}
    ax = why.plot_gradient_shift_by_layer(r, variants=("bn",), field="ics_relative_l2")
    expected = np.median(r.ics_l2["bn"] / r.grad_layer_norm["bn"], 0)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), expected)
    assert ax.get_ylabel().startswith("||G - G'|| / ||G||")
    with pytest.raises(ValueError, match="field must be one of"):
        why.plot_gradient_shift_by_layer(r, field="cos")
    plt.close("all")
