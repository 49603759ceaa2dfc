"""Row-by-row MNIST with a tanh RNN: no normalization, per-time-step BN, and LayerNorm.

Each image is read as a sequence of its 28 rows (28 pixels each) by
:class:`bnguide.models.rnn.NormRNN`; the class is predicted from the last hidden state. The
three normalizers are trained with the same seeds, batches, learning rate and gradient
clipping, and their cost is recorded: training time per step (wall clock, noisy on a shared
machine), parameters and buffers.
Chapter *Recurrent nets and LayerNorm*.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import recurrent
>>> recurrent.NAME
'recurrent'
>>> result = cached_run(recurrent.run, recurrent.Config())  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bnguide.data import load
from bnguide.models.rnn import RECURRENT_NORMS, NormRNN, rows_as_sequence
from bnguide.processes import map_in_processes
from bnguide.training.fit import check_batch_size, evaluate, single_thread, train

__all__ = ["NAME", "DESCRIPTION", "Config", "Result", "run"]

NAME = "recurrent"
DESCRIPTION = "Row-by-row MNIST RNN: no norm vs per-step BN vs LayerNorm, with their cost"


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    norms: tuple[str, ...] = ("none", "batch", "layer")
    hidden_size: int = 64
    batch_size: int = 64
    steps: int = 1_000
    lr: float = 0.05
    sgd_momentum: float = 0.9
    clip_grad_norm: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    smooth: int = 25  # the loss curves are averaged over windows of this many steps
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size, where="recurrent")
        for norm in self.norms:
            if norm not in RECURRENT_NORMS:
                known = ", ".join(repr(n) for n in RECURRENT_NORMS)
                raise ValueError(f"Unknown normalizer {norm!r}. Use one of: {known}.")
        if self.steps < self.smooth or self.steps % self.smooth:
            raise ValueError(
                f"steps ({self.steps}) must be a positive multiple of smooth ({self.smooth})."
            )
        if not self.seeds:
            raise ValueError("seeds must not be empty.")


@dataclass
class Result:
    """Per normalizer: ``accuracy`` ``(seeds,)`` on the test set, ``loss`` ``(seeds, windows)``
    training loss averaged over windows of ``config.smooth`` steps, ``ms_per_step`` ``(seeds,)``,
    ``parameters`` and ``buffer_values`` (numbers of learned and of stored values)."""

    config: Config
    window_end: np.ndarray
    accuracy: dict[str, np.ndarray]
    loss: dict[str, np.ndarray]
    ms_per_step: dict[str, np.ndarray]
    parameters: dict[str, int]
    buffer_values: dict[str, int]


@single_thread()
def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train a NormRNN per normalizer and seed on row-by-row MNIST; test it.

    Parameters
    ----------
    config : Config, optional
        The experiment's settings; the defaults are the scale the book shows.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Test accuracy and training-loss curves per normalizer and seed.
    """
    jobs = [(config, norm, seed) for norm in config.norms for seed in config.seeds]
    runs = iter(map_in_processes(_train_one, jobs))  # independent runs: one worker each
    n_seeds, windows = len(config.seeds), config.steps // config.smooth
    accuracy = {n: np.zeros(n_seeds) for n in config.norms}
    loss = {n: np.zeros((n_seeds, windows)) for n in config.norms}
    ms = {n: np.zeros(n_seeds) for n in config.norms}
    parameters, buffer_values = {}, {}
    for norm in config.norms:
        for s, seed in enumerate(config.seeds):
            loss[norm][s], accuracy[norm][s], ms[norm][s], sizes = next(runs)
            parameters[norm], buffer_values[norm] = sizes
            if progress:
                print(f"{norm} seed {seed}: test accuracy {accuracy[norm][s]:.4f}")
    return Result(
        config=config,
        window_end=np.arange(1, windows + 1) * config.smooth,
        accuracy=accuracy,
        loss=loss,
        ms_per_step=ms,
        parameters=parameters,
        buffer_values=buffer_values,
    )


def _train_one(config: Config, norm: str, seed: int) -> tuple:
    """One (normalizer, seed) run: windowed losses, test accuracy, ms/step, model sizes."""
    x, y = load(config.dataset, "train", flatten=True)
    x_test, y_test = load(config.dataset, "test", flatten=True)
    x, x_test = rows_as_sequence(x), rows_as_sequence(x_test)  # (N, 28, 28)
    torch.manual_seed(seed)
    model = NormRNN(28, config.hidden_size, norm=norm, seq_len=28)
    start = time.perf_counter()
    losses = train(
        model,
        x,
        y,
        batch_size=config.batch_size,
        steps=config.steps,
        lr=config.lr,
        momentum=config.sgd_momentum,
        seed=seed,
        clip_grad_norm=config.clip_grad_norm,
    )
    ms = (time.perf_counter() - start) / config.steps * 1e3
    windows = config.steps // config.smooth
    buffers = sum(b.numel() for name, b in model.named_buffers() if "num_batches" not in name)
    return (
        losses.view(windows, config.smooth).mean(1).numpy(),
        evaluate(model, x_test, y_test)[1],
        ms,
        (sum(p.numel() for p in model.parameters()), buffers),
    )
