"""The speed benchmark's machinery (not its timings: no timed tests)."""

import pytest
import torch

from bnguide.benchmarks import bn_speed


def test_memory_traffic_counts_operator_level_reads_and_writes():
    shape = (16, 8)
    ours, native = bn_speed._module_pair(shape)
    a, b = bn_speed.memory_traffic(ours, shape), bn_speed.memory_traffic(native, shape)
    # native: forward reads x, writes y; backward reads g and x, writes dx (plus small tensors)
    assert 5 <= b["passes"] < 6 and b["ops"] <= 5
    assert a["passes"] > b["passes"] and a["ops"] > b["ops"]


def test_time_step_runs_every_function_and_rejects_unknown_clock():
    calls = {"a": 0, "b": 0}

    def make(name):
        def step():
            calls[name] += 1

        return step

    medians = bn_speed.time_step(
        {"a": make("a"), "b": make("b")}, rounds=2, min_round_s=0.0, clock="cpu"
    )
    assert set(medians) == {"a", "b"} and calls["a"] > 2 and calls["b"] > 2
    with pytest.raises(ValueError, match="clock must be 'wall' or 'cpu'"):
        bn_speed.time_step({"a": make("a")}, rounds=1, min_round_s=0.0, clock="gpu")


def test_tiny_run_and_table():
    config = bn_speed.Config(
        shapes=((8, 4), (2, 3, 4, 4)), rounds=1, min_round_s=0.0, compile=False
    )
    result = bn_speed.run(config)
    assert set(result.seconds) == {"(8, 4)", "(2, 3, 4, 4)"}
    assert {"ours", "native", "numpy_graph", "numpy_compact"} <= set(result.seconds["(8, 4)"])
    table = bn_speed.format_result(result)
    assert "(2, 3, 4, 4)" in table and "eager x" in table
    assert result.ratio("(8, 4)", "ours", "native") > 0


def test_module_pair_matches_dimensions():
    assert isinstance(bn_speed._module_pair((4, 3))[1], torch.nn.BatchNorm1d)
    assert isinstance(bn_speed._module_pair((4, 3, 2, 2))[1], torch.nn.BatchNorm2d)
    assert isinstance(bn_speed._module_pair((4, 3, 2, 2, 2))[1], torch.nn.BatchNorm3d)


def test_main_quick_prints_a_table(capsys):
    bn_speed.main(["--quick", "--rounds", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert "eager x" in out and "(60, 100)" in out
