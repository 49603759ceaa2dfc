"""How BN degrades with very small batches, and two remedies: Batch Renormalization, GroupNorm.

The same MLP is trained on MNIST with batches of 2, 4, 8 and a reference size, each after the
same number of examples, with BN, Batch Renormalization (Ioffe 2017), GroupNorm (Wu & He 2018)
and no normalization. The learning rate follows ``lr = base_lr * sqrt(batch / 64)``. Batch
Renormalization's clipping limits relax from plain BN (``r_max=1, d_max=0``) during the first
tenth of training to ``r_max=3, d_max=5`` at half of it (:func:`bnguide.norms.renorm_limits`).
Chapter *Stability issues*.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import small_batches
>>> small_batches.NAME
'small-batches'
>>> result = cached_run(small_batches.run, small_batches.Config())  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from bnguide.data import load
from bnguide.models.norm_mlp import NORMS, NormMLP
from bnguide.norms import renorm_limits
from bnguide.norms.registry import check_kind
from bnguide.precise_bn import bn_layers
from bnguide.processes import map_in_processes
from bnguide.training.fit import check_batch_size, evaluate, single_thread, train

__all__ = ["NAME", "DESCRIPTION", "Config", "Result", "lr_for", "run"]

NAME = "small-batches"
DESCRIPTION = "BN with batches of 2-8 against Batch Renormalization, GroupNorm and no norm"


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    batch_sizes: tuple[int, ...] = (2, 4, 8, 32)
    norms: tuple[str, ...] = ("none", "batch", "batch-renorm", "group")
    examples: int = 4000  # training examples seen by every run
    hidden: tuple[int, ...] = (100, 100)
    groups: int = 4  # GroupNorm: 4 groups of 25 features
    base_lr: float = 0.05
    sgd_momentum: float = 0.9
    seeds: tuple[int, ...] = (0, 1)
    batch_stat_examples: int = 2000  # test images for the batch-statistics evaluation
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        for b in self.batch_sizes:
            check_batch_size(b, where="small-batches")
        for norm in self.norms:
            check_kind(norm, NORMS)
        if any(self.examples < 10 * b for b in self.batch_sizes):
            raise ValueError(
                f"examples ({self.examples}) must allow at least 10 steps at every batch size "
                f"{self.batch_sizes}."
            )
        if not self.seeds:
            raise ValueError("seeds must not be empty.")
        if any(self.batch_stat_examples % b == 1 for b in self.batch_sizes):
            raise ValueError(
                f"batch_stat_examples={self.batch_stat_examples} leaves a last test batch of one "
                f"example at some batch size in {self.batch_sizes}; pick another number."
            )


@dataclass
class Result:
    """``accuracy[norm]``: ``(seeds, batch sizes)`` test accuracy (eval mode) after training;
    ``batch_stat_accuracy[norm]`` (batch-wise normalizers only): the same networks tested with
    the statistics of test batches of their training batch size, as in training (on the first
    ``config.batch_stat_examples`` test images);
    ``seconds[norm]``: ``(batch sizes,)`` training time summed over seeds (wall clock)."""

    config: Config
    batch_sizes: np.ndarray
    accuracy: dict[str, np.ndarray]
    batch_stat_accuracy: dict[str, np.ndarray]
    seconds: dict[str, np.ndarray]


def lr_for(base_lr: float, batch_size: int) -> float:
    """The learning rate used at ``batch_size``: ``base_lr * sqrt(batch_size / 64)``.

    Parameters
    ----------
    base_lr : float
        The learning rate at batch size 64.
    batch_size : int
        The batch size.

    Returns
    -------
    float
        The scaled learning rate.
    """
    return base_lr * math.sqrt(batch_size / 64)


def _renorm_schedule(steps: int):
    warmup, ramp_end = steps // 10, max(steps // 2, steps // 10 + 1)

    def on_step(step: int, model) -> None:
        r_max, d_max = renorm_limits(step, warmup, ramp_end, ramp_end)
        for layer in bn_layers(model):
            layer.r_max, layer.d_max = r_max, d_max

    return on_step


@single_thread()
def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train every (normalizer, batch size, seed) and test it in eval mode.

    Parameters
    ----------
    config : Config, optional
        The experiment's settings; the defaults are the scale the book shows.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Test accuracy per normalizer, seed and batch size, and training times.
    """
    n_b = len(config.batch_sizes)
    accuracy = {n: np.zeros((len(config.seeds), n_b)) for n in config.norms}
    seconds = {n: np.zeros(n_b) for n in config.norms}
    batch_wise = [n for n in config.norms if n in ("batch", "batch-renorm")]
    batch_stat_accuracy = {n: np.zeros((len(config.seeds), n_b)) for n in batch_wise}
    cells = [(n, j, s) for n in config.norms for j in range(n_b) for s in range(len(config.seeds))]
    jobs = [(config, n, config.batch_sizes[j], config.seeds[s]) for n, j, s in cells]
    for (norm, j, s), (acc, batch_acc, secs) in zip(
        cells, map_in_processes(_train_one, jobs), strict=True
    ):  # independent runs: one worker each
        accuracy[norm][s, j] = acc
        seconds[norm][j] += secs
        if norm in batch_stat_accuracy:
            batch_stat_accuracy[norm][s, j] = batch_acc
        if progress:
            print(f"{norm} batch {config.batch_sizes[j]} seed {config.seeds[s]}: {acc:.4f}")
    return Result(
        config=config,
        batch_sizes=np.array(config.batch_sizes),
        accuracy=accuracy,
        batch_stat_accuracy=batch_stat_accuracy,
        seconds=seconds,
    )


def _train_one(config: Config, norm: str, batch: int, seed: int) -> tuple:
    """One run: test accuracy (eval mode), with batch statistics (BN kinds, else None), seconds."""
    x, y = load(config.dataset, "train", flatten=True)
    x_test, y_test = load(config.dataset, "test", flatten=True)
    steps = config.examples // batch
    torch.manual_seed(seed)
    model = NormMLP(x.shape[1], config.hidden, norm=norm, groups=config.groups)
    if norm == "batch-renorm":
        for layer in bn_layers(model):  # start as plain BN
            layer.r_max, layer.d_max = 1.0, 0.0
    start = time.perf_counter()
    train(
        model,
        x,
        y,
        batch_size=batch,
        steps=steps,
        lr=lr_for(config.base_lr, batch),
        momentum=config.sgd_momentum,
        seed=seed,
        on_step=_renorm_schedule(steps) if norm == "batch-renorm" else None,
    )
    seconds = time.perf_counter() - start
    batch_accuracy = None
    if norm in ("batch", "batch-renorm"):
        k = config.batch_stat_examples
        batch_accuracy = evaluate(
            model, x_test[:k], y_test[:k], batch_size=batch, batch_stats=True
        )[1]
    return evaluate(model, x_test, y_test)[1], batch_accuracy, seconds
