"""Ioffe & Szegedy's Inception claims (section 4.2.1, Figure 3) replayed on a deep MNIST MLP.

The paper trained Inception at its usual learning rate and at 5x (it diverged), then with BN at
1x, 5x and 30x that rate, with BN and sigmoid instead of ReLU, and with sigmoid and no BN. Here
the same comparison runs on a fully connected net that is deep for MNIST (six hidden layers of
100), at CPU scale: a few thousand steps instead of millions, plus the plain net at 10x to show
where it breaks. For each variant: the steps needed to reach a target test accuracy and the best
accuracy seen, as in the paper's table. All variants of a seed start from the same Gaussian
weights and see the same batches. Used in :doc:`/book/practice/learning-rate-and-sigmoid`.

Examples
--------
>>> from bnguide.experiments import learning_rate
>>> config = learning_rate.Config()
>>> [v.name for v in config.variants()][:3]
['baseline', 'baseline-x5', 'baseline-x10']
>>> result = learning_rate.run(config)  # doctest: +SKIP
>>> [row["failed"] for row in learning_rate.summary(result)]  # doctest: +SKIP
[0, 0, 3, 0, 0, 0, 0, 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnguide.models import MLPSpec, StackedMLP, draw_weights
from bnguide.training import TrainLog, Variant, evaluation_steps, load_data, train_variants

__all__ = [
    "DESCRIPTION",
    "LABELS",
    "NAME",
    "PAPER_TABLE",
    "Config",
    "Result",
    "gradient_norms",
    "run",
    "summary",
]

NAME = "learning-rate"
DESCRIPTION = "BN at 1x/5x/30x the learning rate; ReLU vs sigmoid, with and without BN"
PLOTS = "bnguide.plots.ioffe"  # where ``plot_result`` lives (experiments never plot)

# Figure 3 of the paper (Inception on ImageNet): steps to reach 72.2% and the best accuracy.
# None: never reached. "Inception, sigmoid" never beat 0.1% (the paper gives no table row).
PAPER_TABLE = {
    "baseline": (31.0e6, 0.722),
    "baseline-x5": (None, None),  # diverged
    "baseline-x10": (None, None),  # not in the paper
    "bn": (13.3e6, 0.727),
    "bn-x5": (2.1e6, 0.730),
    "bn-x30": (2.7e6, 0.748),
    "bn-x5-sigmoid": (None, 0.698),
    "sigmoid-x5": (None, 0.001),
}
LABELS = {
    "baseline": "ReLU, no BN, lr x1 ('Inception')",
    "baseline-x5": "ReLU, no BN, lr x5",
    "baseline-x10": "ReLU, no BN, lr x10",
    "bn": "ReLU, BN, lr x1 ('BN-Baseline')",
    "bn-x5": "ReLU, BN, lr x5 ('BN-x5')",
    "bn-x30": "ReLU, BN, lr x30 ('BN-x30')",
    "bn-x5-sigmoid": "sigmoid, BN, lr x5 ('BN-x5-Sigmoid')",
    "sigmoid-x5": "sigmoid, no BN, lr x5",
}


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows.

    ``lr`` is the base rate ("x1"); plain SGD, batches of 60, weights ``N(0, init_std^2)``,
    BN before every activation. ``target`` is the accuracy whose first crossing is reported
    (the paper used 72.2%, Inception's final accuracy).
    """

    steps: int = 4_000
    seeds: tuple[int, ...] = (0, 1, 2)
    hidden: tuple[int, ...] = (100,) * 6
    batch_size: int = 60
    lr: float = 0.1
    init_std: float = 0.1
    target: float = 0.95
    eval_every: int = 250
    dataset: str = "mnist"
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps}.")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed.")
        if not 0 < self.target <= 1:
            raise ValueError(f"target must be an accuracy in (0, 1], got {self.target}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}.")

    def variants(self) -> list[Variant]:
        """The paper's comparison plus the plain net at 10x; names as in :data:`PAPER_TABLE`."""

        def spec(activation, norm):
            return MLPSpec(hidden=self.hidden, activation=activation, placement=norm)

        return [
            Variant("baseline", spec("relu", "none"), self.lr),
            Variant("baseline-x5", spec("relu", "none"), 5 * self.lr),
            Variant("baseline-x10", spec("relu", "none"), 10 * self.lr),
            Variant("bn", spec("relu", "before"), self.lr),
            Variant("bn-x5", spec("relu", "before"), 5 * self.lr),
            Variant("bn-x30", spec("relu", "before"), 30 * self.lr),
            Variant("bn-x5-sigmoid", spec("sigmoid", "before"), 5 * self.lr),
            Variant("sigmoid-x5", spec("sigmoid", "none"), 5 * self.lr),
        ]


@dataclass
class Result:
    """The training log of the eight variants (see :class:`bnguide.training.TrainLog`)."""

    config: Config
    log: TrainLog


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train every variant for every seed.

    Parameters
    ----------
    config : Config
        The protocol; the defaults are the scale the book shows.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Result
        The config and the training log of every variant and seed.
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


def summary(result: Result) -> list[dict]:
    """One row per variant: learning rate, steps to the target, best and final accuracy.

    Parameters
    ----------
    result : Result

    Returns
    -------
    list of dict
        Keys ``name``, ``label``, ``lr``, ``steps_to_target`` (per seed, NaN = never),
        ``best`` and ``final`` (per seed), ``diverged`` (seeds whose loss stopped being finite)
        and ``failed`` (seeds that end below 20% test accuracy, near chance: diverged or stuck).
    """
    log, config = result.log, result.config
    lrs = {v.name: v.lr for v in config.variants()}
    rows = []
    for name in log.names:
        acc = log.accuracy(name)  # (S, E)
        rows.append(
            {
                "name": name,
                "label": LABELS.get(name, name),
                "lr": lrs[name],
                "steps_to_target": log.steps_to_reach(name, config.target),
                "best": np.nanmax(acc, axis=1),
                "final": acc[:, -1],
                "diverged": int((log.diverged_at[log.index(name)] >= 0).sum()),
                "failed": int((acc[:, -1] < 0.2).sum()),
            }
        )
    return rows


def gradient_norms(
    config: Config, names: tuple[str, ...] = ("sigmoid-x5", "bn-x5-sigmoid"), seed: int = 0
) -> dict[str, np.ndarray]:
    """Norm of each layer's weight gradient at initialization, on the first training batch.

    Shows how much of the error signal reaches the lower layers of each variant before any
    training (the same weights for every variant, drawn from ``seed``).

    Parameters
    ----------
    config : Config
        Gives the variants, the initial weight scale, the batch size and the data.
    names : tuple of str
        The variants to measure.
    seed : int
        Seed of the initial weights.

    Returns
    -------
    dict
        Variant name -> ``(layers,)`` Frobenius norms, input layer first.
    """
    data = load_data(config.dataset, device=config.device)
    x = data.x_train[: config.batch_size]  # (B, 784)
    y = data.y_train[: config.batch_size]
    variants = {v.name: v for v in config.variants()}
    norms = {}
    for name in names:
        spec = variants[name].spec
        net = StackedMLP(spec, 1, device=config.device)
        net.load_weights_(
            [w[None].to(config.device) for w in draw_weights(spec.sizes, config.init_std, seed)]
        )
        _, grads = net.loss_and_grads(x, y)
        by_name = dict(zip((n for n, _ in net.named_parameters()), grads, strict=True))
        layers = len(spec.sizes) - 1
        norms[name] = np.array([float(by_name[f"weight{l}"].norm()) for l in range(layers)])
    return norms
