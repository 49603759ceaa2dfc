"""A result cache for experiments, keyed by the experiment, its config and the code version.

The book runs every notebook twice in CI (once to build the site, once under nbval) and readers
re-run notebooks; :func:`cached_run` makes each experiment compute once. Results are stored as
arrays plus JSON with a checksum (:mod:`bnguide.results`, never pickles) in
``<cache root>/results/`` (``$BNGUIDE_CACHE/results`` when ``BNGUIDE_CACHE`` is set, else
``~/.cache/bnguide/results`` on Linux). Clear it with ``python -m bnguide cache clear`` or
:func:`clear_cache`; set ``BNGUIDE_NO_CACHE=1`` to bypass it.

While a process computes a result it holds a lock on it: another process (a second notebook,
a worker of the scorecard) asking for the same result waits for it and loads it.

A damaged entry (changed at any byte, truncated, or of an older format) is recomputed with a
warning, never loaded. When the cache cannot be written (a read-only folder, ``BNGUIDE_CACHE``
under a regular file) the computed result is still returned, with one warning. Temporary files
of writes that were killed carry their process id and are removed by the next write or
``cache clear``, which does not count them as results.

The code version of an experiment is a hash of its module and of every bnguide module it imports,
directly or not (read from the source, :mod:`bnguide.source_graph`): a change to the code an
experiment runs recomputes it, so a stale result is never shown, while editing a plot or a
chapter's helper recomputes nothing. The key is stored in each result file and shown by
``python -m bnguide cache list``; ``run --out`` writes it to ``cache-key.txt``.

Used by every notebook of the book (see *Run it yourself* in :doc:`/book/intro`).

Examples
--------
>>> from bnguide.cache import cache_key, cached_run
>>> from bnguide.experiments import ghost_batch
>>> cache_key(ghost_batch.run, ghost_batch.Config()).startswith("ghost_batch-")
True
>>> result = cached_run(ghost_batch.run, ghost_batch.Config())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bnguide import results, source_graph
from bnguide.paths import cache_root, remove_stale_temporaries
from bnguide.processes import available_cpus, map_in_processes

try:
    import fcntl
except ImportError:  # Windows: no locks between processes
    fcntl = None

__all__ = [
    "atomic_save",
    "cached_run",
    "cached_runs",
    "collect_missing",
    "compute_missing",
    "NotCachedYet",
    "cache_dir",
    "cache_key",
    "clear_cache",
    "list_cache",
    "code_version",
]

R = TypeVar("R")
_PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def code_version(module: str | None = None) -> str:
    """Hash of the source an experiment runs (12 hex digits).

    Parameters
    ----------
    module : str, optional
        A module of bnguide (an experiment's ``run.__module__``): the hash covers it and every
        bnguide module it imports, directly or not (:func:`bnguide.source_graph.dependencies`),
        so editing a plot or a chapter's helper changes no experiment's version. Left out, or
        not a bnguide module: every ``.py`` file of the package.

    Returns
    -------
    str
    """
    if module in source_graph.MODULES:
        paths = [source_graph.MODULES[m] for m in source_graph.dependencies(module)]
    else:
        paths = sorted(_PACKAGE_DIR.rglob("*.py"))
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(_PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir() -> Path:
    """The folder holding cached results (not created here).

    Returns
    -------
    pathlib.Path
        ``<cache root>/results``.
    """
    return cache_root() / "results"


def cache_key(run: Callable[..., Any], config: Any) -> str:
    """The file stem under which ``run(config)`` is cached.

    Parameters
    ----------
    run : callable
        An experiment's ``run`` function.
    config : dataclass instance
        The experiment's ``Config``.

    Returns
    -------
    str
        The short module name and a hash of the run's name, ``config`` and the version of the
        code it runs (:func:`code_version` of its module).

    Raises
    ------
    TypeError
        If ``config`` is not a dataclass instance (its ``repr`` must describe it fully).
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(
            f"cached_run needs a dataclass config instance, got {type(config).__name__}. "
            "Wrap the experiment's settings in its Config dataclass."
        )
    name = f"{run.__module__}.{run.__qualname__}"
    text = f"{name}|{config!r}|{code_version(run.__module__)}"
    short = run.__module__.rsplit(".", 1)[-1]
    return f"{short}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cached_run(run: Callable[[Any], R], config: Any, *, refresh: bool = False) -> R:
    """Return ``run(config)``, computing it only if no intact cached result exists.

    Parameters
    ----------
    run : callable
        An experiment's ``run`` function (``bnguide.experiments.<name>.run``).
    config : dataclass instance
        Its configuration. Two configs with equal ``repr`` share a result.
    refresh : bool
        Recompute and overwrite the cached result.

    Returns
    -------
    The experiment's Result, freshly computed or loaded from ``cache_dir()``.

    Warns
    -----
    UserWarning
        When a cached entry is damaged (it is recomputed) or the result cannot be stored
        (it is returned all the same).
    """
    path = _entry(run, config)
    use_cache = _cache_in_use()
    if _collected is not None and not (use_cache and not refresh and path.is_file()):
        _collected.append((run, config))
        raise NotCachedYet(f"{path.stem} is not cached yet")
    if use_cache and not refresh and (found := _load(path)) is not None:
        return found
    if not use_cache:
        return run(config)
    with _computing(path):
        # Another process may have computed it while this one waited for the lock.
        if not refresh and (found := _load(path)) is not None:
            return found
        result = run(config)
        try:
            name = getattr(sys.modules.get(run.__module__), "NAME", None)
            atomic_save(
                result,
                path,
                experiment=name if isinstance(name, str) else None,
                cache_key=path.stem,
            )
        except OSError as exc:
            warnings.warn(
                f"bnguide cache: could not store the result in the cache ({exc}); "
                "returning it uncached. Point BNGUIDE_CACHE at a writable folder.",
                stacklevel=3,
            )
    return result


def _load(path: Path) -> Any | None:
    """The intact result at ``path``, or None (a damaged entry is removed with a warning)."""
    if not path.is_file():
        return None
    try:
        return results.load(path)
    except (OSError, results.ResultFileError) as exc:
        warnings.warn(f"bnguide cache: recomputing: {exc}", stacklevel=3)
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return None


@contextlib.contextmanager
def _computing(path: Path) -> Iterator[None]:
    """Hold the lock of ``path``'s entry while it is computed: one process computes, others wait.

    Two notebooks (or a notebook and the scorecard's workers) asking for the same result at once
    compute it once. The lock is ``flock`` on ``.lock-<key>`` beside the entry, released when
    its holder ends in any way (killed included); the holder removes the file before releasing
    it, and a waiter that finds its lock file gone takes a fresh one. Without ``fcntl``
    (Windows) or a writable folder there is no lock and each process computes.
    """
    lock = path.with_name(f".lock-{path.stem}")
    fd = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            while fd is None:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
                # Silent while it waits: a message would land in the outputs of the
                # book's pages whenever two of them happen to need one result.
                fcntl.flock(fd, fcntl.LOCK_EX)
                with contextlib.suppress(FileNotFoundError):
                    if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                        break  # the lock file still in place: this process holds it
                os.close(fd)  # removed by the previous holder: take the new one
                fd = None
    except OSError:  # an unwritable cache: compute unlocked (storing the result will warn)
        if fd is not None:
            os.close(fd)
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                lock.unlink()
            os.close(fd)


def _entry(run: Callable[..., Any], config: Any) -> Path:
    return cache_dir() / f"{cache_key(run, config)}.npz"


def _cache_in_use() -> bool:
    return os.environ.get("BNGUIDE_NO_CACHE", "") in ("", "0")


def atomic_save(
    result: Any, path: Path, *, experiment: str | None, cache_key: str | None = None
) -> None:
    """Write ``result`` to ``path`` with :func:`bnguide.results.save`, all or nothing.

    The file is written under a temporary name (carrying this process's id) in the same folder
    and renamed: a reader never sees half a file. Temporaries of killed writers are removed.

    Parameters
    ----------
    result : dataclass instance
        An experiment's Result.
    path : pathlib.Path
        Where the ``.npz`` file goes.
    experiment : str or None
        The experiment's ``NAME``, recorded in the file (``plot`` checks it).
    cache_key : str, optional
        Its :func:`cache_key`, recorded in the file.

    Raises
    ------
    OSError
        If the folder cannot be created or written (nothing is left behind).
    TypeError
        If the result holds a value that cannot be stored.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{os.getpid()}-", suffix=".npz")
    os.close(fd)
    try:
        results.save(tmp, result, experiment=experiment, cache_key=cache_key)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_cache() -> list[tuple[str, str | None, int]]:
    """The cached results: ``(cache key, experiment name, size in bytes)`` each, sorted.

    The key is the file's name (recorded in the file too); an unreadable entry shows ``None``
    as its experiment (the next :func:`cached_run` of it recomputes it).

    Returns
    -------
    list of (str, str or None, int)
    """
    entries = []
    for path in sorted(cache_dir().glob("*.npz")):
        try:
            meta, _ = results.read_meta(path)
            experiment = meta.get("experiment")
        except (OSError, results.ResultFileError):
            experiment = None
        entries.append((path.stem, experiment, path.stat().st_size))
    return entries


def clear_cache() -> int:
    """Delete every cached result; return how many were removed.

    Temporary files of killed writers go too, but are not counted; those of writers still
    running are left alone.

    Returns
    -------
    int
        The number of cached results deleted.
    """
    folder = cache_dir()
    if not folder.is_dir():
        return 0
    remove_stale_temporaries(folder)
    removed = 0
    for path in [*folder.glob("*.npz"), *folder.glob("*.pkl")]:  # .pkl: the old format
        if not path.name.startswith("."):
            path.unlink()
            removed += 1
    return removed


def cached_runs(
    run: Callable[[Any], R], configs: Iterable[Any], *, processes: int | None = None
) -> list[R]:
    """Return ``[cached_run(run, c) for c in configs]``, computing missing results in parallel.

    The usual use is one experiment over several seeds (``configs`` differing only in ``seed``):
    each seed is cached on its own, so pages that need the same seeds share them, and the seeds
    that are not cached yet are computed in worker processes, one torch thread each
    (:func:`bnguide.processes.map_in_processes`). A worker computes exactly what
    :func:`cached_run` would in this process (same config, same kernels), so the results do
    not depend on ``processes``.

    Parameters
    ----------
    run : callable
        An experiment's ``run`` function (a module-level function: workers import it).
    configs : iterable of dataclass instances
        One config per result wanted.
    processes : int, optional
        Worker processes for the missing results (default: the CPUs this process may use).
        1 computes them here, one after the other.

    Returns
    -------
    list
        The results, in the order of ``configs``.

    Raises
    ------
    ValueError
        If ``processes`` is not a positive integer.
    """
    configs = list(configs)
    computed = compute_missing([(run, c) for c in configs], processes=processes)
    return [computed[i] if i in computed else cached_run(run, c) for i, c in enumerate(configs)]


def compute_missing(
    jobs: Iterable[tuple[Callable[[Any], Any], Any]], *, processes: int | None = None
) -> dict[int, Any]:
    """Compute and cache the ``(run, config)`` jobs that have no cached result, in parallel.

    Jobs of different experiments can share one pool of workers, so a page that needs several
    experiments' seeds keeps every worker busy (see :func:`collect_missing`).

    Parameters
    ----------
    jobs : iterable of (run, config)
    processes : int, optional
        As for :func:`cached_runs`. With 1, or only one job missing, nothing is computed here:
        :func:`cached_run` computes it when it is asked for.

    Returns
    -------
    dict of int to Result
        The results computed, by position in ``jobs``.

    Raises
    ------
    ValueError
        If ``processes`` is not a positive integer.
    """
    jobs = list(jobs)
    processes = available_cpus() if processes is None else processes
    if isinstance(processes, bool) or int(processes) != processes or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes!r}.")
    missing, seen = [], set()
    for i, (run, config) in enumerate(jobs):
        key = _entry(run, config)
        if not (_cache_in_use() and key.is_file()) and key not in seen:
            missing.append(i)
            seen.add(key)
    if _collected is not None:
        _collected.extend(jobs[i] for i in missing)
        if missing:
            raise NotCachedYet(f"{len(missing)} result(s) not cached yet")
    if len(missing) < 2 or processes == 1:
        return {}
    done = map_in_processes(cached_run, [jobs[i] for i in missing], processes=processes)
    return dict(zip(missing, done, strict=True))


class NotCachedYet(Exception):
    """Raised by :func:`cached_run`/:func:`cached_runs` inside :func:`collect_missing`."""


_collected: list | None = None


@contextlib.contextmanager
def collect_missing(*, processes: int | None = None) -> Iterator[None]:
    """Compute, in one pool of workers, every result the code in the block asks for.

    Inside the block, :func:`cached_run` and :func:`cached_runs` compute nothing: they note the
    ``(run, config)`` jobs without a cached result and raise :class:`NotCachedYet`, which the
    block catches around each independent piece (a claim's measurement, say). On leaving the
    block, the noted jobs are computed together by :func:`compute_missing`, so the workers stay
    busy across experiments instead of idling at the end of each one. Used by
    :func:`bnguide.claims.scorecard`.

    Parameters
    ----------
    processes : int, optional
        As for :func:`cached_runs`.

    Returns
    -------
    contextlib.AbstractContextManager
        A ``with`` block; on a normal exit it has computed and cached every run noted inside.

    Examples
    --------
    >>> from bnguide import cache
    >>> from bnguide.experiments import santurkar_mlp
    >>> with cache.collect_missing():  # doctest: +SKIP
    ...     try:
    ...         cache.cached_runs(santurkar_mlp.run, santurkar_mlp.seed_configs())
    ...     except cache.NotCachedYet:
    ...         pass
    """
    global _collected
    if _collected is not None:
        raise RuntimeError("collect_missing() blocks do not nest.")
    _collected = []
    try:
        yield
        jobs = _collected
    finally:
        _collected = None
    if _cache_in_use():  # without a cache the results would be computed twice
        compute_missing(jobs, processes=processes)
