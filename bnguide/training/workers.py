"""Train the variants and seeds of :func:`bnguide.training.train_variants` in several processes.

Two things make this exact and simple: different (variant, seed) pairs never interact, and a
seed alone fixes a net's initial weights and batch order. So the pairs can be dealt out to
worker processes, trained there with :func:`~bnguide.training.train_variants` itself, and the
logs put back together; the result equals a single-process run up to float rounding.

Threads inside one process (``Trainer(workers=...)``) share Python's global interpreter lock,
and a step of a small MLP is many small operations that each take it, so two threads gain little
on two cores. Processes do not share that lock. Each worker uses one torch thread; the pairs are
balanced over the workers by estimated cost (largest first, then merged back into one stack per
variant in each worker). Used by :func:`bnguide.training.train_variants` on CPUs; see
:doc:`/book/practice/ioffe-mnist`. :func:`map_in_processes` does the same for any list of
independent runs (an experiment's (normalizer, seed) runs, :func:`bnguide.cache.cached_runs`).

Examples
--------
>>> from bnguide.experiments import ioffe_mnist
>>> from bnguide.training.workers import deal_out
>>> config = ioffe_mnist.Config()
>>> deal_out(config.variants(), config.seeds, processes=2)  # (variant indices, seeds) per worker
[[((1,), (0, 1, 2))], [((0,), (0, 1, 2))]]
>>> deal_out(config.variants()[:1], config.seeds, processes=2)  # one variant: split its seeds
[[((0,), (0, 2))], [((0,), (1,))]]
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from tqdm import tqdm

__all__ = [
    "available_cpus",
    "deal_out",
    "exit_with_parent",
    "map_in_processes",
    "spawn_context",
    "train_in_processes",
]

_POLL_SECONDS = 0.5


def _cost(variant) -> float:
    """Rough cost of one (variant, seed) pair: weights per step, BN layers a third dearer."""
    sizes = variant.spec.sizes
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    return weights * (1.3 if variant.spec.placement != "none" else 1.0)


def deal_out(variants: Sequence, seeds: Sequence[int], processes: int) -> list[list[tuple]]:
    """Share the (variant, seed) pairs among ``processes`` workers by estimated cost.

    Whole variants (all their seeds, one stack) are the units while there are at least as many
    variants as workers, since a big stack runs faster per net than small ones; otherwise
    single (variant, seed) pairs are. Largest units first, each to the worker with the least
    work so far; then each worker's pairs are grouped into jobs that train as one stack.

    Parameters
    ----------
    variants : sequence of bnguide.training.Variant
    seeds : sequence of int
    processes : int
        Number of workers.

    Returns
    -------
    list of list of tuple
        Per worker, its jobs as ``(tuple of variant indices, tuple of seeds)``; workers left
        without work are dropped.
    """
    if int(processes) != processes or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes}.")
    seeds = tuple(seeds)
    if len(variants) >= processes:
        units = [[(v, s) for s in seeds] for v in range(len(variants))]
    else:
        units = [[(v, s)] for v in range(len(variants)) for s in seeds]
    units.sort(key=lambda u: -len(u) * _cost(variants[u[0][0]]))
    load, share = [0.0] * processes, [[] for _ in range(processes)]
    for unit in units:
        w = int(np.argmin(load))
        load[w] += len(unit) * _cost(variants[unit[0][0]])
        share[w].extend(unit)
    plans = []
    for pairs in share:
        by_seeds: dict[tuple, list[int]] = {}
        for v in sorted({v for v, _ in pairs}):
            mine = tuple(s for s in seeds if (v, s) in pairs)
            by_seeds.setdefault(mine, []).append(v)
        if by_seeds:
            plans.append([(tuple(vs), s) for s, vs in by_seeds.items()])
    return plans


def spawn_context() -> multiprocessing.context.SpawnContext:
    """How bnguide starts every child process: spawn, on every platform.

    Fork is unsafe once torch has started its thread pools; spawn starts a fresh interpreter that
    imports bnguide afresh, the same on Linux, macOS and Windows. Used by the worker processes
    here and by :func:`bnguide.cache.cached_runs` (:func:`bnguide.distributed.launch` keeps
    forkserver, whose preloaded server starts ranks within its deadlines).

    Returns
    -------
    multiprocessing.context.SpawnContext
    """
    return multiprocessing.get_context("spawn")


def exit_with_parent() -> None:
    """In a child process: exit at once when the parent process ends, however it ends.

    A daemon thread waits on the parent's sentinel (a pipe that closes when the parent dies,
    SIGKILL included) and then ends this process with ``os._exit``, so a killed CLI or notebook
    kernel never leaves workers training or waiting on a queue nobody reads. Does nothing in a
    process that multiprocessing did not start.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _worker(train, jobs, variants, data, kwargs, counter, results):
    """Child process: train each job with one torch thread, send back the logs or the error."""
    exit_with_parent()
    torch.set_num_threads(1)
    try:
        logs = []
        for variant_ids, seeds in jobs:

            def report(n):
                with counter.get_lock():
                    counter.value += n

            log = train(
                [variants[i] for i in variant_ids],
                data,
                seeds=seeds,
                processes=1,
                report=report,
                **kwargs,
            )
            logs.append((variant_ids, seeds, log))
        results.put(("ok", logs))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent
        results.put(("error", traceback.format_exc()))


