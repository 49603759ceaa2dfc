"""The BN-in-practice experiments: protocol mechanics on tiny configs, and their summaries."""

import dataclasses

import matplotlib
import numpy as np
import pytest

from bnguide import experiments
from bnguide.experiments import bn_placement, ioffe_mnist, learning_rate
from bnguide.plots.ioffe import plot_result
from bnguide.training import TrainLog

matplotlib.use("Agg")


def fake_log(names, accuracy, steps, probe=None):
    """A TrainLog with given accuracies ``(V, S, E)`` (to test summaries, not training)."""
    accuracy = np.asarray(accuracy, dtype=float)
    v, s, e = accuracy.shape
    probe = np.zeros((v, s, e, 3)) if probe is None else np.asarray(probe, dtype=float)
    return TrainLog(
        names=tuple(names), seeds=tuple(range(s)), steps=np.asarray(steps),
        test_accuracy=accuracy, train_loss=np.zeros((v, s, e)), probe_unit=probe,
        probe_all=probe + 1, quantiles=(0.15, 0.5, 0.85), diverged_at=-np.ones((v, s), int),
        seconds=0.0,
    )  # fmt: skip


def test_experiments_are_discovered():
    found = experiments.available()
    for module in (ioffe_mnist, learning_rate, bn_placement):
        assert found[module.NAME] is module


def test_ioffe_protocol_matches_the_paper():
    config = ioffe_mnist.Config()
    assert (config.steps, config.batch_size, len(config.seeds)) == (50_000, 60, 3)
    baseline, bn = config.variants()
    assert baseline.spec.sizes == bn.spec.sizes == (784, 100, 100, 100, 10)
    assert baseline.spec.activation == bn.spec.activation == "sigmoid"
    assert (baseline.spec.placement, bn.spec.placement) == ("none", "before")
    assert baseline.lr == bn.lr
    # every step the paper reports is evaluated
    steps = np.unique(np.concatenate([[0], np.arange(0, 50_001, 1000), [50_000]]))
    assert set(ioffe_mnist.PAPER_ACCURACY["steps"]) <= set(steps)


def test_ioffe_tiny_run():
    config = ioffe_mnist.Config(steps=40, seeds=(0, 1), eval_every=20, dense_every=10,
                                dense_until=20)  # fmt: skip
    result = ioffe_mnist.run(config)
    log = result.log
    assert log.names == ("baseline", "bn")
    np.testing.assert_array_equal(log.steps, [0, 10, 20, 40])
    assert log.test_accuracy.shape == (2, 2, 4)
    assert log.probe_unit.shape == log.probe_all.shape == (2, 2, 4, 3)
    assert np.all(np.diff(log.probe_unit, axis=-1) >= 0)  # 15th <= 50th <= 85th
    # before training both nets compute the same function (BN's running stats are 0 and 1)
    np.testing.assert_allclose(log.test_accuracy[0, :, 0], log.test_accuracy[1, :, 0])
    assert ioffe_mnist.comparison_table(result) == []  # no step the paper reports was reached


def test_comparison_table_and_median_range():
    steps = [0, 4000, 5000, 6000]
    acc = [[[0.1, 0.7, 0.8, 0.85], [0.1, 0.6, 0.9, 0.9]], [[0.1, 0.95, 0.96, 0.97]] * 2]
    probe = np.zeros((2, 2, 4, 3))
    probe[0, :, :, 1] = [[9.0, 1.0, -0.5, 0.2], [9.0, 0.0, 0.1, 0.2]]  # step 0 is ignored
    probe[1, :, :, 1] = [[9.0, 0.1, 0.0, 0.05], [9.0, 0.0, 0.0, 0.0]]
    result = ioffe_mnist.Result(
        ioffe_mnist.Config(), fake_log(("baseline", "bn"), acc, steps, probe)
    )
    rows = ioffe_mnist.comparison_table(result)
    assert [r["step"] for r in rows] == [4000, 5000]
    assert rows[0]["baseline"] == pytest.approx((0.65, 0.6, 0.7))
    assert rows[1]["paper_bn"] == pytest.approx(0.956)
    shown = ioffe_mnist.comparison_display(result)  # the same rows, in percent, as a table
    assert shown.header[0] == "step" and len(shown.rows) == len(rows)
    assert shown.rows[0][:3] == ["4,000", "71.2", "65.0 (60.0-70.0)"]
    assert "<table" in shown._repr_html_() and "|" not in shown._repr_html_()
    np.testing.assert_allclose(ioffe_mnist.median_range(result, "baseline"), [1.5, 0.2])
    np.testing.assert_allclose(ioffe_mnist.median_range(result, "bn"), [0.1, 0.0])
    pooled = ioffe_mnist.median_range(result, "baseline", which="pooled")  # probe_all = probe + 1
    np.testing.assert_allclose(pooled, [1.5, 0.2])
    units = np.zeros((2, 2, 4, 3, 3))  # three units: ranges 0, 1 and 4 in seed 0
    units[0, 0, 1:, 1, 1] = [0.0, 1.0, 0.5]
    units[0, 0, 1:, 2, 1] = [4.0, 0.0, 1.0]
    result.log.probe_units = units
    np.testing.assert_allclose(
        ioffe_mnist.median_range(result, "baseline", which="typical"), [1, 0]
    )
    with pytest.raises(ValueError, match="which must be 'unit', 'typical' or 'pooled'"):
        ioffe_mnist.median_range(result, "bn", which="mean")


