"""Train the variants and seeds of :func:`bnguide.training.train_variants` in several processes.

Two things make this exact and simple: different (variant, seed) pairs never interact, and a
seed alone fixes a net's initial weights and batch order. So the pairs can be dealt out to
worker processes, trained there with :func:`~bnguide.training.train_variants` itself, and the
logs put back together; the result equals a single-process run up to float rounding.

Threads inside one process share Python's global interpreter lock, and a step of a small MLP is
many small operations that each take it: two threads, one stack each, stepped no faster than one
thread in turn (measured). Processes do not share that lock; they start and report through
:func:`bnguide.processes.run_children`. Each worker uses one torch thread; the pairs are
balanced over the workers by estimated cost (largest first, then merged back into one stack per
variant in each worker). Used by :func:`bnguide.training.train_variants` on CPUs; see
:doc:`/book/practice/ioffe-mnist`. For any other list of independent runs, see
:func:`bnguide.processes.map_in_processes`.

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

from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from bnguide.processes import context, run_children

__all__ = ["deal_out", "train_in_processes"]


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


def _worker(train, jobs, variants, data, kwargs, counter) -> list:
    """Child process: train each job (on one torch thread), return the logs."""

    def report(n):
        with counter.get_lock():
            counter.value += n

    logs = []
    for variant_ids, seeds in jobs:
        chosen = [variants[i] for i in variant_ids]
        log = train(chosen, data, seeds=seeds, processes=1, report=report, **kwargs)
        logs.append((variant_ids, seeds, log))
    return logs


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
        For each worker, its ``(variant_ids, seeds, log)`` jobs.
    seconds : float
        The wall-clock time of the whole parallel run.

    Raises
    ------
    RuntimeError
        When a worker fails (with its traceback) or dies without reporting.
    """
    seeds = [int(s) for s in seeds]
    plans = deal_out(variants, seeds, processes)
    counters = [context().Value("q", 0) for _ in plans]
    total = int(kwargs["steps"]) * sum(len(plan) for plan in plans)  # every job runs all steps
    bar = tqdm(total=total, disable=not progress, unit="step", mininterval=0.5)
    args = [
        (train, plan, list(variants), data, kwargs, c)
        for plan, c in zip(plans, counters, strict=True)
    ]
    try:
        out = run_children(
            _worker, args, on_wait=lambda: bar.update(sum(c.value for c in counters) - bar.n)
        )
        bar.update(total - bar.n)
    finally:
        bar.close()
    out.check("A training worker process")
    return [out.values[i] for i in sorted(out.values)], out.seconds
