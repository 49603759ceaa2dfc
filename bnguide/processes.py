"""Child processes: start them one way (spawn), collect what each returns or raises, end them.

Every place where bnguide works in other processes goes through :func:`run_children`: the
training workers of :func:`bnguide.training.train_variants`, the ranks of
:func:`bnguide.distributed.launch`, and through :func:`map_in_processes` (workers that take the
next job when they finish one) the seeds that :func:`bnguide.cache.cached_runs` computes and the
independent runs of experiments such as :mod:`bnguide.experiments.recurrent`.
Spawn starts a fresh interpreter (fork is unsafe once torch has started its thread pools) that
sees this process's current environment, the same on Linux, macOS and Windows.

A fresh interpreter takes a while to import torch, longer on a busy machine, so a deadline
counts from the moment every child has started (reported that it runs, imports done), not from
the call: a deadline of 3 s is 3 s of the children's own work. Children exit when the parent
process dies, however it dies. Used in :doc:`/book/practice/ioffe-mnist` and
:doc:`/book/scale/sync-bn`.

Examples
--------
The target must live in an importable module (children import it afresh):

>>> outcome = run_children(divmod, [(7, 2), (9, 4)])  # doctest: +SKIP
>>> outcome.values  # doctest: +SKIP
{0: (3, 1), 1: (2, 1)}
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "START_TIMEOUT_S",
    "Outcome",
    "available_cpus",
    "context",
    "exit_with_parent",
    "map_in_processes",
    "run_children",
]

#: With a deadline: how long the children may take to start (interpreter and imports).
START_TIMEOUT_S = 300.0
_POLL_S = 0.2


@dataclass
class Outcome:
    """What the children of one :func:`run_children` call did, by child index.

    Attributes
    ----------
    values : dict of int to object
        What each child's target returned.
    errors : dict of int to tuple of str
        ``(exception type name, message, formatted traceback)`` of each child that raised.
    died : dict of int to int
        Exit code of each child that ended without reporting (killed, crashed).
    late : list of int
        Children still at work when the deadline (or the start limit) passed; they were killed.
    started : bool
        Whether every child started (the deadline counts from then).
    seconds : float
        Wall-clock time from the start of the children to the end of the collection.
    """

    values: dict[int, Any] = field(default_factory=dict)
    errors: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    died: dict[int, int] = field(default_factory=dict)
    late: list[int] = field(default_factory=list)
    started: bool = False
    seconds: float = 0.0

    def check(self, who: str) -> None:
        """Raise RuntimeError with the traceback of a child that raised, or for one that died.

        Parameters
        ----------
        who : str
            What a child is, for the message (``"A training worker process"``).
        """
        for _, _, trace in self.errors.values():
            raise RuntimeError(f"{who} failed:\n{trace}")
        for code in self.died.values():
            raise RuntimeError(
                f"{who} died (exit code {code}) without reporting; if memory is short, pass "
                "processes=1."
            )


def context() -> multiprocessing.context.SpawnContext:
    """The multiprocessing context of every bnguide child process: spawn.

    Returns
    -------
    multiprocessing.context.SpawnContext
    """
    return multiprocessing.get_context("spawn")


def exit_with_parent() -> None:
    """In a child process: exit at once when the parent process ends, however it ends.

    A daemon thread waits on the parent's sentinel (a pipe that closes when the parent dies,
    SIGKILL included) and then ends this process with ``os._exit``, so a killed CLI or notebook
    kernel never leaves children training or waiting in a collective. Does nothing in a
    process that multiprocessing did not start.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _child(index, target, args, threads, messages) -> None:
    # Runs in each child: say it has started, run the target, send back its value or error.
    exit_with_parent()
    import torch

    torch.set_num_threads(threads)
    messages.put((index, "started", None))
    try:
        value = target(*args)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        messages.put((index, "error", (type(exc).__name__, str(exc), traceback.format_exc())))
    else:
        messages.put((index, "ok", value))


