"""BN's regularizing side effect: a batch-size sweep against dropout and no regularization.

An MLP is trained on a small MNIST subset (so that it overfits) with each batch size, always for
the same number of examples, without regularization, with BN and with dropout. The learning rate
follows ``lr = base_lr * sqrt(batch / 64)``. Measured: training and test loss and accuracy (eval
mode) and, for the BN networks, how far the batch statistics of the first BN layer stray from
the population values at the batch size they were trained with.
Chapter *Regularization, a side effect*.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import regularization
>>> regularization.NAME
'regularization'
>>> result = cached_run(regularization.run, regularization.Config())  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bnguide.data import load
from bnguide.models.norm_mlp import NormMLP
from bnguide.processes import map_in_processes
from bnguide.training.fit import check_batch_size, evaluate, single_thread, train

__all__ = [
    "NAME",
    "DESCRIPTION",
    "VARIANTS",
    "Config",
    "Result",
    "batch_statistics_noise",
    "run",
]

NAME = "regularization"
DESCRIPTION = "Batch-size sweep on an MNIST subset: train/test gap with BN, dropout or neither"

VARIANTS = ("none", "batch", "dropout")


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    batch_sizes: tuple[int, ...] = (4, 16, 64, 256)
    variants: tuple[str, ...] = VARIANTS
    train_size: int = 1024
    examples: int = 12_288  # examples seen by every run (12 epochs of the subset)
    hidden: tuple[int, ...] = (100, 100)
    dropout: float = 0.3
    base_lr: float = 0.05
    sgd_momentum: float = 0.9
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    noise_batches: int = 200  # random batches drawn to measure the statistics' spread
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        for b in self.batch_sizes:
            check_batch_size(b, where="regularization")
            if b > self.train_size:
                raise ValueError(f"batch size {b} exceeds train_size={self.train_size}.")
        for v in self.variants:
            if v not in VARIANTS:
                known = ", ".join(repr(k) for k in VARIANTS)
                raise ValueError(f"Unknown variant {v!r}. Use one of: {known}.")
        if any(self.examples < 10 * b for b in self.batch_sizes):
            raise ValueError(f"examples ({self.examples}) must allow at least 10 steps per run.")
        if not self.seeds:
            raise ValueError("seeds must not be empty.")


@dataclass
class Result:
    """Losses and accuracies per variant, ``(seeds, batch sizes)``, measured in eval mode on the
    training subset and on the full test set. ``mean_noise``, ``std_noise``: ``(seeds, batch
    sizes)`` root mean square over random batches and units of ``(mu_B - mu) / sigma`` and of
    ``sigma_B / sigma - 1`` at the first BN layer of the BN network trained at that batch size
    (``mu, sigma``: over the whole training subset; ``sigma_B`` with the biased variance)."""

    config: Config
    batch_sizes: np.ndarray
    train_loss: dict[str, np.ndarray]
    test_loss: dict[str, np.ndarray]
    train_accuracy: dict[str, np.ndarray]
    test_accuracy: dict[str, np.ndarray]
    mean_noise: np.ndarray
    std_noise: np.ndarray

    def gap(self, variant: str, kind: str = "loss") -> np.ndarray:
        """Test minus training loss, or training minus test accuracy: ``(seeds, batch sizes)``."""
        if kind == "loss":
            return self.test_loss[variant] - self.train_loss[variant]
        if kind == "accuracy":
            return self.train_accuracy[variant] - self.test_accuracy[variant]
        raise ValueError(f"kind must be 'loss' or 'accuracy', got {kind!r}.")


@torch.no_grad()
def batch_statistics_noise(
    z: torch.Tensor, batch_size: int, n_batches: int, generator: torch.Generator
) -> tuple[float, float]:
    """How far batch means and standard deviations stray from the population's.

    Parameters
    ----------
    z : torch.Tensor
        ``(N, C)`` the values a BN layer normalizes, for the whole population.
    batch_size, n_batches : int
        Draw ``n_batches`` batches of ``batch_size`` distinct examples.
    generator : torch.Generator
        Source of the random batches.

    Returns
    -------
    (mean_noise, std_noise) : tuple of float
        Root mean square over batches and channels of ``(mu_B - mu) / sigma`` and
        ``sigma_B / sigma - 1`` (biased standard deviations, as BN normalizes with).
    """
    check_batch_size(batch_size, where="batch_statistics_noise")
    mu, sigma = z.mean(0), z.std(0, correction=0)  # (C,)
    keep = sigma > 0  # dead units have nothing to normalize
    idx = torch.stack(
        [torch.randperm(len(z), generator=generator)[:batch_size] for _ in range(n_batches)]
    )  # (n_batches, B)
    batches = z[idx][..., keep]  # (n_batches, B, C')
    mu_b, sigma_b = batches.mean(1), batches.std(1, correction=0)  # (n_batches, C')
    mean_noise = ((mu_b - mu[keep]) / sigma[keep]).square().mean().sqrt()
    std_noise = (sigma_b / sigma[keep] - 1).square().mean().sqrt()
    return float(mean_noise), float(std_noise)


@single_thread()
def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train every (variant, batch size, seed) and measure gaps and batch-statistics noise.

    Parameters
    ----------
    config : Config, optional
        The experiment's settings; the defaults are the scale the book shows.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Losses and accuracies per variant and batch size, and the noise of the batch statistics.
    """
    shape = (len(config.seeds), len(config.batch_sizes))
    out = {k: {v: np.zeros(shape) for v in config.variants} for k in ("trl", "tel", "tra", "tea")}
    mean_noise, std_noise = np.full(shape, np.nan), np.full(shape, np.nan)
    cells = [
        (v, j, s)
        for v in config.variants
        for j in range(len(config.batch_sizes))
        for s in range(len(config.seeds))
    ]
    jobs = [(config, v, config.batch_sizes[j], config.seeds[s]) for v, j, s in cells]
    for (v, j, s), (train_metrics, test_metrics, noise) in zip(
        cells, map_in_processes(_train_one, jobs), strict=True
    ):  # independent runs: one worker each
        (out["trl"][v][s, j], out["tra"][v][s, j]) = train_metrics
        (out["tel"][v][s, j], out["tea"][v][s, j]) = test_metrics
        if noise is not None:
            mean_noise[s, j], std_noise[s, j] = noise
        if progress:
            print(
                f"{v} batch {config.batch_sizes[j]} seed {config.seeds[s]}: "
                f"train acc {out['tra'][v][s, j]:.4f} test acc {out['tea'][v][s, j]:.4f}"
            )
    return Result(
        config=config,
        batch_sizes=np.array(config.batch_sizes),
        train_loss=out["trl"],
        test_loss=out["tel"],
        train_accuracy=out["tra"],
        test_accuracy=out["tea"],
        mean_noise=mean_noise,
        std_noise=std_noise,
    )


def _train_one(config: Config, variant: str, batch: int, seed: int) -> tuple:
    """One run: (train loss, accuracy), (test loss, accuracy), BN's batch-statistics noise."""
    x, y = load(config.dataset, "train", flatten=True, limit=config.train_size)
    x_test, y_test = load(config.dataset, "test", flatten=True)
    torch.manual_seed(seed)
    model = NormMLP(
        x.shape[1],
        config.hidden,
        norm="batch" if variant == "batch" else "none",
        dropout=config.dropout if variant == "dropout" else 0.0,
    )
    train(
        model,
        x,
        y,
        batch_size=batch,
        steps=config.examples // batch,
        lr=config.base_lr * math.sqrt(batch / 64),
        momentum=config.sgd_momentum,
        seed=seed,
    )
    noise = None
    if variant == "batch":
        with torch.no_grad():
            z = model[0](x)  # (N, hidden[0]): what the first BN layer normalizes
        gen = torch.Generator().manual_seed(seed)
        noise = batch_statistics_noise(z, batch, config.noise_batches, gen)
    return evaluate(model, x, y), evaluate(model, x_test, y_test), noise
