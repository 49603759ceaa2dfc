"""cached_runs: several configs of one experiment, the missing ones computed in worker processes."""

import numpy as np
import pytest

from bnguide import cache
from bnguide.cache import cache_dir, cached_run, cached_runs
from bnguide.experiments import santurkar_deep_linear as dln

TINY = [
    dln.Config(depth=4, n_samples=50, steps=20, probe_every=10, dense_until=0, seeds=(s,))
    for s in range(3)
]


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BNGUIDE_CACHE", str(tmp_path))
    monkeypatch.delenv("BNGUIDE_NO_CACHE", raising=False)
    return tmp_path


def _same(a, b):
    for v in a.loss:
        np.testing.assert_array_equal(a.loss[v], b.loss[v])
        np.testing.assert_array_equal(a.ics_cos.get(v, 0), b.ics_cos.get(v, 0))


def test_workers_compute_what_this_process_computes_in_order(private_cache, monkeypatch):
    parallel = cached_runs(dln.run, TINY, processes=2)
    assert [r.config.seeds for r in parallel] == [(0,), (1,), (2,)]
    assert len(list(cache_dir().glob("*.npz"))) == 3  # each seed cached on its own
    monkeypatch.setenv("BNGUIDE_NO_CACHE", "1")
    for config, result in zip(TINY, parallel, strict=True):
        _same(result, cached_run(dln.run, config))  # same kernels, one thread: the same bits
    assert not np.array_equal(parallel[0].loss["batch"], parallel[1].loss["batch"])


def test_cached_results_are_loaded_not_recomputed(private_cache):
    first = cached_run(dln.run, TINY[0])
    again = cached_runs(dln.run, TINY[:2], processes=2)
    _same(first, again[0])
    assert again[1].config == TINY[1]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_processes_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="processes must be a positive integer"):
        cached_runs(dln.run, TINY, processes=bad)


def test_collect_missing_notes_the_runs_then_computes_them_together(private_cache):
    other = dln.Config(depth=3, n_samples=40, steps=10, probe_every=5, dense_until=0, seeds=(7,))
    cache.cached_run(dln.run, TINY[0])  # already cached: measured inside the block as usual
    with cache.collect_missing(processes=2):
        with pytest.raises(cache.NotCachedYet):
            cached_runs(dln.run, TINY)
        with pytest.raises(cache.NotCachedYet):
            cached_run(dln.run, other)
        assert cached_run(dln.run, TINY[0]).config == TINY[0]
        assert len(list(cache_dir().glob("*.npz"))) == 1  # nothing computed inside the block
    assert len(list(cache_dir().glob("*.npz"))) == 4  # TINY[1:], and the other experiment's run
    after = cached_runs(dln.run, [*TINY, other])
    assert [r.config for r in after] == [*TINY, other]


def test_collect_missing_blocks_do_not_nest(private_cache):
    with cache.collect_missing():
        with pytest.raises(RuntimeError, match="do not nest"):
            with cache.collect_missing():
                pass
