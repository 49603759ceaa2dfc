"""bnguide.cache: compute once per (config, code version), atomic writes, clear errors."""

import dataclasses
import importlib
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bnguide import cache
from bnguide.processes import run_children

CALLS = []


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 3


def run(config):
    CALLS.append(config)
    return {"value": config.steps * 2}


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("BNGUIDE_CACHE", str(tmp_path))
    monkeypatch.delenv("BNGUIDE_NO_CACHE", raising=False)
    CALLS.clear()


def test_second_call_loads_instead_of_computing():
    assert cache.cached_run(run, Config()) == {"value": 6}
    assert cache.cached_run(run, Config()) == {"value": 6}
    assert CALLS == [Config()]
    assert cache.cached_run(run, Config(steps=4)) == {"value": 8}
    assert len(CALLS) == 2


def test_refresh_and_no_cache_recompute(monkeypatch):
    cache.cached_run(run, Config())
    cache.cached_run(run, Config(), refresh=True)
    monkeypatch.setenv("BNGUIDE_NO_CACHE", "1")
    cache.cached_run(run, Config())
    assert len(CALLS) == 3


def test_key_depends_on_code_version(monkeypatch):
    key = cache.cache_key(run, Config())
    monkeypatch.setattr(cache, "code_version", lambda module=None: "something-else")
    assert cache.cache_key(run, Config()) != key


def test_a_corrupt_entry_is_recomputed_not_returned(tmp_path):
    cache.cached_run(run, Config())
    (entry,) = cache.cache_dir().glob("*.npz")
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2])
    with pytest.warns(UserWarning, match="recomputing: .* is damaged"):
        assert cache.cached_run(run, Config()) == {"value": 6}
    assert len(CALLS) == 2
    assert entry.read_bytes() == good  # written again, the same bytes


def test_an_entry_of_the_old_pickle_format_is_never_unpickled(tmp_path):
    cache.cached_run(run, Config())
    (entry,) = cache.cache_dir().glob("*.npz")
    entry.write_bytes(pickle.dumps({"value": 666}))
    with pytest.warns(UserWarning, match="is not a bnguide result file"):
        assert cache.cached_run(run, Config()) == {"value": 6}


def test_entries_are_result_files_naming_their_experiment(monkeypatch):
    from bnguide import results
    from bnguide.experiments import ghost_batch

    def ghost_run(config):  # stands for ghost_batch.run: the key and name come from its module
        return {"value": 1}

    ghost_run.__module__ = ghost_batch.__name__
    cache.cached_run(ghost_run, Config())
    (entry,) = cache.cache_dir().glob("ghost_batch-*.npz")
    assert results.read(entry) == ("ghost-batch", {"value": 1})


def test_failed_run_leaves_nothing_behind():
    def failing(config):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.cached_run(failing, Config())
    assert not cache.cache_dir().exists() or list(cache.cache_dir().iterdir()) == []


def test_a_result_holding_code_is_refused_and_leaves_no_temporary_file():
    with pytest.raises(TypeError, match=r"result\[0\]: a result cannot hold a builtins.function"):
        cache.cached_run(lambda c: [lambda: None], Config())
    assert list(cache.cache_dir().iterdir()) == []


def test_config_must_be_a_dataclass_instance():
    with pytest.raises(TypeError, match="needs a dataclass config instance, got dict"):
        cache.cached_run(run, {"steps": 3})
    with pytest.raises(TypeError, match="dataclass config instance"):
        cache.cached_run(run, Config)


def test_clear_cache_counts_removed_files():
    cache.cached_run(run, Config(1))
    cache.cached_run(run, Config(2))
    assert cache.clear_cache() == 2
    assert cache.clear_cache() == 0


