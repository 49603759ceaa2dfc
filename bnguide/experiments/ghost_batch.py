"""Ghost batch norm as a regularizer: one large batch, BN statistics over smaller ghost batches.

An MLP (Linear -> GhostBatchNorm -> ReLU, twice) is trained on a small Fashion-MNIST subset
(images downsampled to 14x14) for many epochs, so that it overfits. Every run with the large
batch sees the same batches and takes the same SGD steps; only the ghost batch size changes
(equal to the batch: plain BN). A reference run trains plain BN with a small batch for the
same number of epochs: the regime whose generalization ghost batches are meant to bring back
(Hoffer et al. 2017). Training and test accuracy are measured in eval mode at checkpoints.
Used in :doc:`/book/scale/ghost-bn`.

Examples
--------
>>> [label for label, _, _ in arms(Config())]
['ghost 8', 'ghost 32', 'ghost 128', 'plain BN, batch 512', 'plain BN, batch 32']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bnguide.data import load_downsampled
from bnguide.norms.ghost import GhostBatchNorm
from bnguide.training.fit import evaluate, train

__all__ = ["NAME", "DESCRIPTION", "Config", "Result", "arms", "ghost_mlp", "run"]

NAME = "ghost-batch"
DESCRIPTION = "Ghost batch norm's regularizing effect: batch 512, ghost batches of 8 to 512"


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    batch_size: int = 512
    ghost_sizes: tuple[int, ...] = (8, 32, 128, 512)  # 512 = the batch: plain BN
    small_batch: int = 32  # the plain-BN reference run's batch size
    hidden: tuple[int, ...] = (128, 128)
    image_side: int = 14  # images are average-pooled from 28x28 to this size
    epochs: int = 40
    eval_every: int = 10  # epochs between checkpoints
    lr: float = 0.1
    sgd_momentum: float = 0.9
    train_size: int = 2048
    test_size: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)
    dataset: str = "fashion-mnist"

    def __post_init__(self) -> None:
        if any(g < 2 or g > self.batch_size for g in self.ghost_sizes):
            raise ValueError(
                f"ghost_sizes must lie in [2, batch_size={self.batch_size}], got "
                f"{self.ghost_sizes}."
            )
        for b in (self.batch_size, self.small_batch):
            if self.train_size % b:
                raise ValueError(
                    f"train_size ({self.train_size}) must be a multiple of every batch size "
                    f"({self.batch_size}, {self.small_batch}) so that epochs are whole."
                )
        if self.image_side < 1 or 28 % self.image_side:
            raise ValueError(f"image_side must divide 28, got {self.image_side}.")
        if self.small_batch < 2:
            raise ValueError(f"small_batch must be at least 2, got {self.small_batch}.")
        if self.epochs % self.eval_every:
            raise ValueError(
                f"epochs ({self.epochs}) must be a multiple of eval_every ({self.eval_every})."
            )
        if not self.seeds:
            raise ValueError("seeds must not be empty.")


def arms(config: Config) -> list[tuple[str, int, int]]:
    """The runs of one seed.

    Parameters
    ----------
    config : Config
        The experiment's settings.

    Returns
    -------
    list of (str, int, int)
        ``(label, batch size, ghost batch size)`` per run: one per ghost size with the large
        batch, then plain BN with the small batch.
    """
    out = []
    for g in config.ghost_sizes:
        label = f"ghost {g}" if g < config.batch_size else f"plain BN, batch {g}"
        out.append((label, config.batch_size, g))
    b = config.small_batch
    out.append((f"plain BN, batch {b}", b, b))
    return out


@dataclass
class Result:
    """``train_acc`` / ``test_acc``: ``(seeds, arms, checkpoints)`` accuracies in eval mode
    after ``epochs_at`` epochs; ``final_loss``: ``(seeds, arms)`` mean training loss over the
    last epoch. ``labels``, ``batch``, ``ghost``: the arms (see :func:`arms`)."""

    config: Config
    labels: list[str]
    batch: np.ndarray
    ghost: np.ndarray
    epochs_at: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    final_loss: np.ndarray


def ghost_mlp(
    ghost_size: int, hidden: tuple[int, ...] = (128, 128), inputs: int = 196
) -> nn.Sequential:
    """inputs -> hidden... -> 10 with Linear -> GhostBatchNorm -> ReLU blocks.

    Parameters
    ----------
    ghost_size : int
        Examples per ghost batch.
    hidden : tuple of int
        Widths of the hidden layers.
    inputs : int
        Input features.

    Returns
    -------
    nn.Sequential
        The network, in training mode.

    Shape
    -----
    Input ``(N, inputs)``; output logits ``(N, 10)``.
    """
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h, bias=False), GhostBatchNorm(h, ghost_size), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def _images(config: Config, split: str, limit: int):
    x, y = load_downsampled(config.dataset, split, side=config.image_side, limit=limit)
    return x.flatten(1), y  # (N, side * side)


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train one MLP per (seed, arm).

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
    x, y = _images(config, "train", config.train_size)
    xt, yt = _images(config, "test", config.test_size)
    runs = arms(config)
    epochs_at = np.arange(config.eval_every, config.epochs + 1, config.eval_every)
    shape = (len(config.seeds), len(runs))
    train_acc = np.zeros((*shape, len(epochs_at)))
    test_acc = np.zeros_like(train_acc)
    final_loss = np.zeros(shape)
    jobs = [(i, j) for i in range(shape[0]) for j in range(shape[1])]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc=NAME)
    for i, j in jobs:
        _, batch, ghost = runs[j]
        steps_per_epoch = config.train_size // batch
        torch.manual_seed(config.seeds[i])
        model = ghost_mlp(ghost, config.hidden, config.image_side**2)

        def on_step(step, m, i=i, j=j, per_epoch=steps_per_epoch):
            if step % (per_epoch * config.eval_every) == 0:
                k = step // (per_epoch * config.eval_every) - 1
                train_acc[i, j, k] = evaluate(m, x, y)[1]
                test_acc[i, j, k] = evaluate(m, xt, yt)[1]

        losses = train(
            model,
            x,
            y,
            batch_size=batch,
            steps=config.epochs * steps_per_epoch,
            lr=config.lr,
            momentum=config.sgd_momentum,
            seed=config.seeds[i],  # large-batch arms see the same batches
            on_step=on_step,
        )
        final_loss[i, j] = float(losses[-steps_per_epoch:].mean())
    labels = [label for label, _, _ in runs]
    batch = np.array([b for _, b, _ in runs])
    ghost = np.array([g for _, _, g in runs])
    return Result(config, labels, batch, ghost, epochs_at, train_acc, test_acc, final_loss)
