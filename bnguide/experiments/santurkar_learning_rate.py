"""Santurkar et al. (2018), Figure 1: at a 5x learning rate, BN trains and the standard net fails.

The MLP of the other ``santurkar-*`` experiments (12 hidden ReLU layers of 64 units on
Fashion-MNIST, Glorot initialisation, plain SGD, batch 128), trained with and without BN at the
paper's two learning rates, 0.1 and 0.5. No probes: only the training accuracy, in eval mode on
a fixed subset and in training mode on the mini-batches. Used in chapter *Why BN works: a
smoother landscape*.

Examples
--------
>>> from bnguide.experiments import santurkar_learning_rate
>>> santurkar_learning_rate.NAME
'santurkar-learning-rate'
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from bnguide.data import load_data
from bnguide.experiments import seed_configs
from bnguide.experiments.santurkar_noisy_bn import FAIL_ACCURACY
from bnguide.training import santurkar

NAME = "santurkar-learning-rate"
DESCRIPTION = (
    "Santurkar et al. 2018 Fig. 1 on Fashion-MNIST: standard vs BN MLP at learning rates 0.1 "
    "and 0.5"
)
__all__ = [
    "CLAIMS",
    "PAPER_ACCURACY",
    "PAPER_STEPS",
    "SEEDS",
    "Config",
    "Result",
    "final_accuracy",
    "key",
    "run",
]

SEEDS = (0, 1, 2)
"""The seeds over which the book states this experiment's claims."""

PAPER_STEPS = (1000, 5000, 15000)
PAPER_ACCURACY = {
    ("none", 0.1): (51, 77, 80),
    ("batch", 0.1): (76, 81, 83),
    ("batch", 0.5): (52, 78, 80),
    ("none", 0.5): (10, 10, 10),
}
"""Santurkar et al. (2018), Figure 1 (VGG, CIFAR-10): test accuracy (%) at :data:`PAPER_STEPS`
per (norm, learning rate); the standard network at 0.5 diverges (chance, 10%)."""


def key(norm: str, lr: float) -> str:
    """The Result's dict key of a run.

    Parameters
    ----------
    norm : str
    lr : float

    Returns
    -------
    str
        For example ``"batch@0.5"``.
    """
    return f"{norm}@{lr:g}"


@dataclass(frozen=True)
class Config:
    """The scale the book shows.

    Attributes
    ----------
    dataset : str
    hidden : tuple of int
    norms : tuple of str
        ``"none"`` and ``"batch"``.
    lrs : tuple of float
        The paper's 0.1 and 5x that.
    batch_size, steps : int
    eval_every, n_eval : int
        Accuracy every ``eval_every`` steps on the first ``n_eval`` training images.
    seed : int
        Initialisation and batch order (the same for every run).
    """

    dataset: str = "fashion-mnist"
    hidden: tuple[int, ...] = (64,) * 12
    norms: tuple[str, ...] = ("none", "batch")
    lrs: tuple[float, ...] = (0.1, 0.5)
    batch_size: int = 128
    steps: int = 500
    eval_every: int = 50
    n_eval: int = 2000
    seed: int = 0


@dataclass
class Result:
    """Per run (dict keys from :func:`key`).

    Attributes
    ----------
    config : Config
    eval_steps : ndarray (E,)
    train_accuracy : dict of ndarray (E,)
        Eval mode, fixed subset. After a divergence: chance (1/10).
    batch_accuracy : dict of ndarray (E,)
        Training mode, mean over the mini-batches since the previous evaluation (NaN at step 0).
        After a divergence: chance.
    diverged_at : dict of int
        The step at which the loss became non-finite, -1 if it never did.
    ms_per_step : dict of float
    """

    config: Config
    eval_steps: np.ndarray
    train_accuracy: dict
    batch_accuracy: dict
    diverged_at: dict
    ms_per_step: dict


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train every (norm, learning rate) pair from the same initial weights and batch order.

    Parameters
    ----------
    config : Config, optional
    progress : bool, optional

    Returns
    -------
    Result
    """
    for norm in config.norms:
        if norm not in ("none", "batch"):
            raise ValueError(f"norms must be 'none' or 'batch', got {norm!r}.")
    if not all(lr > 0 for lr in config.lrs):
        raise ValueError(f"learning rates must be positive, got {config.lrs}.")
    data = load_data(config.dataset, standardize=True)
    eval_steps = np.arange(0, config.steps + 1, config.eval_every)
    out = {k: {} for k in ("train_accuracy", "batch_accuracy", "diverged_at", "ms_per_step")}
    jobs = [(n, lr) for lr in config.lrs for n in config.norms]
    for norm, lr in tqdm(jobs, disable=not progress, desc=NAME):
        start = time.perf_counter()
        _, log = santurkar.train_mlp(
            norm,
            data,
            seed=config.seed,
            lr=lr,
            steps=config.steps,
            hidden=config.hidden,
            batch_size=config.batch_size,
            eval_every=config.eval_every,
            n_eval=config.n_eval,
        )
        k, n = key(norm, lr), len(log.steps)
        chance = np.full(len(eval_steps) - n, 0.1)
        out["train_accuracy"][k] = np.concatenate([log.train_accuracy[0, 0], chance])
        out["batch_accuracy"][k] = np.concatenate([log.batch_accuracy[0, 0], chance])
        diverged_at = int(log.diverged_at[0, 0])
        out["diverged_at"][k] = diverged_at
        done = config.steps if diverged_at < 0 else max(diverged_at, 1)
        out["ms_per_step"][k] = 1e3 * (time.perf_counter() - start) / done
    return Result(config=config, eval_steps=eval_steps, **out)


def final_accuracy(results, norm: str, lr: float) -> np.ndarray:
    """Per seed, the training-mode accuracy (%) over the last ``eval_every`` steps.

    Parameters
    ----------
    results : sequence of Result
        One per seed.
    norm : str
    lr : float

    Returns
    -------
    ndarray (S,)
    """
    return np.array([100 * r.batch_accuracy[key(norm, lr)][-1] for r in results])


def _book():
    from bnguide.cache import cached_runs

    return cached_runs(run, seed_configs(Config(), SEEDS))


def _claims():
    from bnguide.claims import Claim, Direction

    p, hi = PAPER_ACCURACY, max(Config().lrs)
    common = dict(paper="Santurkar et al. 2018", where="Fig. 1", chapter="book/why/smoothness")
    return [
        Claim(
            id="fig1-standard-fails",
            statement=f"At learning rate {hi:g} the standard network fails to train.",
            paper_value=f"diverges ({p[('none', hi)][0]}%)",
            measure=lambda: final_accuracy(_book(), "none", hi),
            criterion=Direction(
                "<", FAIL_ACCURACY, f"standard at lr {hi:g}, training accuracy (%) at the end"
            ),
            note="Our standard network does not diverge: it hovers between chance and about "
            "half accuracy, so a seed can end just above the threshold under some float kernels.",
            **common,
        ),
        Claim(
            id="fig1-bn-trains",
            statement=f"At learning rate {hi:g} the BN network trains.",
            paper_value=f"{p[('batch', hi)][0]}% at {PAPER_STEPS[0]:,} steps, "
            f"{p[('batch', hi)][-1]}% at {PAPER_STEPS[-1]:,}",
            measure=lambda: final_accuracy(_book(), "batch", hi),
            criterion=Direction(">", 50.0, f"BN at lr {hi:g}, training accuracy (%) at the end"),
            **common,
        ),
    ]


CLAIMS = _claims()
"""This experiment's comparisons with the paper (:mod:`bnguide.claims`)."""