@pytest.mark.parametrize(
    "edited, changes",
    [
        ("bnguide.plots.why", False),  # a figure
        ("bnguide.pitfalls", False),  # a chapter's helper
        ("bnguide.experiments.learning_rate", False),  # another experiment
        ("bnguide.experiments.ioffe_mnist", True),  # the experiment itself
        ("bnguide.training.variants", True),  # the loop it trains with
        ("bnguide.models.stacked", True),  # the network, imported through bnguide.models
    ],
)
def test_an_experiments_key_covers_the_code_it_runs_and_nothing_else(
    monkeypatch, tmp_path, edited, changes
):
    from bnguide import source_graph
    from bnguide.experiments import ioffe_mnist

    config = ioffe_mnist.Config()
    cache.code_version.cache_clear()
    before = cache.cache_key(ioffe_mnist.run, config)
    package = cache._PACKAGE_DIR
    for name, path in list(source_graph.MODULES.items()):  # a copy of the package, one file edited
        copy = tmp_path / path.relative_to(package)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes() + (b"\n# an edit\n" if name == edited else b""))
        monkeypatch.setitem(source_graph.MODULES, name, copy)
    monkeypatch.setattr(cache, "_PACKAGE_DIR", tmp_path)
    cache.code_version.cache_clear()
    try:
        after = cache.cache_key(ioffe_mnist.run, config)
    finally:
        cache.code_version.cache_clear()
    assert (after != before) is changes
    assert after.startswith("ioffe_mnist-")


def test_the_key_is_recorded_in_the_entry_and_listed():
    from bnguide import results

    cache.cached_run(run, Config())
    (entry,) = cache.cache_dir().glob("*.npz")
    meta, _ = results.read_meta(entry)
    assert meta["cache_key"] == entry.stem == cache.cache_key(run, Config())
    assert cache.list_cache() == [(entry.stem, None, entry.stat().st_size)]


SLOW_EXPERIMENT = """
import dataclasses, os, time

@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 1

def run(config):
    with open(os.environ["CALLS_FILE"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(float(os.environ["SLEEP_S"]))
    arrived = os.environ.get("ARRIVED")  # wait until every caller has asked for the result
    while arrived and len(os.listdir(arrived)) < int(os.environ["CALLERS"]):
        time.sleep(0.05)
    time.sleep(2 if arrived else 0)  # time for the last one to arrive to reach the lock
    return {"value": 7}
"""


def _call(module):  # in a child process: cached_run of the module's slow experiment
    experiment = importlib.import_module(module)
    cache.cache_key(experiment.run, experiment.Config())  # the slow part before the lock
    if os.environ.get("ARRIVED"):  # say "I am asking now" (read by the slow run)
        (Path(os.environ["ARRIVED"]) / str(os.getpid())).touch()
    return cache.cached_run(experiment.run, experiment.Config())


@pytest.fixture
def slow_experiment(tmp_path, monkeypatch):
    (tmp_path / "slow_toy_experiment.py").write_text(SLOW_EXPERIMENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CALLS_FILE", str(tmp_path / "calls.txt"))
    return tmp_path / "calls.txt"


def test_processes_asking_for_one_result_at_once_compute_it_once(
    slow_experiment, monkeypatch, tmp_path
):
    # The run ends only once all three have asked: the other two ask while it computes.
    (tmp_path / "arrived").mkdir()
    monkeypatch.setenv("ARRIVED", str(tmp_path / "arrived"))
    monkeypatch.setenv("CALLERS", "3")
    monkeypatch.setenv("SLEEP_S", "0")
    out = run_children(_call, [("slow_toy_experiment",)] * 3)
    out.check("A process asking for the result")
    assert [out.values[i] for i in range(3)] == [{"value": 7}] * 3
    assert len(slow_experiment.read_text().splitlines()) == 1  # one of them computed it
    assert [p.suffix for p in cache.cache_dir().iterdir()] == [".npz"]  # no lock file left


def test_a_killed_computation_releases_its_lock(slow_experiment, monkeypatch):
    monkeypatch.setenv("SLEEP_S", "600")
    code = "import sys; from tests.test_cache import _call; _call('slow_toy_experiment')"
    env = {**os.environ, "PYTHONPATH": str(slow_experiment.parent)}
    child = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1], env=env)
    try:
        deadline = time.monotonic() + 120
        while not slow_experiment.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # until the child is computing, holding the lock
        assert child.poll() is None and list(cache.cache_dir().glob(".lock-*"))
    finally:
        child.kill()
        child.wait()
    monkeypatch.setenv("SLEEP_S", "0")
    assert _call("slow_toy_experiment") == {"value": 7}  # computed here, without waiting
    assert len(slow_experiment.read_text().splitlines()) == 2
