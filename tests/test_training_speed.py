"""The training-speed benchmark's machinery (not its timings: no timed tests)."""

import dataclasses

import numpy as np
import pytest

from bnguide.benchmarks import training_speed
from bnguide.experiments import ioffe_mnist


def test_plain_loop_trains_the_same_nets_as_the_fast_loop():
    config = dataclasses.replace(
        ioffe_mnist.Config(), steps=30, seeds=(0,), eval_every=10, dense_until=0
    )
    _, fast, workers = training_speed.time_fast(config)
    assert workers == []  # too short a run to start worker processes
    seconds, plain = training_speed.time_plain(config, 30)
    assert plain.shape == fast.shape == (2, 1) and seconds > 0
    np.testing.assert_allclose(plain, fast, atol=2e-4)  # same weights, batches, evaluations


def test_plain_loop_reports_every_evaluation_it_makes():
    config = dataclasses.replace(ioffe_mnist.Config(), steps=30, eval_every=10, dense_until=0)
    variant = config.variants()[0]
    data = training_speed.load_data(config.dataset)
    clock = []
    training_speed.plain_loop(variant, 0, data, config, 20, clock)
    assert len(clock) == 3 and all(t > 0 for t in clock)  # steps 0, 10 and 20


def test_short_plain_runs_are_extrapolated_with_the_full_evaluation_schedule(capsys):
    training_speed.main(["--steps", "40", "--plain-steps", "20"])
    out = capsys.readouterr().out
    assert "measured on 20 steps; training time scaled x2, evaluations to the full schedule" in out
    assert "speed-up:" in out


def test_bad_step_counts_are_refused(capsys):
    with pytest.raises(SystemExit):
        training_speed.main(["--steps", "10", "--plain-steps", "20"])
    assert "--plain-steps between 1 and --steps" in capsys.readouterr().err
