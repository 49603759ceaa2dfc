"""How fast is bnguide's batch norm next to PyTorch's native kernel?

Times one training step (forward and backward) of :class:`bnguide.nn.BatchNorm1d`/``2d``
against ``torch.nn.BatchNorm1d``/``2d`` at a few shapes, eager against eager and
``torch.compile`` against ``torch.compile``, and the compact NumPy backward against the
step-by-step graph backward. Prints median-time ratios measured in the same run (the two sides
alternate, so background load hits both). Also counts the memory traffic each eager step
causes at the operator level, a deterministic view of where the time goes.

Run ``python -m bnguide.benchmarks.bn_speed`` (``--quick`` for a tiny run, ``--no-compile`` to
skip ``torch.compile``). On a machine shared with other jobs, elapsed time with several threads
is dominated by threads waiting for each other; ``--threads 1 --clock cpu`` measures the CPU
time of one thread instead, which background load disturbs far less. Used in chapter *The full
guide: implementation* (page *Numerics and speed*).

Examples
--------
>>> from bnguide.benchmarks import bn_speed
>>> config = bn_speed.Config(shapes=((256, 1024),), compile=False, numpy=False)
>>> result = bn_speed.run(config)  # doctest: +SKIP
>>> print(bn_speed.format_result(result))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import bnguide.nn as bnn
from bnguide import numpy_bn

__all__ = [
    "SHAPES",
    "QUICK_SHAPES",
    "Config",
    "Result",
    "format_result",
    "main",
    "memory_traffic",
    "run",
    "time_step",
]

SHAPES: tuple[tuple[int, ...], ...] = ((256, 1024), (64, 64, 32, 32), (32, 256, 14, 14), (60, 100))
QUICK_SHAPES: tuple[tuple[int, ...], ...] = ((256, 1024), (8, 64, 16, 16), (60, 100))


@dataclass(frozen=True)
class Config:
    """What to time.

    ``rounds`` alternating measurements per side, each at least ``min_round_s`` seconds long;
    ``threads`` is passed to ``torch.set_num_threads`` (0 keeps torch's default). ``clock`` is
    ``"wall"`` (elapsed time) or ``"cpu"`` (CPU time of this process: on a machine shared with
    other jobs it leaves out the time the process waits for a core; use it with one thread).
    """

    shapes: tuple[tuple[int, ...], ...] = SHAPES
    rounds: int = 15
    min_round_s: float = 0.05
    compile: bool = True
    numpy: bool = True
    threads: int = 0
    clock: str = "wall"
    seed: int = 0


@dataclass
class Result:
    """Median seconds per step, by shape (``str(shape)`` keys) and by contender."""

    config: Config
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    traffic: dict[str, dict[str, float]] = field(default_factory=dict)

    def ratio(self, shape: str, ours: str, baseline: str) -> float:
        """``seconds[shape][ours] / seconds[shape][baseline]``."""
        return self.seconds[shape][ours] / self.seconds[shape][baseline]


def _module_pair(shape: Sequence[int], dtype=torch.float32):
    channels = shape[1]
    if len(shape) in (2, 3):
        return bnn.BatchNorm1d(channels, dtype=dtype), torch.nn.BatchNorm1d(channels, dtype=dtype)
    if len(shape) == 4:
        return bnn.BatchNorm2d(channels, dtype=dtype), torch.nn.BatchNorm2d(channels, dtype=dtype)
    return bnn.BatchNorm3d(channels, dtype=dtype), torch.nn.BatchNorm3d(channels, dtype=dtype)


def _train_step(module: Callable, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    params = [p for p in getattr(module, "parameters", list)()]

    def step() -> None:
        out = module(x)
        out.backward(grad)
        x.grad = None  # drop gradients so nothing accumulates across steps
        for p in params:
            p.grad = None

    return step


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _calibrate(step: Callable[[], None], min_round_s: float, clock: Callable[[], float]) -> int:
    # how many calls make one round last at least min_round_s
    calls = 1
    while True:
        start = clock()
        for _ in range(calls):
            step()
        if clock() - start >= min_round_s:
            return calls
        calls *= 2


def time_step(
    steps: dict[str, Callable[[], None]], rounds: int, min_round_s: float, clock: str = "wall"
) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternating rounds.

    Parameters
    ----------
    steps : dict
        Name -> a function with no arguments (one training step).
    rounds : int
        Rounds per function; each round times enough calls to last ``min_round_s``.
    min_round_s : float
        Shortest round, in seconds.
    clock : {"wall", "cpu"}
        Elapsed time or this process's CPU time.

    Returns
    -------
    dict
        Name -> median seconds per call over the rounds.
    """
    if clock not in _CLOCKS:
        raise ValueError(f"time_step: clock must be 'wall' or 'cpu', got {clock!r}.")
    now = _CLOCKS[clock]
    for step in steps.values():  # warm up (and compile)
        step()
        step()
    calls = {name: _calibrate(step, min_round_s, now) for name, step in steps.items()}
    samples: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = now()
            for _ in range(calls[name]):
                steps[name]()
            samples[name].append((now() - start) / calls[name])
    return {name: statistics.median(values) for name, values in samples.items()}


class _TrafficCounter(TorchDispatchMode):
    # Sums the elements of every tensor an aten operator reads or writes (an out= argument is
    # written, not read).
    def __init__(self) -> None:
        super().__init__()
        self.read = 0
        self.written = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func._schema.name in ("aten::view", "aten::_unsafe_view", "aten::detach"):
            return out  # no data moves
        self.ops += 1
        read_kwargs = {k: v for k, v in kwargs.items() if k != "out"}
        flat_in = torch.utils._pytree.tree_leaves((args, read_kwargs))
        flat_out = torch.utils._pytree.tree_leaves(out)
        self.read += sum(t.numel() for t in flat_in if isinstance(t, torch.Tensor))
        self.written += sum(t.numel() for t in flat_out if isinstance(t, torch.Tensor))
        return out


def memory_traffic(module: torch.nn.Module, shape: Sequence[int], seed: int = 0) -> dict:
    """Operator-level memory traffic of one eager training step, in units of the input size.

    Each aten operator reads its input tensors and writes its outputs at least once, so
    ``passes = (elements read + elements written) / input elements`` is a lower bound on the
    passes over memory (a fused kernel may read its input more than once internally).

    Parameters
    ----------
    module : torch.nn.Module
        The batch norm layer to step, in training mode.
    shape : sequence of int
        Shape of the input, e.g. ``(N, C)`` or ``(N, C, H, W)``.
    seed : int, optional
        Seed of the random input and upstream gradient.

    Returns
    -------
    dict
        ``ops`` (aten operators run), ``passes``; of a step after a first one, which may
        create what later steps reuse (bnguide's cached constants).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    grad = torch.randn(*shape, generator=gen)
    module(x).backward(grad)
    x.grad = None  # the counted step writes fresh gradients, as the timed steps do
    module.zero_grad(set_to_none=True)
    counter = _TrafficCounter()
    with counter:
        module(x).backward(grad)
    return {"ops": counter.ops, "passes": (counter.read + counter.written) / x.numel()}


def _numpy_steps(shape: Sequence[int], seed: int) -> dict[str, Callable[[], None]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    dout = rng.standard_normal(shape, dtype=np.float32)
    gamma, beta = np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32)
    _, cache = numpy_bn.batchnorm_forward(x, gamma, beta)
    return {
        "numpy_compact": lambda: numpy_bn.batchnorm_backward(dout, cache),
        "numpy_graph": lambda: numpy_bn.batchnorm_backward_graph(dout, cache),
    }


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Time every contender at every shape of ``config``; see the module docstring.

    Parameters
    ----------
    config : Config, optional
        The shapes, the number of rounds and which contenders to time.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Median seconds per step for each shape and contender, and the memory traffic.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    result = Result(config)
    for shape in config.shapes:
        key = str(tuple(shape))
        gen = torch.Generator().manual_seed(config.seed)
        x = torch.randn(*shape, generator=gen, requires_grad=True)
        grad = torch.randn(*shape, generator=gen)
        ours, native = _module_pair(shape)
        steps = {"ours": _train_step(ours, x, grad), "native": _train_step(native, x, grad)}
        if config.compile:
            ours_c, native_c = _module_pair(shape)
            steps["ours_compiled"] = _train_step(torch.compile(ours_c, dynamic=False), x, grad)
            steps["native_compiled"] = _train_step(torch.compile(native_c, dynamic=False), x, grad)
        if config.numpy:
            steps.update(_numpy_steps(shape, config.seed))
        if progress:
            print(f"timing {key} ...", flush=True)
        result.seconds[key] = time_step(steps, config.rounds, config.min_round_s, config.clock)
        result.traffic[key] = {
            "ours": memory_traffic(_module_pair(shape)[0], shape, config.seed),
            "native": memory_traffic(_module_pair(shape)[1], shape, config.seed),
        }
    return result


def format_result(result: Result) -> str:
    """A plain-text table: median milliseconds and the three ratios per shape.

    Parameters
    ----------
    result : Result
        What :func:`run` measured.

    Returns
    -------
    str
        The table, one line per shape.
    """
    lines = []
    header = f"{'shape':>18} {'ours ms':>9} {'torch ms':>9} {'eager x':>8}"
    if result.config.compile:
        header += f" {'ours c ms':>10} {'torch c ms':>10} {'compiled x':>10}"
    if result.config.numpy:
        header += f" {'graph/compact':>13}"
    header += f" {'passes ours/torch':>18}"
    lines.append(header)
    for key, s in result.seconds.items():
        line = (
            f"{key:>18} {s['ours'] * 1e3:9.3f} {s['native'] * 1e3:9.3f} "
            f"{result.ratio(key, 'ours', 'native'):8.2f}"
        )
        if result.config.compile:
            line += (
                f" {s['ours_compiled'] * 1e3:10.3f} {s['native_compiled'] * 1e3:10.3f}"
                f" {result.ratio(key, 'ours_compiled', 'native_compiled'):10.2f}"
            )
        if result.config.numpy:
            line += f" {result.ratio(key, 'numpy_graph', 'numpy_compact'):13.2f}"
        t = result.traffic[key]
        line += f" {t['ours']['passes']:8.0f} / {t['native']['passes']:<7.0f}"
        lines.append(line)
    lines.append(
        "eager x: bnguide eager / torch eager; compiled x: torch.compile(bnguide) / "
        "torch.compile(torch); graph/compact: NumPy step-by-step backward / closed form "
        f"(median {result.config.clock}-clock time per forward+backward step, float32, "
        f"{torch.get_num_threads()} threads)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: parse flags, run, print the table.

    Parameters
    ----------
    argv : sequence of str, optional
        The command-line arguments, without the program name; by default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run: small shapes, few rounds")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per contender")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--clock", choices=sorted(_CLOCKS), default="wall", help="elapsed or process CPU time"
    )
    args = parser.parse_args(argv)
    config = Config(
        shapes=QUICK_SHAPES if args.quick else SHAPES,
        rounds=args.rounds or (3 if args.quick else Config.rounds),
        min_round_s=0.01 if args.quick else Config.min_round_s,
        compile=not (args.no_compile or args.quick),
        threads=args.threads,
        clock=args.clock,
    )
    print(format_result(run(config, progress=True)))


if __name__ == "__main__":
    main()
