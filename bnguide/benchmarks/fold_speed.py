"""How much faster is inference after folding BN into the layer before it?

Times eval-mode forward passes of two small networks, an MLP (Linear-BN-ReLU) and a VGG-style
CNN (Conv-BN-ReLU), before and after :func:`bnguide.fold.fold`, at batch 1 (one request) and
a larger batch. The two versions alternate within each repetition, so background load hits
both alike; each is reported as its fastest repetition (the one least disturbed by other
work on the machine), and the speed-up as the ratio of the two. Outputs are
checked equal first. Run ``python -m bnguide.benchmarks.fold_speed`` (``--quick`` for a
tiny run). Used in :doc:`/book/scale/folding`.

Examples
--------
>>> result = run(Config(repeats=3, inner=1))  # doctest: +SKIP
>>> print(format_result(result))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bnguide.fold import fold

__all__ = ["MODELS", "Config", "Result", "build", "format_result", "main", "run"]

MODELS = ("mlp", "cnn")


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    """A benchmark network in eval mode, with running statistics moved off their initial values.

    Parameters
    ----------
    name : {"mlp", "cnn"}
        784-256-256-10 MLP or a four-convolution VGG-style CNN for 32x32 RGB images.
    seed : int
        Seeds the weights and the batches that set the running statistics.

    Returns
    -------
    model : nn.Module
        The network, in eval mode.
    shape : tuple of int
        The shape of one input example.
    """
    torch.manual_seed(seed)
    if name == "mlp":
        model = nn.Sequential(
            nn.Linear(784, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
            nn.Linear(256, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
            nn.Linear(256, 10),
        )  # fmt: skip
        shape = (784,)
    elif name == "cnn":

        def stage(c_in, c_out):
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]

        model = nn.Sequential(
            *stage(3, 16), *stage(16, 16), nn.MaxPool2d(2),
            *stage(16, 32), *stage(32, 32), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
        )  # fmt: skip
        shape = (3, 32, 32)
    else:
        raise ValueError(f"Unknown benchmark model {name!r}; choose one of {', '.join(MODELS)}.")
    model.train()
    with torch.no_grad():
        for _ in range(3):  # move the running statistics away from their initial values
            model(torch.randn(32, *shape) * 2 + 0.5)
    return model.eval(), shape


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    models: tuple[str, ...] = MODELS
    batch_sizes: tuple[int, ...] = (1, 32)
    repeats: int = 30  # timed samples per version
    inner: int = 3  # forward passes per sample
    threads: int = 1


@dataclass
class Result:
    """``unfolded_ms`` / ``folded_ms``: fastest milliseconds per forward pass, ``(models,
    batch sizes)``; ``max_abs_diff``: largest output difference between the two versions;
    ``bn_layers``: BN layers removed per model."""

    config: Config
    unfolded_ms: np.ndarray
    folded_ms: np.ndarray
    max_abs_diff: np.ndarray
    bn_layers: np.ndarray

    @property
    def speedup(self) -> np.ndarray:
        """Unfolded time over folded time, ``(models, batch sizes)``."""
        return self.unfolded_ms / self.folded_ms


def _time(model, x, inner) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        model(x)
    return (time.perf_counter() - start) / inner * 1e3


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Time every (model, batch size).

    Parameters
    ----------
    config : Config
        The settings; the defaults are the scale the book shows.
    progress : bool
        Print each timing as it is measured.

    Returns
    -------
    Result
        See :class:`Result`.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    shape = (len(config.models), len(config.batch_sizes))
    unfolded, folded_ms, diff = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    layers = np.zeros(len(config.models), dtype=int)
    try:
        for i, name in enumerate(config.models):
            model, example = build(name)
            folded = fold(model)
            layers[i] = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
            for j, batch in enumerate(config.batch_sizes):
                x = torch.randn(batch, *example)
                with torch.inference_mode():
                    diff[i, j] = (model(x) - folded(x)).abs().max().item()
                    a, b = [], []
                    for _ in range(config.repeats):
                        a.append(_time(model, x, config.inner))
                        b.append(_time(folded, x, config.inner))
                unfolded[i, j], folded_ms[i, j] = min(a), min(b)
                if progress:
                    print(f"{name} batch {batch}: {unfolded[i, j]:.3f} -> {folded_ms[i, j]:.3f} ms")
    finally:
        torch.set_num_threads(threads)
    return Result(config, unfolded, folded_ms, diff, layers)


def format_result(result: Result) -> str:
    """A plain-text table of the timings.

    Parameters
    ----------
    result : Result
        What :func:`run` returned.

    Returns
    -------
    str
        One line per model and batch size.
    """
    lines = [f"{'model':6s} {'batch':>5s} {'unfolded ms':>12s} {'folded ms':>10s} {'speedup':>8s}"]
    for i, name in enumerate(result.config.models):
        for j, batch in enumerate(result.config.batch_sizes):
            lines.append(
                f"{name:6s} {batch:5d} {result.unfolded_ms[i, j]:12.3f} "
                f"{result.folded_ms[i, j]:10.3f} {result.speedup[i, j]:7.2f}x"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: run the benchmark and print the table.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few repetitions only")
    args = parser.parse_args(argv)
    config = Config(repeats=5, inner=2) if args.quick else Config()
    print(format_result(run(config, progress=True)))


if __name__ == "__main__":
    main()
