"""BatchNorm and its alternatives on one benchmark: a small CNN, batch sizes 2 to 128.

For every normalizer (``NORMS`` of :mod:`bnguide.models.small_cnn`: none, BN, Batch Renorm,
GN, LN, IN, RMSNorm), batch size and seed, the small CNN is trained on a Fashion-MNIST subset
for the same number of SGD steps with the same learning rate, then tested in eval mode.
Wall-clock time per training step is recorded too (it depends on the machine and its load). Used in
:doc:`/book/scale/normalizers`.

Examples
--------
>>> from bnguide.cache import cached_run
>>> result = cached_run(run, Config())  # doctest: +SKIP
>>> result.accuracy["batch"].mean(0)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bnguide.claims import Quoted
from bnguide.models.small_cnn import (
    NORMS,
    SPATIAL,
    load_subset,
    set_renorm_limits,
    small_cnn,
)
from bnguide.training.fit import check_batch_size, evaluate, train

__all__ = ["NAME", "DESCRIPTION", "NORMS", "SPATIAL", "Config", "Result", "run"]

NAME = "normalizer-benchmark"
DESCRIPTION = "Small CNN on Fashion-MNIST: BN, Batch Renorm, GN, LN, IN, RMSNorm at batch 2-128"

QUOTED = [
    Quoted(
        paper="Wu & He 2018",
        where="Fig. 1",
        statement="GroupNorm's ResNet-50 error on ImageNet at 2 images per GPU is lower than BN's",
        paper_value="10.6 points lower",
        chapter="book/scale/normalizers",
        why_not="ImageNet scale; this benchmark compares the normalizers on a small CNN instead",
    )
]
"""Paper numbers that :doc:`/book/scale/normalizers` quotes without measuring them."""


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    norms: tuple[str, ...] = tuple(NORMS)
    batch_sizes: tuple[int, ...] = (2, 8, 32, 128)
    steps: int = 200  # the same for every batch size
    lr: float = 0.02
    sgd_momentum: float = 0.9
    train_size: int = 4096
    test_size: int = 2000
    seeds: tuple[int, ...] = (0, 1)
    dataset: str = "fashion-mnist"

    def __post_init__(self) -> None:
        unknown = [n for n in self.norms if n not in NORMS]
        if unknown:
            raise ValueError(f"Unknown norms {unknown}; choose from {', '.join(NORMS)}.")
        for b in self.batch_sizes:
            check_batch_size(b, where="normalizer-benchmark")
        if self.steps < 10:
            raise ValueError(f"steps must be at least 10, got {self.steps}.")
        if not self.seeds:
            raise ValueError("seeds must not be empty.")


@dataclass
class Result:
    """Per normalizer, arrays of shape ``(seeds, batch sizes)``: ``accuracy`` (test, eval
    mode), ``final_loss`` (mean training loss of the last 10% of steps) and ``step_ms``
    (milliseconds per training step, wall clock, including the optimizer)."""

    config: Config
    batch_sizes: np.ndarray
    accuracy: dict[str, np.ndarray]
    final_loss: dict[str, np.ndarray]
    step_ms: dict[str, np.ndarray]


def _train_one(norm: str, batch_size: int, seed: int, config: Config, data) -> tuple:
    x, y, xt, yt = data
    torch.manual_seed(seed)
    model = small_cnn(norm)
    on_step = None
    if norm == "batch-renorm":
        set_renorm_limits(model, 0, config.steps)

        def on_step(step, m):
            set_renorm_limits(m, step, config.steps)

    start = time.perf_counter()
    losses = train(
        model,
        x,
        y,
        batch_size=batch_size,
        steps=config.steps,
        lr=config.lr,
        momentum=config.sgd_momentum,
        seed=seed,
        on_step=on_step,
    )
    step_ms = (time.perf_counter() - start) / config.steps * 1e3
    _, accuracy = evaluate(model, xt, yt)
    return accuracy, float(losses[-max(1, config.steps // 10) :].mean()), step_ms


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train every (normalizer, batch size, seed) combination.

    Parameters
    ----------
    config : Config
        The settings; the defaults are the scale the book shows.
    progress : bool
        Report progress while running.

    Returns
    -------
    Result
        See :class:`Result`.
    """
    data = load_subset(config.train_size, config.test_size, config.dataset)
    shape = (len(config.seeds), len(config.batch_sizes))
    acc = {n: np.zeros(shape) for n in config.norms}
    loss = {n: np.zeros(shape) for n in config.norms}
    ms = {n: np.zeros(shape) for n in config.norms}
    jobs = [
        (i, j, n)
        for i in range(len(config.seeds))
        for j in range(len(config.batch_sizes))
        for n in config.norms  # normalizers interleaved: background load hits all alike
    ]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc=NAME)
    for i, j, n in jobs:
        acc[n][i, j], loss[n][i, j], ms[n][i, j] = _train_one(
            n, config.batch_sizes[j], config.seeds[i], config, data
        )
    return Result(config, np.array(config.batch_sizes), acc, loss, ms)