def train_in_processes(
    train: Callable,
    variants: Sequence,
    data,
    *,
    seeds: Sequence[int],
    processes: int,
    progress: bool,
    **kwargs,
) -> tuple[list, float]:
    """Run ``train`` on shares of the (variant, seed) pairs in worker processes.

    Parameters
    ----------
    train : callable
        A module-level function (the children import it afresh), called in each worker as
        ``train(variants, data, seeds=..., processes=1, report=report, **kwargs)``, where
        ``report(n)`` counts ``n`` more steps done; :func:`bnguide.training.train_variants`.
    variants, data, seeds
        As for :func:`~bnguide.training.train_variants`.
    processes : int
        Worker processes (each with one torch thread).
    progress : bool
        Show a progress bar over all steps of all workers.
    **kwargs
        The remaining arguments of ``train``; ``steps`` must be among them.

    Returns
    -------
    per_worker : list
        For each worker, in the order they finished, its ``(variant_ids, seeds, log)`` jobs.
    seconds : float
        The wall-clock time of the whole parallel run.

    Raises
    ------
    RuntimeError
        When a worker fails (with its traceback) or dies without reporting.
    """
    seeds = [int(s) for s in seeds]
    plans = deal_out(variants, seeds, processes)
    ctx = spawn_context()
    results = ctx.Queue()
    counters = [ctx.Value("q", 0) for _ in plans]
    total = int(kwargs["steps"]) * sum(len(plan) for plan in plans)  # every job runs all steps
    start = time.perf_counter()
    workers = [
        ctx.Process(
            target=_worker,
            args=(train, plan, list(variants), data, kwargs, counter, results),
            daemon=True,
        )
        for plan, counter in zip(plans, counters, strict=True)
    ]
    for w in workers:
        w.start()
    collected, reported = [], 0
    bar = tqdm(total=total, disable=not progress, unit="step", mininterval=_POLL_SECONDS)
    try:
        while reported < len(workers):
            try:
                status, payload = results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead and results.empty():
                    raise RuntimeError(
                        f"A training worker process died (exit code {dead[0].exitcode}) "
                        "without reporting; if memory is short, pass processes=1."
                    ) from None
            else:
                if status == "error":
                    raise RuntimeError(f"A training worker process failed:\n{payload}")
                collected.append(payload)
                reported += 1
            bar.update(sum(c.value for c in counters) - bar.n)
        bar.update(total - bar.n)
    finally:
        bar.close()
        for w in workers:
            if w.is_alive():
                w.terminate()
            w.join()
    return collected, time.perf_counter() - start


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _one_thread_worker() -> None:
    # Pool initializer: exit with the parent (a killed kernel leaves no workers), one torch thread.
    exit_with_parent()
    torch.set_num_threads(1)


def map_in_processes(fn: Callable, jobs: Iterable[tuple], *, processes: int | None = None) -> list:
    """Return ``[fn(*job) for job in jobs]``, computed in worker processes.

    For independent pieces of work of a few seconds or more (an experiment's seeds, its
    (normalizer, seed) runs): each worker is a fresh spawned interpreter with one torch thread
    that exits with its parent, and takes the next job when it finishes one, in the order given
    (put the longest first). Small ops gain little from a second torch thread, while a second
    process doubles the work done on two cores.

    Parameters
    ----------
    fn : callable
        A module-level function (workers import it afresh); its arguments and return value must
        pickle. Jobs that need a large dataset should load it inside ``fn`` (cached per process)
        rather than pass it.
    jobs : iterable of tuple
        The positional arguments of each call.
    processes : int, optional
        Worker processes (default: :func:`available_cpus`). With 1, or a single job, the calls
        run here, one after the other, with this process's torch threads.

    Returns
    -------
    list
        The return values, in the order of ``jobs``.

    Raises
    ------
    ValueError
        If ``processes`` is not a positive integer.
    Exception
        The first failing job's exception, as raised in the worker (its traceback attached).
    """
    jobs = [tuple(job) for job in jobs]
    if processes is None:
        processes = available_cpus()
    if isinstance(processes, bool) or int(processes) != processes or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes!r}.")
    if processes == 1 or len(jobs) < 2:
        return [fn(*job) for job in jobs]
    workers = min(int(processes), len(jobs))
    with ProcessPoolExecutor(
        workers, mp_context=spawn_context(), initializer=_one_thread_worker
    ) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:  # stop at the first failure: jobs not started yet never start
                f.cancel()
            raise
