"""Which sigmoid MLPs still train when the initial weights are 1000x too small or too large?

Ioffe & Szegedy's section 3.3 argues that BN makes a layer blind to the scale of its weights
(:mod:`bnguide.scale_invariance`), so a BN network should train from any initial scale, while a
plain sigmoid network loses its signal when the weights are small (every layer multiplies it by
about ``0.25 * std * sqrt(width)``) and saturates when they are large. The sweep trains the
Ioffe MNIST net (three hidden layers of 100 sigmoid units), with and without BN, from weight
standard deviations 1e-3 to 1, several seeds each, for a short fixed budget, and records the
test accuracy (before, after, and at ``eval_steps`` in between), the growth of the first layer's
weights and the learned ``gamma`` and ``beta``. Used in :doc:`/book/practice/scale-invariance`
and, as :data:`bnguide.experiments.ioffe_mnist.SLOW_START` (the plain net only, three scales,
4,000 steps), in :doc:`/book/practice/ioffe-mnist`.

Examples
--------
>>> from bnguide.experiments import init_scale
>>> init_scale.Config().stds
(0.001, 0.01, 0.1, 1.0)
>>> result = init_scale.run(init_scale.Config(steps=50))  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bnguide.models import MLPSpec
from bnguide.training import Trainer, Variant, load_data

__all__ = ["DESCRIPTION", "NAME", "Config", "Result", "run"]

NAME = "init-scale"
DESCRIPTION = "sigmoid MLP from weight std 1e-3 to 1, with and without BN: which nets train"


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows (a few seconds on a laptop CPU).

    Plain SGD at rate ``lr``, batches of ``batch_size``; BN (``"before"``, the paper's
    placement) or none in every hidden layer (``norms`` chooses which of the two nets to train);
    weights ``N(0, std^2)`` for each ``std``. Test accuracy is also recorded after each step in
    ``eval_steps``.
    """

    stds: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    hidden: tuple[int, ...] = (100, 100, 100)
    steps: int = 400
    batch_size: int = 60
    lr: float = 0.5
    norms: tuple[str, ...] = ("none", "before")
    eval_steps: tuple[int, ...] = ()
    dataset: str = "mnist"
    device: str = "cpu"

    def __post_init__(self):
        for name in ("stds", "seeds", "hidden", "norms"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "eval_steps", tuple(int(s) for s in self.eval_steps))
        if not self.norms or not set(self.norms) <= {"none", "before"}:
            raise ValueError(f"norms must name 'none' and/or 'before', got {self.norms}.")
        if not self.stds or min(self.stds) <= 0:
            raise ValueError(f"stds must be positive weight standard deviations, got {self.stds}.")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed.")
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}.")
        if any(not 0 <= s <= self.steps for s in self.eval_steps):
            raise ValueError(f"eval_steps must lie between 0 and steps={self.steps}.")

    def variants(self) -> list[Variant]:
        """The plain sigmoid net (``"plain"``) and the same net with BN before every sigmoid."""
        return [
            Variant(
                name, MLPSpec(hidden=self.hidden, activation="sigmoid", placement=norm), self.lr
            )
            for name, norm in (("plain", "none"), ("bn", "before"))
            if norm in self.norms
        ]


@dataclass
class Result:
    """Per variant name (``"plain"``, ``"bn"``): arrays ``(stds, seeds)`` unless noted.

    Attributes
    ----------
    accuracy_init, accuracy : dict of numpy.ndarray
        Test accuracy before and after training.
    weight_growth : dict of numpy.ndarray
        ``||W_1 after|| / ||W_1 before||``, the first layer's weights.
    gamma, beta : numpy.ndarray
        The BN net's learned ``gamma`` and ``beta``, ``(stds, seeds, layers, units)`` (zeros
        when the BN net is not trained).
    seconds : float
    steps : numpy.ndarray
        ``(E,)``: 0, ``config.eval_steps`` and ``config.steps``.
    curve : dict of numpy.ndarray
        Test accuracy at ``steps``, ``(stds, seeds, E)``.
    """

    config: Config
    accuracy_init: dict[str, np.ndarray]
    accuracy: dict[str, np.ndarray]
    weight_growth: dict[str, np.ndarray]
    gamma: np.ndarray
    beta: np.ndarray
    seconds: float
    steps: np.ndarray | None = None
    curve: dict[str, np.ndarray] | None = None


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train both variants from every initial scale and seed.

    Parameters
    ----------
    config : Config
    progress : bool
        Print one line per scale.

    Returns
    -------
    Result
    """

    start = time.perf_counter()
    data = load_data(config.dataset, device=config.device)
    variants = config.variants()
    names = [v.name for v in variants]
    shape = (len(config.stds), len(config.seeds))
    acc0 = {n: np.zeros(shape) for n in names}
    acc = {n: np.zeros(shape) for n in names}
    growth = {n: np.zeros(shape) for n in names}
    layers = (len(config.stds), len(config.seeds), len(config.hidden), config.hidden[0])
    gamma, beta = np.zeros(layers), np.zeros(layers)
    steps = np.array(sorted({0, *config.eval_steps, config.steps}), dtype=np.int64)
    curve = {n: np.zeros((*shape, len(steps))) for n in names}
    for i, std in enumerate(config.stds):
        trainer = Trainer(
            variants, data, seeds=config.seeds, batch_size=config.batch_size, init_std=std
        )
        w0 = {n: trainer.nets(n)[0].weight0[trainer.nets(n)[1]].detach().clone() for n in names}
        accuracies = []  # (V, S) at each of ``steps``
        for target in steps:
            while trainer.step_count < target:
                trainer.step()
            accuracies.append(trainer.evaluate()["test_accuracy"])
        for v, n in enumerate(names):
            net, rows = trainer.nets(n)
            curve[n][i] = np.stack([a[v] for a in accuracies], axis=-1)  # (S, E)
            acc0[n][i], acc[n][i] = accuracies[0][v], accuracies[-1][v]
            w1 = net.weight0[rows].detach()
            growth[n][i] = (w1.flatten(1).norm(dim=1) / w0[n].flatten(1).norm(dim=1)).numpy()
            if n == "bn":
                for l in range(len(config.hidden)):
                    gamma[i, :, l] = getattr(net, f"bn_weight{l}")[rows, 0].detach().numpy()
                    beta[i, :, l] = getattr(net, f"bn_bias{l}")[rows, 0].detach().numpy()
        if progress:
            print(f"std {std:g}: " + ", ".join(f"{n} {acc[n][i].mean():.3f}" for n in names))
    return Result(
        config=config,
        accuracy_init=acc0,
        accuracy=acc,
        weight_growth=growth,
        gamma=gamma,
        beta=beta,
        seconds=time.perf_counter() - start,
        steps=steps,
        curve=curve,
    )
