"""How much does vectorizing the landscape and gradient-shift measurements save?

:func:`bnguide.landscape.probe_gradient_direction` evaluates the loss and gradient at every step
size in one :func:`torch.func.vmap` call; :func:`bnguide.ics.gradient_shift` does the same for
every layer's ``G'``. Both accept ``vectorized=False``, which loops over step sizes (layers) one
at a time and gives the same numbers. This script times both ways on the nets of the book's
experiments — the 12-layer MLP of ``santurkar-mlp`` (batch 128, 8 step sizes) and the 25-layer
deep linear network (1000 samples, 9 step sizes) — alternating the two sides so background load
hits both, and prints the median times and their ratio measured in the same run.

Run ``python -m bnguide.benchmarks.landscape_speed`` (``--quick`` for a short run). Used in
chapter *Why BN works: a smoother landscape*.

Examples
--------
>>> from bnguide.benchmarks import landscape_speed
>>> result = landscape_speed.run(landscape_speed.Config(rounds=3))  # doctest: +SKIP
>>> print(landscape_speed.format_result(result))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from bnguide import deep_linear
from bnguide.ics import gradient_shift
from bnguide.landscape import functional_loss, probe_gradient_direction
from bnguide.norms.registry import SANTURKAR_KINDS
from bnguide.training import santurkar

__all__ = ["Config", "Result", "format_result", "main", "run"]


@dataclass(frozen=True)
class Config:
    """What to time: ``rounds`` alternating measurements per side, each at least ``min_round_s``
    seconds long; ``threads`` goes to ``torch.set_num_threads`` (0 keeps torch's default)."""

    rounds: int = 7
    min_round_s: float = 0.2
    threads: int = 1
    norm: str = "batch"


@dataclass
class Result:
    """Median seconds per call, by case name: ``{"vectorized": ..., "loop": ...}``."""

    config: Config
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def ratio(self, case: str) -> float:
        """Loop time over vectorized time (above 1: vectorizing is faster)."""
        return self.seconds[case]["loop"] / self.seconds[case]["vectorized"]


def _per_call(fn: Callable[[], object], min_s: float) -> float:
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return elapsed / calls


def _cases(norm: str) -> dict[str, Callable[[bool], object]]:
    gen = torch.Generator().manual_seed(0)
    cases = {}

    # the santurkar-mlp net on a random batch of 128 "images"
    mlp = santurkar.glorot_mlp(norm, hidden=(64,) * 12)
    x = torch.randn(128, 784, generator=gen)
    y = torch.randint(0, 10, (128,), generator=gen)
    mlp_loss = functional_loss(mlp, F.cross_entropy)
    mlp_params = {k: v.detach() for k, v in mlp.named_parameters()}
    mlp_groups = santurkar.layer_groups(mlp)
    mlp_etas = [0.1 * m for m in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)]
    mlp_new = {k: v + 1e-3 * torch.randn(v.shape, generator=gen) for k, v in mlp_params.items()}
    cases["MLP landscape (8 step sizes)"] = lambda vec: probe_gradient_direction(
        mlp_loss, mlp_params, mlp_etas, x, y, vectorized=vec
    )
    cases["MLP gradient shift (13 layers)"] = lambda vec: gradient_shift(
        mlp_loss, mlp_params, mlp_new, mlp_groups, x, y, vectorized=vec
    )

    # the deep linear network
    dln = deep_linear.DeepLinearNet(norm=norm)
    xd, td, _ = deep_linear.make_problem()
    dln_loss = functional_loss(dln, deep_linear.sum_squared_error)
    dln_params = {k: v.detach() for k, v in dln.named_parameters()}
    dln_groups = deep_linear.layer_groups(dln)
    dln_etas = [1e-6 * m for m in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30)]
    dln_new = {k: v + 1e-3 * torch.randn(v.shape, generator=gen) for k, v in dln_params.items()}
    cases["DLN landscape (8 step sizes)"] = lambda vec: probe_gradient_direction(
        dln_loss, dln_params, dln_etas, xd, td, vectorized=vec
    )
    cases["DLN gradient shift (25 layers)"] = lambda vec: gradient_shift(
        dln_loss, dln_params, dln_new, dln_groups, xd, td, vectorized=vec
    )
    return cases


def run(config: Config = Config()) -> Result:
    """Time every case both ways, alternating sides round by round.

    Parameters
    ----------
    config : Config, optional
        The number of rounds, their minimum length, the thread count and the normalizer.

    Returns
    -------
    Result
        Median seconds per call of each case, vectorized and looped.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    result = Result(config)
    for name, fn in _cases(config.norm).items():
        times = {"vectorized": [], "loop": []}
        for _ in range(config.rounds):
            for side, vec in (("vectorized", True), ("loop", False)):
                times[side].append(_per_call(lambda fn=fn, vec=vec: fn(vec), config.min_round_s))
        result.seconds[name] = {side: statistics.median(t) for side, t in times.items()}
    return result


def format_result(result: Result) -> str:
    """A table: case, vectorized and loop milliseconds per call, and their ratio.

    Parameters
    ----------
    result : Result
        What :func:`run` measured.

    Returns
    -------
    str
        The table, one line per case.
    """
    lines = [f"{'case':34s} {'vectorized':>12s} {'loop':>10s} {'loop/vec':>9s}"]
    for name, t in result.seconds.items():
        lines.append(
            f"{name:34s} {1e3 * t['vectorized']:10.1f}ms {1e3 * t['loop']:8.1f}ms "
            f"{result.ratio(name):8.2f}x"
        )
    c = result.config
    lines.append(
        f"(median of {c.rounds} alternating rounds, {c.threads or 'default'} thread(s), "
        f"norm={c.norm!r}; wall-clock time, so other jobs on the machine add noise)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Result:
    """Command-line entry point: parse the flags, time both ways and print the table.

    Parameters
    ----------
    argv : list of str, optional
        The command-line arguments, without the program name; by default ``sys.argv[1:]``.

    Returns
    -------
    Result
        The measurements, also printed.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 short rounds per side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--norm", default="batch", choices=SANTURKAR_KINDS)
    args = parser.parse_args(argv)
    config = Config(threads=args.threads, norm=args.norm)
    if args.quick:
        config = Config(rounds=3, min_round_s=0.05, threads=args.threads, norm=args.norm)
    result = run(config)
    print(format_result(result))
    return result


if __name__ == "__main__":
    main()
