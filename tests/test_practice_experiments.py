"""Tests for the experiments of the part *BN in practice*: configs, invariants, tiny runs."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from bnguide import experiments
from bnguide.experiments import (
    confounded_comparison,
    distribution_shift,
    eval_statistics,
    recurrent,
    regularization,
    small_batches,
)
from bnguide.models.norm_mlp import NormMLP
from bnguide.precise_bn import batch_statistics, recompute_bn_stats
from bnguide.training.fit import train

MODULES = {
    "eval-statistics": eval_statistics,
    "distribution-shift": distribution_shift,
    "small-batches": small_batches,
    "regularization": regularization,
    "recurrent": recurrent,
    "confounded-comparison": confounded_comparison,
}


def test_experiments_are_listed_under_their_names():
    found = experiments.available()
    for name, module in MODULES.items():
        assert found[name] is module
        assert module.DESCRIPTION and dataclasses.is_dataclass(module.Config)
        hash(module.Config())  # frozen: usable as a cache key


@pytest.mark.parametrize(
    "module, field",
    [
        (eval_statistics, "batch_size"),
        (distribution_shift, "batch_size"),
        (distribution_shift, "eval_batch_size"),
        (recurrent, "batch_size"),
        (confounded_comparison, "batch_size"),
    ],
)
def test_batch_size_below_two_is_rejected(module, field):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2, got 1"):
        module.Config(**{field: 1})


@pytest.mark.parametrize("module", [small_batches, regularization])
def test_batch_sizes_below_two_are_rejected(module):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2, got 1. Batch norm"):
        module.Config(batch_sizes=(1, 4))


def test_unknown_normalizer_names_are_rejected():
    with pytest.raises(ValueError, match="Unknown normalizer 'bn'. Use one of: 'none', 'batch'"):
        small_batches.Config(norms=("bn",))
    with pytest.raises(ValueError, match="Unknown normalizer 'group'. Use one of: 'none'"):
        recurrent.Config(norms=("group",))
    with pytest.raises(ValueError, match="Unknown variant 'l2'. Use one of: 'none', 'batch'"):
        regularization.Config(variants=("l2",))


def test_other_config_errors():
    with pytest.raises(ValueError, match="checkpoints must be increasing step numbers"):
        eval_statistics.Config(checkpoints=(20, 10))
    with pytest.raises(ValueError, match=r"momenta must be in \(0, 1\]"):
        eval_statistics.Config(momenta=(0.0,))
    with pytest.raises(ValueError, match="contrasts must be positive"):
        distribution_shift.Config(contrasts=(0.0, 1.0))
    with pytest.raises(ValueError, match="target_examples must hold at least two evaluation"):
        distribution_shift.Config(target_examples=150)
    with pytest.raises(ValueError, match="must allow at least 10 steps at every batch size"):
        small_batches.Config(examples=100, batch_sizes=(2, 32))
    with pytest.raises(ValueError, match="batch size 2048 exceeds train_size=1024"):
        regularization.Config(batch_sizes=(2048,))
    with pytest.raises(ValueError, match=r"steps \(30\) must be a positive multiple of smooth"):
        recurrent.Config(steps=30, smooth=25)
    with pytest.raises(ValueError, match="lrs must be .small, large. with 0 < small < large"):
        confounded_comparison.Config(lrs=(0.1, 0.01))
    with pytest.raises(ValueError, match="seeds must not be empty"):
        small_batches.Config(seeds=())


def test_ema_tracker_reproduces_torchs_running_statistics():
    torch.manual_seed(0)
    model = NormMLP(6, (5, 4), 3, norm="batch").double()
    tracker = eval_statistics.EMATracker(model, (0.1, 0.5))
    x = torch.randn(40, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    train(model, x, y, batch_size=8, steps=7, lr=0.1)
    tracker.remove()
    bns = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    for (mean, var), bn in zip(tracker.stats[0.1], bns, strict=True):
        torch.testing.assert_close(mean, bn.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(var, bn.running_var, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(tracker.stats[0.5][0][0], bns[0].running_mean)
    model(x)  # hooks removed: nothing moves any more
    torch.testing.assert_close(tracker.stats[0.1][0][0], bns[0].running_mean, rtol=0, atol=1)


def test_batch_statistics_make_bn_invariant_to_intensity_shifts():
    # The claim behind the chapter's fixes: with a bias-free first layer, normalizing with the
    # statistics of the shifted data removes any per-feature scale (c > 0) and offset.
    torch.manual_seed(0)
    model = NormMLP(20, (16, 8), 3, norm="batch").double().eval()
    for layer in model:
        if isinstance(layer, nn.BatchNorm1d):
            layer.eps = 1e-12  # exact invariance holds up to eps; make it negligible
    x = torch.rand(64, 20, dtype=torch.float64)
    shifted = distribution_shift.shift(x, 3.0, 0.4)
    torch.testing.assert_close(shifted, 3.0 * x + 0.4)
    with torch.no_grad(), batch_statistics(model):
        torch.testing.assert_close(model(shifted), model(x), rtol=1e-8, atol=1e-8)
    clean, adapted = NormMLP(20, (16, 8), 3).double(), NormMLP(20, (16, 8), 3).double()
    for net in (clean, adapted):
        net.load_state_dict(model.state_dict())
        for layer in net:
            if isinstance(layer, nn.BatchNorm1d):
                layer.eps = 1e-12
    recompute_bn_stats(clean, x.split(16))
    recompute_bn_stats(adapted, shifted.split(16))
    with torch.no_grad():
        torch.testing.assert_close(adapted.eval()(shifted), clean.eval()(x), rtol=1e-8, atol=1e-8)
        assert not torch.allclose(clean(shifted), clean(x), atol=1e-3)  # frozen statistics: not


def test_batch_statistics_noise_matches_sampling_theory():
    gen = torch.Generator().manual_seed(0)
    n, b = 2000, 16
    z = torch.randn(n, 30, generator=gen, dtype=torch.float64) * 3 + 1
    z[:, 0] = 5.0  # a dead unit: no variance, left out
    mean_noise, std_noise = regularization.batch_statistics_noise(z, b, 400, gen)
    assert mean_noise == pytest.approx(np.sqrt((n - b) / (b * (n - 1))), rel=0.05)
    # Gaussian data: sigma_B / sigma - 1 has rms about sqrt(1 / (2B)) (plus a small bias).
    assert std_noise == pytest.approx(np.sqrt(1 / (2 * b)), rel=0.25)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2, got 1"):
        regularization.batch_statistics_noise(z, 1, 10, gen)


def test_regularization_gap_kinds():
    result = regularization.Result(
        config=regularization.Config(),
        batch_sizes=np.array([4]),
        train_loss={"none": np.array([[0.1]])},
        test_loss={"none": np.array([[0.4]])},
        train_accuracy={"none": np.array([[1.0]])},
        test_accuracy={"none": np.array([[0.9]])},
        mean_noise=np.zeros((1, 1)),
        std_noise=np.zeros((1, 1)),
    )
    assert result.gap("none") == pytest.approx(0.3)
    assert result.gap("none", "accuracy") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="kind must be 'loss' or 'accuracy', got 'auc'"):
        result.gap("none", "auc")


# Tiny runs: every experiment end to end at a scale of seconds; shapes and invariants only.


def test_eval_statistics_tiny_run():
    config = eval_statistics.Config(hidden=(8,), checkpoints=(2, 4), precise_batches=3, seeds=(0,))
    result = eval_statistics.run(config)
    assert result.methods == ("ema 0.01", "ema 0.1", "precise")
    assert result.accuracy["precise"].shape == (1, 2)
    assert np.all(result.mean_distance["precise"] == 0)
    assert np.all(result.mean_distance["ema 0.01"] > 0)
    assert set(result.state_dict) >= {"1.running_mean", "1.running_var"}


def test_distribution_shift_tiny_run():
    config = distribution_shift.Config(
        hidden=(8,),
        steps=5,
        seeds=(0,),
        contrasts=(1.0, 2.0),
        brightnesses=(0.3,),
        target_examples=400,
    )
    result = distribution_shift.run(config)
    assert result.shifts == ((1.0, 0.0), (2.0, 0.0), (1.0, 0.3))
    assert result.accuracy["LayerNorm"].shape == (1, 3) and result.bn_rms.shape == (1, 3, 1)
    batch = result.accuracy["BN, batch statistics"][0]
    assert np.ptp(batch) < 0.002  # invariant to the shifts, up to rounding
    assert np.isnan(result.class_sorted["BN, recomputed on target"]).all()


def test_small_batches_tiny_run():
    config = small_batches.Config(
        batch_sizes=(2, 4), examples=40, hidden=(8,), seeds=(0,), batch_stat_examples=100
    )
    result = small_batches.run(config)
    assert set(result.accuracy) == set(config.norms)
    assert set(result.batch_stat_accuracy) == {"batch", "batch-renorm"}
    assert result.accuracy["group"].shape == (1, 2)
    assert small_batches.lr_for(0.05, 64) == pytest.approx(0.05)
    assert small_batches.lr_for(0.05, 16) == pytest.approx(0.025)


def test_regularization_tiny_run():
    config = regularization.Config(
        batch_sizes=(4, 16),
        train_size=64,
        examples=160,
        hidden=(8,),
        seeds=(0,),
        noise_batches=5,
    )
    result = regularization.run(config)
    assert result.train_accuracy["dropout"].shape == (1, 2)
    assert np.isfinite(result.mean_noise).all() and (result.mean_noise > 0).all()


def test_recurrent_tiny_run():
    config = recurrent.Config(hidden_size=4, steps=4, smooth=2, seeds=(0,))
    result = recurrent.run(config)
    assert result.loss["layer"].shape == (1, 2)
    assert list(result.window_end) == [2, 4]
    assert result.buffer_values == {"none": 0, "batch": 2 * 28 * 4, "layer": 0}
    assert result.parameters["batch"] == result.parameters["none"] + 4  # gamma, beta - bias


def test_confounded_comparison_tiny_run():
    config = confounded_comparison.Config(hidden=(8,), steps=3, seeds=(0, 1))
    result = confounded_comparison.run(config)
    assert set(result.accuracy) == {("none", 0.01), ("none", 0.1), ("batch", 0.01), ("batch", 0.1)}
    assert result.mean("batch", 0.1) == pytest.approx(result.accuracy[("batch", 0.1)].mean())
    assert "1.running_mean" in result.state_dict