def test_learning_rate_variants_and_summary():
    config = learning_rate.Config(lr=0.02, target=0.5)
    variants = {v.name: v for v in config.variants()}
    assert set(variants) == set(learning_rate.PAPER_TABLE)
    assert variants["bn-x30"].lr == pytest.approx(30 * 0.02)
    assert variants["bn-x5-sigmoid"].spec.activation == "sigmoid"
    assert len({v.spec.sizes for v in variants.values()}) == 1  # same starting weights
    # momentum variants: a tenth of the rate, the same long-run step
    assert variants["bn-x30-m"].momentum == 0.9 and variants["bn"].momentum == 0
    assert variants["bn-x30-m"].lr == pytest.approx(30 * 0.02 * (1 - 0.9))
    names = [v.name for v in config.variants()]
    acc = np.full((len(names), 2, 3), 0.1)
    acc[names.index("bn")] = [[0.1, 0.6, 0.7], [0.1, 0.4, 0.55]]
    result = learning_rate.Result(config, fake_log(names, acc, [0, 10, 20]))
    row = next(r for r in learning_rate.summary(result) if r["name"] == "bn")
    # interpolated between evaluations: 0.5 is 4/5 of the way from 0.1 to 0.6, 2/3 from 0.4 to 0.55
    np.testing.assert_allclose(row["steps_to_target"], [8, 10 + 20 / 3])
    np.testing.assert_allclose(row["best"], [0.7, 0.55])
    assert row["diverged"] == 0


def test_crossing_steps_interpolates():
    steps = [0, 100, 200, 300]
    acc = [[0.1, 0.5, 0.9, 0.95], [0.96, 0.97, 0.98, 0.99], [0.1, 0.2, 0.3, 0.4]]
    got = ioffe_mnist.crossing_steps(steps, acc, 0.95)
    np.testing.assert_allclose(got[:2], [300, 0])  # reached at the last / first evaluation
    assert np.isnan(got[2])  # never
    assert ioffe_mnist.crossing_steps(steps, acc[0], 0.7) == pytest.approx(150)
    with pytest.raises(ValueError, match="3 evaluations but steps has 4"):
        ioffe_mnist.crossing_steps(steps, [0.1, 0.2, 0.3], 0.5)


def test_typical_unit_is_the_median_mover():
    steps = [0, 1, 2]
    units = np.zeros((1, 1, 3, 3, 3))  # (V, S, E, H, Q): units with median ranges 0, 2 and 5
    units[0, 0, :, 1, 1] = [7.0, 0.0, 2.0]  # step 0 is ignored
    units[0, 0, :, 2, 1] = [7.0, 5.0, 0.0]
    log = fake_log(("bn",), np.zeros((1, 1, 3)), steps)
    log.probe_units = units
    result = ioffe_mnist.Result(ioffe_mnist.Config(), log)
    np.testing.assert_array_equal(ioffe_mnist.typical_unit(result, "bn"), [1])


