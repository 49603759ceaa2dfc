"""Every experiment of ``bnguide.experiments.available()`` runs at a tiny scale, and its Result
round-trips through :mod:`bnguide.results` (as flax's ``train_test.py`` does for its examples).

A new experiment adds its tiny settings to ``TINY``; the first test fails until it does.
"""

import dataclasses

import numpy as np
import pytest
import torch

from bnguide import experiments, results
from bnguide.training.fit import single_thread

# Config overrides that make each experiment take seconds; everything else keeps its default.
TINY = {
    "bn-placement": dict(steps=20, seeds=(0,), eval_every=10, last_evals=1),
    "confounded-comparison": dict(steps=10, seeds=(0,), hidden=(16,)),
    "distribution-shift": dict(
        steps=10, seeds=(0,), hidden=(16,), contrasts=(1.0, 2.0), brightnesses=(0.1,),
        target_examples=200,
    ),
    "eval-statistics": dict(
        hidden=(16,), checkpoints=(5, 10), seeds=(0,), precise_batches=5, momenta=(0.1,)
    ),
    "ghost-batch": dict(
        batch_size=32, ghost_sizes=(8, 32), small_batch=8, hidden=(16,), epochs=2, eval_every=1,
        train_size=128, test_size=100, seeds=(0,),
    ),
    "init-scale": dict(stds=(0.1, 1.0), seeds=(0,), hidden=(16,), steps=10),
    "ioffe-mnist": dict(steps=30, seeds=(0,)),
    "learning-rate": dict(steps=20, seeds=(0,), hidden=(16, 16), eval_every=10),
    "normalizer-benchmark": dict(
        norms=("none", "batch"), batch_sizes=(8,), steps=10, train_size=256, test_size=100,
        seeds=(0,),
    ),
    "recurrent": dict(hidden_size=8, steps=10, seeds=(0,), smooth=2),
    "regularization": dict(
        batch_sizes=(16,), train_size=128, examples=256, hidden=(16,), seeds=(0,),
        noise_batches=5,
    ),
    "santurkar-deep-linear": dict(depth=4, n_samples=64, steps=20, probe_every=10,
                                  loss_every=10, step_multipliers=(0.5, 1.0), seeds=(0, 1)),
    "santurkar-learning-rate": dict(hidden=(16, 16), steps=20, eval_every=10, n_eval=200),
    "santurkar-mlp": dict(
        hidden=(16, 16), steps=20, probe_every=10, step_multipliers=(1.0, 2.0), eval_every=10,
        n_eval=200, n_test=200,
    ),
    "santurkar-noisy-bn": dict(
        hidden=(16, 16, 16), steps=20, eval_every=10, n_eval=200, probe_layer=1,
        snapshot_every=10, n_probe=64, n_units=2,
    ),
    "saturation": dict(seeds=(0,), hidden=(16, 16), steps=10, examples=100),
    "small-batches": dict(
        batch_sizes=(8,), norms=("none", "batch"), examples=256, hidden=(16,), seeds=(0,),
        batch_stat_examples=200,
    ),
    "sync-bn-small-batch": dict(
        world_size=2, per_rank_batches=(2,), steps=10, train_size=256, test_size=100,
        seeds=(0,), timing_repeats=2,
    ),
}  # fmt: skip


def test_every_experiment_has_tiny_settings():
    assert sorted(TINY) == sorted(experiments.available())


def _same(a, b) -> bool:
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            _same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, True)
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
            and bool((a.isnan() == b.isnan()).all())
        )
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", sorted(TINY))
def test_experiment_runs_tiny_and_its_result_round_trips(name, tmp_path):
    module = experiments.get(name)
    config = dataclasses.replace(module.Config(), **TINY[name])
    with single_thread():
        result = module.run(config)
    assert getattr(result, "config", config) == config
    path = tmp_path / "result.npz"
    results.save(path, result, experiment=module.NAME)
    assert results.read(path)[0] == module.NAME
    assert _same(result, results.load(path, experiment=module.NAME))


def test_the_comparison_can_fail():
    assert not _same({"a": np.zeros(2)}, {"a": np.array([0.0, 1e-12])})
    assert not _same((1, 2), [1, 2])
    assert not _same(torch.zeros(2), torch.zeros(2, dtype=torch.float64))


def test_seed_configs_vary_the_seed_field_each_config_has():
    from bnguide.experiments import santurkar_mlp, santurkar_noisy_bn

    one = experiments.seed_configs(santurkar_mlp.Config(steps=7), (3, 4))
    assert [(c.seed, c.steps) for c in one] == [(3, 7), (4, 7)]
    many = experiments.seed_configs(santurkar_noisy_bn.Config(), (2,))
    assert [c.seeds for c in many] == [(2,)]

    @dataclasses.dataclass(frozen=True)
    class NoSeed:
        steps: int = 1

    with pytest.raises(ValueError, match="no field 'seed' or 'seeds'"):
        experiments.seed_configs(NoSeed(), (0,))
