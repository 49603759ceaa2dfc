"""Run a function in N local processes joined by a ``torch.distributed`` process group.

The chapter *Synchronized batch norm* and ``tests/test_sync_batchnorm.py`` use :func:`launch` to
start real processes on one machine (gloo on 127.0.0.1 by default), run the same function in
each, and collect what each rank returns. A deadline bounds every launch: when it passes, the
children are killed and :class:`TimeoutError` is raised, so a broken collective can never hang
a notebook or CI. ``torchrun`` does the same job for scripts; this is the in-process version.
Used in :doc:`/book/scale/sync-bn`.

Examples
--------
The function must live in an importable module (not in a notebook cell):

>>> def rank_and_size(rank, world_size):
...     return rank, world_size
>>> launch(rank_and_size, 2)  # doctest: +SKIP
[(0, 2), (1, 2)]
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import queue as queue_module
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["free_port", "launch"]

_GRACE_S = 5.0  # after a first error: how long to wait for the other ranks' reports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Returns
    -------
    int
        A port number chosen by the operating system.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exit_with_parent() -> None:
    # If the launching process dies (a killed notebook kernel), exit too instead of waiting
    # in a collective until its timeout.
    parent = mp.parent_process()
    if parent is not None:

        def watch():
            parent.join()
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()


def _child(rank, world_size, port, backend, timeout, threads, fn, args, results) -> None:
    # Runs in each child process: join the group, run fn, report (rank, ok, value or traceback).
    _exit_with_parent()
    torch.set_num_threads(threads)
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank % torch.cuda.device_count())
        dist.init_process_group(
            backend,
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout),
        )
        results.put((rank, True, fn(rank, world_size, *args)))
    except BaseException:
        results.put((rank, False, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _context() -> mp.context.BaseContext:
    # forkserver: children fork from a clean server that imported torch once (fast, and safe with
    # OpenMP); spawn where forkserver does not exist (Windows).
    if "forkserver" in mp.get_all_start_methods():
        return mp.get_context("forkserver")
    return mp.get_context("spawn")


def launch(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    backend: str = "gloo",
    timeout: float = 120.0,
    threads: int = 1,
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` processes and return their results.

    Each process joins a process group (``backend``, rendezvous on a free port of 127.0.0.1,
    collective timeout ``timeout``) before ``fn`` runs, and leaves it afterwards.

    Parameters
    ----------
    fn : callable
        A function defined at the top level of an importable module (a notebook's own
        functions cannot be sent to another process). Its arguments and return value must
        be picklable.
    world_size : int
        Number of processes (ranks), at least 1.
    *args
        Extra arguments passed to every rank.
    backend : {"gloo", "nccl"}
        ``"gloo"`` runs on CPU anywhere; ``"nccl"`` needs one GPU per rank.
    timeout : float
        Seconds for the whole launch (and for any single collective). Past it, every child is
        killed and :class:`TimeoutError` is raised.
    threads : int
        ``torch.set_num_threads`` in each child; keep ``world_size * threads`` <= CPU cores.

    Returns
    -------
    list
        ``fn``'s return value on each rank, in rank order.

    Raises
    ------
    RuntimeError
        If a rank raised (the message carries that rank's traceback) or died without a report.
    TimeoutError
        If the ranks did not all finish within ``timeout`` seconds.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}.")
    main = sys.modules.get("__main__")
    if fn.__module__ == "__main__" and not hasattr(main, "__file__"):
        raise ValueError(
            f"launch cannot send {fn.__qualname__!r} to other processes: it is defined in an "
            "interactive session. Define it in a .py module and import it from there."
        )
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["torch", "torch.distributed", fn.__module__])
    results = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(
            target=_child,
            args=(rank, world_size, port, backend, timeout, threads, fn, args, results),
            daemon=True,
        )
        for rank in range(world_size)
    ]
    for p in procs:
        p.start()
    values, errors = {}, {}
    deadline = time.monotonic() + timeout
    try:
        while len(values) + len(errors) < world_size:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(
                    f"launch: {world_size - len(values) - len(errors)} of {world_size} ranks "
                    f"did not finish within {timeout:g} s and were killed. A collective is "
                    "probably waiting for a rank that never calls it."
                )
            try:
                rank, ok, value = results.get(timeout=min(0.2, deadline - now))
            except queue_module.Empty:
                _check_alive(procs, values, errors)
                continue
            (values if ok else errors)[rank] = value
            if errors:
                deadline = min(deadline, time.monotonic() + _GRACE_S)
    except TimeoutError:
        if not errors:
            raise
    finally:
        for p in procs:
            p.join(timeout=1.0)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        rank = min(errors)
        raise RuntimeError(f"rank {rank} of {world_size} raised:\n{errors[rank]}")
    return [values[rank] for rank in range(world_size)]


def _check_alive(procs, values, errors) -> None:
    # A child that exited without reporting (killed, segfault) will never report: fail now.
    for rank, p in enumerate(procs):
        if rank not in values and rank not in errors and p.exitcode not in (None, 0):
            raise RuntimeError(
                f"rank {rank} exited with code {p.exitcode} before reporting a result."
            )