def test_placement_summary_is_paired():
    config = bn_placement.Config(seeds=(0, 1, 2), last_evals=2, lrs=(0.1,))
    names = [v.name for v in config.variants()]
    assert names == ["relu-before-lr0.1", "relu-after-lr0.1", "sigmoid-before-lr0.1",
                     "sigmoid-after-lr0.1"]  # fmt: skip
    assert {v.spec.placement for v in config.variants()} == {"before", "after"}
    acc = np.zeros((4, 3, 3))
    acc[0] = [[0, 0.90, 0.92], [0, 0.80, 0.82], [0, 0.95, 0.95]]
    acc[1] = [[0, 0.92, 0.94], [0, 0.81, 0.81], [0, 0.90, 0.90]]
    result = bn_placement.Result(config, fake_log(names, acc, [0, 5, 10]))
    relu = bn_placement.summary(result)[0]
    assert (relu["activation"], relu["lr"]) == ("relu", 0.1)
    np.testing.assert_allclose(relu["difference"], [0.02, 0.0, -0.05])
    assert relu["wins_after"] == 1
    assert relu["std_difference"] == pytest.approx(np.std([0.02, 0.0, -0.05], ddof=1))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ioffe_mnist.Config(steps=0), "steps must be a positive integer, got 0."),
        (lambda: ioffe_mnist.Config(seeds=()), "seeds must name at least one seed."),
        (lambda: ioffe_mnist.Config(eval_every=0), "eval_every must be a positive number"),
        (lambda: learning_rate.Config(target=1.5), "target must be an accuracy in (0, 1]"),
        (lambda: learning_rate.Config(lr=-1), "lr must be positive, got -1."),
        (lambda: bn_placement.Config(activations=()), "activations must name at least one"),
        (lambda: bn_placement.Config(last_evals=0), "last_evals must be at least 1, got 0."),
        (lambda: bn_placement.Config(lrs=(0.1, -1)), "lrs must be positive learning rates"),
    ],
)
def test_configs_reject_bad_settings(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


@pytest.mark.parametrize("module", [ioffe_mnist, learning_rate, bn_placement])
def test_tiny_runs_plot(module, tmp_path):
    small = {"steps": 12, "seeds": (0,), "eval_every": 6}
    if module is learning_rate:
        small["hidden"] = (20, 20)
    config = dataclasses.replace(module.Config(), **small)
    result = module.run(config)
    assert np.isfinite(result.log.test_accuracy).all()
    paths = plot_result(result, tmp_path)
    assert paths and all(p.is_file() and p.stat().st_size > 0 for p in paths)


def test_ioffe_figures_are_labelled():
    import matplotlib.pyplot as plt

    from bnguide.experiments import init_scale
    from bnguide.plots.ioffe import plot_learning_rate, plot_percentiles, plot_slow_start

    steps = [0, 10, 20]
    probe = np.sort(np.random.default_rng(0).normal(size=(2, 1, 3, 3)), axis=-1)
    log = fake_log(("baseline", "bn"), np.full((2, 1, 3), 0.5), steps, probe)
    log.probe_units = np.sort(np.random.default_rng(1).normal(size=(2, 1, 3, 4, 3)), axis=-1)
    ax = plot_percentiles(log, "bn", unit=3)
    assert "unit 3" in ax.get_title() and ax.get_legend() is not None
    with pytest.raises(ValueError, match="either pooled=True or a unit"):
        plot_percentiles(log, "bn", unit=3, pooled=True)
    plt.close("all")

    config = init_scale.Config(stds=(0.01, 0.1), seeds=(0, 1), norms=("none",), steps=20)
    curve = {"plain": np.random.default_rng(2).uniform(0.1, 0.9, size=(2, 2, 3))}
    zeros = np.zeros((2, 2))
    sweep = init_scale.Result(config, {"plain": zeros}, {"plain": zeros}, {"plain": zeros},
                              zeros, zeros, 0.0, np.array(steps), curve)  # fmt: skip
    ax = plot_slow_start(sweep)
    assert ax.get_title() and ax.get_xlabel() and len(ax.get_legend().get_texts()) == 3
    plt.close("all")

    config = learning_rate.Config()
    names = [v.name for v in config.variants()]
    result = learning_rate.Result(config, fake_log(names, np.full((len(names), 1, 3), 0.5), steps))
    axes = plot_learning_rate(result, momentum=True)
    assert len(axes) == 3 and "momentum" in axes[2].get_title()
    assert len(axes[2].get_legend().get_texts()) == 5
    plt.close("all")
