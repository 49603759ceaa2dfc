"""A with/without-BN comparison confounded by the learning rate, and the controlled version.

A full factorial design: the same MLP with and without BN, each at a small and a large learning
rate, same seeds and batches. Comparing "no BN at the small rate" with "BN at the large rate" (a
common way such comparisons are set up, since BN tolerates the large one) mixes BN's effect with
the learning rate's; the four cells separate them. The BN network at the large rate of the
first seed is kept for the chapter's fine-tuning demonstration. Chapter *Pitfalls*.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import confounded_comparison
>>> confounded_comparison.NAME
'confounded-comparison'
>>> result = cached_run(confounded_comparison.run, confounded_comparison.Config())  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bnguide.data import load
from bnguide.models.norm_mlp import NormMLP
from bnguide.training.fit import check_batch_size, evaluate, single_thread, train

__all__ = ["NAME", "DESCRIPTION", "Config", "Result", "run"]

NAME = "confounded-comparison"
DESCRIPTION = "BN vs no BN at two learning rates: a confounded comparison and the 2x2 design"


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    lrs: tuple[float, float] = (0.01, 0.1)  # (small, large)
    hidden: tuple[int, ...] = (100, 100)
    batch_size: int = 64
    steps: int = 300
    sgd_momentum: float = 0.0  # plain SGD: the learning rate alone sets the step size
    seeds: tuple[int, ...] = (0, 1, 2)
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size, where="confounded-comparison")
        if len(self.lrs) != 2 or not 0 < self.lrs[0] < self.lrs[1]:
            raise ValueError(f"lrs must be (small, large) with 0 < small < large, got {self.lrs}.")
        if not self.seeds:
            raise ValueError("seeds must not be empty.")


@dataclass
class Result:
    """``accuracy[(norm, lr)]``: ``(seeds,)`` test accuracy, norm in ``{"none", "batch"}``.
    ``state_dict``: the BN network trained at the large rate with the first seed."""

    config: Config
    accuracy: dict[tuple[str, float], np.ndarray]
    state_dict: dict[str, torch.Tensor] = field(repr=False)

    def mean(self, norm: str, lr: float) -> float:
        """Mean test accuracy over seeds of one cell."""
        return float(self.accuracy[(norm, lr)].mean())


@single_thread()
def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train the four (norm, learning rate) cells for every seed.

    Parameters
    ----------
    config : Config, optional
        The experiment's settings; the defaults are the scale the book shows.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Test accuracy per (norm, learning rate) cell and seed.
    """
    x, y = load(config.dataset, "train", flatten=True)
    x_test, y_test = load(config.dataset, "test", flatten=True)
    accuracy = {}
    state_dict = {}
    for norm in ("none", "batch"):
        for lr in config.lrs:
            accs = []
            for seed in config.seeds:
                torch.manual_seed(seed)
                model = NormMLP(x.shape[1], config.hidden, norm=norm)
                train(
                    model,
                    x,
                    y,
                    batch_size=config.batch_size,
                    steps=config.steps,
                    lr=lr,
                    momentum=config.sgd_momentum,
                    seed=seed,
                )
                accs.append(evaluate(model, x_test, y_test)[1])
                if norm == "batch" and lr == config.lrs[1] and seed == config.seeds[0]:
                    state_dict = {k: v.clone() for k, v in model.state_dict().items()}
            accuracy[(norm, lr)] = np.array(accs)
            if progress:
                print(f"{norm} lr {lr}: {accuracy[(norm, lr)]}")
    return Result(config=config, accuracy=accuracy, state_dict=state_dict)
