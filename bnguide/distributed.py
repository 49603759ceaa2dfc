"""Run a function in N local processes joined by a ``torch.distributed`` process group.

The chapter *Synchronized batch norm* and ``tests/test_sync_batchnorm.py`` use :func:`launch` to
start real processes on one machine (gloo on 127.0.0.1 by default), run the same function in
each, and collect what each rank returns. A deadline bounds every launch: when it passes, the
children are killed and :class:`TimeoutError` is raised, so a broken collective can never hang
a notebook or CI. ``torchrun`` does the same job for scripts; this is the in-process version.

When one rank raises, the others usually fail too, with gloo's "connection closed by peer" as
their peer goes away; :func:`launch` shows the first rank's own error (type, message,
traceback) and summarizes these consequences in one line. It counts each rank's collective
calls, so ranks that disagree on how many collectives to run (uneven step counts, or BN layers
in train mode on one rank and eval mode on another) are named as such. Children exit when the
launching process dies. Used in :doc:`/book/scale/sync-bn`.

Examples
--------
The function must live in an importable module (not in a notebook cell):

>>> def rank_and_size(rank, world_size):
...     return rank, world_size
>>> launch(rank_and_size, 2)  # doctest: +SKIP
[(0, 2), (1, 2)]
"""

from __future__ import annotations

import collections
import datetime
import functools
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from bnguide.processes import START_TIMEOUT_S, run_children

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


_COLLECTIVES = (
    "all_reduce", "all_gather", "all_gather_into_tensor", "all_gather_object", "all_to_all",
    "all_to_all_single", "barrier", "broadcast", "broadcast_object_list", "gather", "reduce",
    "reduce_scatter", "reduce_scatter_tensor", "scatter", "send", "recv",
)  # fmt: skip
_CONNECTION_ERRORS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def _count_collectives() -> collections.Counter:
    # Wrap torch.distributed's collectives (looked up at call time by every caller) to count them.
    counts: collections.Counter = collections.Counter()
    for name in _COLLECTIVES:
        original = getattr(dist, name, None)
        if original is None or getattr(original, "_bnguide_counted", False):
            continue

        @functools.wraps(original)
        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        counted._bnguide_counted = True
        setattr(dist, name, counted)
    return counts


def _rank(rank, world_size, port, backend, timeout, fn, args) -> tuple:
    # Runs in each child: join the group, run fn, leave; return
    # (ok, value or (exception type, message, traceback), collective counts).
    counts = _count_collectives()
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
        return True, fn(rank, world_size, *args), dict(counts)
    except BaseException as exc:  # noqa: BLE001 - the parent explains it with the counts
        return False, (type(exc).__name__, str(exc), traceback.format_exc()), dict(counts)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


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
        Seconds the ranks may run, counted once all have started (their interpreter and
        imports up; see :func:`bnguide.processes.run_children`), and for any single
        collective. Past it, every child is killed and :class:`TimeoutError` is raised.
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
    port = free_port()
    per_rank = [(r, world_size, port, backend, timeout, fn, args) for r in range(world_size)]
    out = run_children(_rank, per_rank, threads=threads, timeout=timeout, grace=_GRACE_S)
    values, errors, counts = {}, {}, {}
    for rank, (ok, value, counts[rank]) in out.values.items():
        (values if ok else errors)[rank] = value
    if errors:
        raise RuntimeError(_explain(errors, values, counts, world_size))
    for rank, code in out.died.items():
        raise RuntimeError(f"rank {rank} exited with code {code} before reporting a result.")
    if out.late:
        did = "finish" if out.started else "start"
        limit = timeout if out.started else START_TIMEOUT_S
        raise TimeoutError(
            f"launch: {len(out.late)} of {world_size} ranks did not {did} within {limit:g} s "
            "and were killed. A collective is probably waiting for a rank that never calls it."
        )
    return [values[rank] for rank in range(world_size)]


def _is_connection_error(error: tuple[str, str, str]) -> bool:
    return any(text in error[1] or text in error[2] for text in _CONNECTION_ERRORS)


def _count_text(counts: dict[str, int]) -> str:
    ops = ", ".join(f"{op} x{n}" for op, n in sorted(counts.items()))
    return f"{sum(counts.values())} ({ops})" if ops else "0"


def _explain(errors: dict, values: dict, counts: dict, world_size: int) -> str:
    """The message for a failed launch: the root cause first, its consequences summarized."""
    primary = [r for r in sorted(errors) if not _is_connection_error(errors[r])]
    secondary = [r for r in sorted(errors) if r not in primary]
    totals = {r: sum(c.values()) for r, c in counts.items()}
    per_rank = "; ".join(f"rank {r}: {_count_text(counts[r])}" for r in sorted(counts))
    if primary:
        rank = primary[0]
        kind, message, trace = errors[rank]
        text = f"rank {rank} of {world_size} raised: {kind}: {message}\n{trace.rstrip()}"
        others = primary[1:]
        if others:
            text += f"\n{_ranks(others)} raised errors of their own too."
        if secondary:
            text += (
                f"\n{_ranks(secondary)} then failed with a connection error (rank {rank} had "
                "stopped): a consequence, not a cause."
            )
        silent = [r for r in range(world_size) if r not in errors and r not in values]
        if silent:
            text += f"\n{_ranks(silent)} did not report and were stopped."
        return text
    # Only connection errors: some rank left a collective the others were still in.
    if len(set(totals.values())) > 1 or values:
        return (
            f"the {world_size} ranks ran different numbers of collective operations, so a rank "
            "waited for a peer that had already finished "
            f"(collective calls per rank: {per_rank}). Usual causes: uneven step or batch "
            "counts between ranks, or BN layers in train mode on some ranks and eval mode on "
            "others (SyncBatchNorm communicates in train mode only).\n"
            f"rank {secondary[0]}'s error: {errors[secondary[0]][1]}"
        )
    rank = secondary[0]
    return f"rank {rank} of {world_size} raised: {errors[rank][0]}:\n{errors[rank][2]}"


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))
