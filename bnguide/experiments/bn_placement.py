"""Batch norm before or after the nonlinearity: a paired comparison over several seeds.

The MNIST net of Ioffe & Szegedy (784-100-100-100-10) with BN either before every activation,
``act(BN(W u))`` as in the paper, or after it, ``BN(act(W u + b))``, for ReLU and for sigmoid
units, at two learning rates. Each seed starts all nets from the same weights and feeds them the
same batches, so the seed-by-seed differences isolate the placement. Used in
:doc:`/book/practice/bn-placement`.

Examples
--------
>>> from bnguide.experiments import bn_placement
>>> config = bn_placement.Config(steps=500, seeds=(0, 1))
>>> [v.name for v in config.variants()][:2]
['relu-before-lr0.1', 'relu-after-lr0.1']
>>> result = bn_placement.run(config)  # doctest: +SKIP
>>> bn_placement.paired_differences(result, "sigmoid", 0.1)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnguide.models import MLPSpec
from bnguide.training import TrainLog, Variant, evaluation_steps, load_data, train_variants

__all__ = [
    "DESCRIPTION",
    "NAME",
    "Config",
    "Result",
    "final_accuracy",
    "paired_differences",
    "run",
    "summary",
]

NAME = "bn-placement"
DESCRIPTION = "BN before vs after the activation (ReLU and sigmoid), paired over seeds"
PLOTS = "bnguide.plots.ioffe"  # where ``plot_result`` lives (experiments never plot)


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows (plain SGD, batches of 60)."""

    steps: int = 3_000
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    activations: tuple[str, ...] = ("relu", "sigmoid")
    lrs: tuple[float, ...] = (0.1, 0.5)
    batch_size: int = 60
    init_std: float = 0.1
    eval_every: int = 250
    last_evals: int = 5  # "final accuracy" = mean over this many last evaluations
    dataset: str = "mnist"
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "activations", tuple(self.activations))
        object.__setattr__(self, "lrs", tuple(self.lrs))
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps}.")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed.")
        if not self.activations:
            raise ValueError("activations must name at least one activation.")
        if not self.lrs or not all(lr > 0 for lr in self.lrs):
            raise ValueError(f"lrs must be positive learning rates, got {self.lrs}.")
        if self.last_evals < 1:
            raise ValueError(f"last_evals must be at least 1, got {self.last_evals}.")

    def variants(self) -> list[Variant]:
        """``"<activation>-<before|after>-lr<lr>"`` for every activation and learning rate."""
        return [
            Variant(f"{act}-{where}-lr{lr:g}", MLPSpec(activation=act, placement=where), lr)
            for act in self.activations
            for lr in self.lrs
            for where in ("before", "after")
        ]

    def pairs(self) -> list[tuple[str, float]]:
        """The (activation, learning rate) settings, each compared before vs after."""
        return [(act, lr) for act in self.activations for lr in self.lrs]


@dataclass
class Result:
    """The training log of every placement (see :class:`bnguide.training.TrainLog`)."""

    config: Config
    log: TrainLog


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train every placement for every seed.

    Parameters
    ----------
    config : Config
        The protocol; the defaults are the scale the book shows.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Result
        The config and the training log of every network (``variant x seed``).
    """
    data = load_data(config.dataset, device=config.device)
    log = train_variants(
        config.variants(),
        data,
        seeds=config.seeds,
        steps=config.steps,
        batch_size=config.batch_size,
        init_std=config.init_std,
        eval_steps=evaluation_steps(config.steps, config.eval_every),
        progress=progress,
    )
    return Result(config=config, log=log)


def final_accuracy(result: Result, name: str) -> np.ndarray:
    """Test accuracy averaged over the last ``config.last_evals`` evaluations, per seed.

    Parameters
    ----------
    result : Result
    name : str
        A variant name, e.g. ``"relu-before-lr0.1"``.

    Returns
    -------
    numpy.ndarray
        ``(S,)``, a fraction between 0 and 1 per seed.
    """
    return result.log.accuracy(name)[:, -result.config.last_evals :].mean(1)


def paired_differences(result: Result, activation: str, lr: float) -> np.ndarray:
    """After minus before, seed by seed, of :func:`final_accuracy`.

    Parameters
    ----------
    result : Result
    activation : {"relu", "sigmoid"}
    lr : float
        One of ``config.lrs``.

    Returns
    -------
    numpy.ndarray
        ``(S,)``; positive where BN after the activation ended more accurate.
    """
    after = final_accuracy(result, f"{activation}-after-lr{lr:g}")
    return after - final_accuracy(result, f"{activation}-before-lr{lr:g}")


def summary(result: Result) -> list[dict]:
    """Per activation and learning rate: both placements per seed and the paired differences.

    Parameters
    ----------
    result : Result

    Returns
    -------
    list of dict
        Keys ``activation``, ``lr``, ``before``, ``after``, ``difference`` (arrays over seeds),
        ``mean_difference``, ``std_difference`` (sample standard deviation) and ``wins_after``
        (seeds where after beats before).
    """
    rows = []
    for act, lr in result.config.pairs():
        diff = paired_differences(result, act, lr)
        rows.append(
            {
                "activation": act,
                "lr": lr,
                "before": final_accuracy(result, f"{act}-before-lr{lr:g}"),
                "after": final_accuracy(result, f"{act}-after-lr{lr:g}"),
                "difference": diff,
                "mean_difference": float(diff.mean()),
                "std_difference": float(diff.std(ddof=1)) if len(diff) > 1 else float("nan"),
                "wins_after": int((diff > 0).sum()),
            }
        )
    return rows