def run_children(
    target: Callable[..., Any],
    args: Sequence[tuple],
    *,
    threads: int = 1,
    timeout: float | None = None,
    grace: float = 0.0,
    on_wait: Callable[[], None] | None = None,
) -> Outcome:
    """Run ``target(*args[i])`` in child process ``i`` for every ``i``; collect the outcomes.

    Parameters
    ----------
    target : callable
        A function defined at the top level of an importable module; its arguments and return
        value must be picklable.
    args : sequence of tuple
        One tuple of arguments per child.
    threads : int
        ``torch.set_num_threads`` in each child.
    timeout : float, optional
        Seconds the children may work, counted once all have started (which may take up to
        :data:`START_TIMEOUT_S`); None waits as long as they work.
    grace : float
        After a first error, how long to wait for the other children's reports (0: stop at
        once).
    on_wait : callable, optional
        Called about every 0.2 s while waiting (a progress bar's update).

    Returns
    -------
    Outcome
        Collection stops when every child has reported, one has died, the grace after an
        error or the deadline has passed; every child still running then is killed.
    """
    ctx = context()
    messages = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(i, target, a, threads, messages), daemon=True)
        for i, a in enumerate(args)
    ]
    out = Outcome()
    begin = time.monotonic()
    for p in procs:
        p.start()
    started: set[int] = set()
    deadline = begin + START_TIMEOUT_S if timeout is not None else math.inf
    stop_by = math.inf  # set by a first error: the end of the grace
    try:
        while len(out.values) + len(out.errors) < len(procs):
            now = time.monotonic()
            limit = min(deadline, stop_by)
            if now > limit:
                out.late = [i for i in range(len(procs)) if i not in out.values | out.errors]
                break
            try:
                index, kind, payload = messages.get(timeout=min(_POLL_S, limit - now))
            except queue.Empty:
                dead = {i: p.exitcode for i, p in enumerate(procs) if p.exitcode not in (None, 0)}
                out.died = {i: c for i, c in dead.items() if i not in out.values | out.errors}
                if out.died and messages.empty():
                    break
                out.died = {}
            else:
                if kind == "started":
                    started.add(index)
                    if len(started) == len(procs) and timeout is not None:
                        deadline = time.monotonic() + timeout  # the children's own time
                elif kind == "ok":
                    out.values[index] = payload
                else:
                    out.errors[index] = payload
                    stop_by = min(stop_by, time.monotonic() + grace)
            if on_wait is not None:
                on_wait()
    finally:
        for i, p in enumerate(procs):
            if i not in out.values | out.errors:
                p.kill()  # still at work: nobody will read what it sends
            p.join(timeout=1.0)
            if p.is_alive():
                p.kill()
                p.join()
    out.started = len(started) == len(procs)
    out.seconds = time.monotonic() - begin
    return out


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask where the OS has one).

    Returns
    -------
    int
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def map_in_processes(
    fn: Callable[..., Any], jobs: Sequence[tuple], *, processes: int | None = None
) -> list:
    """Return ``[fn(*job) for job in jobs]``, computed by worker processes.

    For independent pieces of work of a second or more (an experiment's seeds, its
    (normalizer, seed) runs). Each worker (one torch thread, started by :func:`run_children`)
    takes the next job from a shared queue when it finishes one, so the workers stay busy
    however uneven the jobs are; put the longest first. The small operations of these runs gain
    little from a second torch thread, while a second process does twice the work on two cores.

    Parameters
    ----------
    fn : callable
        A function defined at the top level of an importable module; its arguments and return
        value must be picklable. A job that needs a large dataset should load it inside ``fn``
        (cached per process) rather than receive it.
    jobs : sequence of tuple
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
    RuntimeError
        When a job raises (with the worker's traceback; the other workers are stopped) or a
        worker dies.
    """
    jobs = [tuple(job) for job in jobs]
    processes = available_cpus() if processes is None else processes
    if isinstance(processes, bool) or int(processes) != processes or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes!r}.")
    if processes == 1 or len(jobs) < 2:
        return [fn(*job) for job in jobs]
    workers = min(int(processes), len(jobs))
    tasks = context().Queue()
    for item in [*enumerate(jobs), *[None] * workers]:  # one None per worker: "no more jobs"
        tasks.put(item)
    out = run_children(_take_jobs, [(fn, tasks)] * workers)
    out.check("A worker process")
    done = {i: value for values in out.values.values() for i, value in values.items()}
    return [done[i] for i in range(len(jobs))]


def _take_jobs(fn, tasks) -> dict:
    # In a worker: run jobs from the queue until its "no more jobs", return {job index: value}.
    done = {}
    while (item := tasks.get()) is not None:
        done[item[0]] = fn(*item[1])
    return done
