"""Ioffe & Szegedy's Inception claims (section 4.2.1, Figure 3) replayed on a deep MNIST MLP.

The paper trained Inception at its usual learning rate and at 5x (it diverged), then with BN at
1x, 5x and 30x that rate, with BN and sigmoid instead of ReLU, and with sigmoid and no BN. Here
the same comparison runs on a fully connected net that is deep for MNIST (six hidden layers of
100), at CPU scale: a few thousand steps instead of millions, plus the plain net at 10x to show
where it breaks. Inception was trained with momentum SGD; the ReLU variants also run with
momentum 0.9 (suffix ``-m``) at a tenth of the rate, the same long-run step size. For each
variant: the steps needed to reach a target test accuracy (interpolated between evaluations
every 50 steps) and the best accuracy seen, as in the paper's table. All variants of a seed
start from the same Gaussian weights and see the same batches. :data:`CLAIMS` compares the
ratios of steps and the accuracies with the paper's, over the seeds. Used in
:doc:`/book/practice/learning-rate-and-sigmoid` and :doc:`/book/in-3-minutes`.

Examples
--------
>>> from bnguide.experiments import learning_rate
>>> config = learning_rate.Config()
>>> [v.name for v in config.variants()][:3]
['baseline', 'baseline-x5', 'baseline-x10']
>>> result = learning_rate.run(config)  # doctest: +SKIP
>>> [row["failed"] for row in learning_rate.summary(result)][:8]  # doctest: +SKIP
[0, 0, 3, 0, 0, 0, 0, 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bnguide.cache import cached_run
from bnguide.claims import Claim, Direction, Quoted, Ratio
from bnguide.experiments.ioffe_mnist import crossing_steps
from bnguide.models import MLPSpec, StackedMLP, draw_weights
from bnguide.training import Data, TrainLog, Variant, evaluation_steps, load_data, train_variants

__all__ = [
    "CLAIMS",
    "DESCRIPTION",
    "LABELS",
    "NAME",
    "PAPER_TABLE",
    "Config",
    "Result",
    "gradient_norms",
    "run",
    "summary",
    "test_subset",
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
# Inception's momentum-SGD runs: the same table (the paper used momentum for all of them).
for _name in ("baseline", "baseline-x5", "bn", "bn-x5", "bn-x30"):
    PAPER_TABLE[f"{_name}-m"] = PAPER_TABLE[_name]
LABELS = {
    "baseline": "ReLU, no BN, lr x1 ('Inception')",
    "baseline-x5": "ReLU, no BN, lr x5",
    "baseline-x10": "ReLU, no BN, lr x10",
    "bn": "ReLU, BN, lr x1 ('BN-Baseline')",
    "bn-x5": "ReLU, BN, lr x5 ('BN-x5')",
    "bn-x30": "ReLU, BN, lr x30 ('BN-x30')",
    "bn-x5-sigmoid": "sigmoid, BN, lr x5 ('BN-x5-Sigmoid')",
    "sigmoid-x5": "sigmoid, no BN, lr x5",
    "baseline-m": "momentum: ReLU, no BN, lr x1",
    "baseline-x5-m": "momentum: ReLU, no BN, lr x5",
    "bn-m": "momentum: ReLU, BN, lr x1",
    "bn-x5-m": "momentum: ReLU, BN, lr x5",
    "bn-x30-m": "momentum: ReLU, BN, lr x30",
}
MOMENTUM_VARIANTS = ("baseline-m", "baseline-x5-m", "bn-m", "bn-x5-m", "bn-x30-m")


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows.

    ``lr`` is the base rate ("x1"); plain SGD, batches of 60, weights ``N(0, init_std^2)``,
    BN before every activation. The momentum variants use SGD with ``momentum`` at base rate
    ``lr * (1 - momentum)``, the same long-run step. ``target`` is the accuracy whose first
    crossing is reported (the paper used 72.2%, Inception's final accuracy). Test accuracy is
    measured on a fixed random ``eval_examples`` of the 10,000 test images (:func:`test_subset`),
    every ``dense_every`` steps up to ``dense_until``, then every ``eval_every``.
    """

    steps: int = 4_000
    seeds: tuple[int, ...] = (0, 1, 2)
    hidden: tuple[int, ...] = (100,) * 6
    batch_size: int = 60
    lr: float = 0.1
    momentum: float = 0.9
    init_std: float = 0.1
    target: float = 0.95
    eval_every: int = 250
    dense_every: int = 50
    dense_until: int = 3_000
    eval_examples: int = 2_000
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
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}.")
        if not 1 <= self.eval_examples <= 10_000:
            raise ValueError(f"eval_examples must be 1 to 10,000, got {self.eval_examples}.")

    def variants(self) -> list[Variant]:
        """The paper's comparison plus the plain net at 10x; names as in :data:`PAPER_TABLE`."""

        def spec(activation, norm):
            return MLPSpec(hidden=self.hidden, activation=activation, placement=norm)

        m, slow = self.momentum, self.lr * (1 - self.momentum)
        with_momentum = [
            Variant("baseline-m", spec("relu", "none"), slow, m),
            Variant("baseline-x5-m", spec("relu", "none"), 5 * slow, m),
            Variant("bn-m", spec("relu", "before"), slow, m),
            Variant("bn-x5-m", spec("relu", "before"), 5 * slow, m),
            Variant("bn-x30-m", spec("relu", "before"), 30 * slow, m),
        ]
        return [
            Variant("baseline", spec("relu", "none"), self.lr),
            Variant("baseline-x5", spec("relu", "none"), 5 * self.lr),
            Variant("baseline-x10", spec("relu", "none"), 10 * self.lr),
            Variant("bn", spec("relu", "before"), self.lr),
            Variant("bn-x5", spec("relu", "before"), 5 * self.lr),
            Variant("bn-x30", spec("relu", "before"), 30 * self.lr),
            Variant("bn-x5-sigmoid", spec("sigmoid", "before"), 5 * self.lr),
            Variant("sigmoid-x5", spec("sigmoid", "none"), 5 * self.lr),
            *with_momentum,
        ]


@dataclass
class Result:
    """The training log of the thirteen variants (see :class:`bnguide.training.TrainLog`)."""

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
    data = test_subset(load_data(config.dataset, device=config.device), config.eval_examples)
    eval_steps = evaluation_steps(
        config.steps,
        config.eval_every,
        dense_every=config.dense_every,
        dense_until=config.dense_until,
    )
    log = train_variants(
        config.variants(),
        data,
        seeds=config.seeds,
        steps=config.steps,
        batch_size=config.batch_size,
        init_std=config.init_std,
        eval_steps=eval_steps,
        probe_examples=min(1_000, config.eval_examples),
        progress=progress,
    )
    return Result(config=config, log=log)


def test_subset(data: Data, n: int, seed: int = 0) -> Data:
    """``data`` with its test set cut to a fixed random ``n`` of its images.

    Frequent evaluations on the whole test set would cost more than the training; a random
    subset (not the first images: MNIST's first 5,000 test digits are the easier half) keeps
    the accuracy's sampling error near ``sqrt(p (1 - p) / n)`` (0.5 points at 95% for 2,000).

    Parameters
    ----------
    data : bnguide.training.Data
    n : int
        Test images to keep.
    seed : int
        Seed of the random choice.

    Returns
    -------
    bnguide.training.Data
        The same training set; the chosen test images in their original order.
    """
    if n >= len(data.x_test):
        return data
    keep = torch.randperm(len(data.x_test), generator=torch.Generator().manual_seed(seed))[:n]
    keep = keep.sort().values.to(data.x_test.device)
    return Data(data.x_train, data.y_train, data.x_test[keep], data.y_test[keep])


def summary(result: Result) -> list[dict]:
    """One row per variant: learning rate, steps to the target, best and final accuracy.

    Parameters
    ----------
    result : Result

    Returns
    -------
    list of dict
        Keys ``name``, ``label``, ``lr``, ``momentum``, ``steps_to_target`` (per seed,
        interpolated between evaluations, NaN = never),
        ``best`` and ``final`` (per seed), ``diverged`` (seeds whose loss stopped being finite)
        and ``failed`` (seeds that end below 20% test accuracy, near chance: diverged or stuck).
    """
    log, config = result.log, result.config
    variants = {v.name: v for v in config.variants()}
    rows = []
    for name in log.names:
        acc = log.accuracy(name)  # (S, E)
        rows.append(
            {
                "name": name,
                "label": LABELS.get(name, name),
                "lr": variants[name].lr,
                "momentum": variants[name].momentum,
                "steps_to_target": crossing_steps(log.steps, acc, config.target),
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


# -- claims: the comparisons with the paper's Figure 3 that the book's pages make ----------------

_PAPER = "Ioffe & Szegedy 2015"
_CHAPTER = "book/practice/learning-rate-and-sigmoid"


def _rows() -> dict[str, dict]:
    return {row["name"]: row for row in summary(cached_run(run, Config()))}


def _steps_ratio(slow: str, fast: str):
    return lambda: _rows()[slow]["steps_to_target"] / _rows()[fast]["steps_to_target"]


def _best_gap(a: str, b: str):  # points
    return lambda: 100 * (_rows()[a]["best"] - _rows()[b]["best"])


def _final(name: str):  # percent
    return lambda: 100 * _rows()[name]["final"]


def _paper_steps(name: str) -> float:
    return PAPER_TABLE[name][0]


def _paper_best(name: str) -> float:
    return 100 * PAPER_TABLE[name][1]


def _speedup_claims(suffix: str, how: str) -> list[Claim]:
    claims = []
    for fast, slow, what in (
        ("bn", "baseline", "BN at the same rate needs fewer steps than the plain net"),
        ("bn-x5", "bn", "BN at 5x the rate needs fewer steps than BN at 1x"),
        ("bn-x30", "bn", "BN at 30x the rate needs fewer steps than BN at 1x"),
    ):
        paper = _paper_steps(slow) / _paper_steps(fast)
        claims.append(
            Claim(
                id=f"lr-{fast}-vs-{slow}{suffix}".replace("-vs-baseline", "-vs-plain"),
                paper=_PAPER,
                where="Fig. 3 (Inception)",
                statement=f"{what} to reach the target accuracy ({how}).",
                paper_value=(
                    f"{_paper_steps(slow) / 1e6:.1f}M vs {_paper_steps(fast) / 1e6:.1f}M steps: "
                    f"{paper:.1f}x"
                ),
                measure=_steps_ratio(slow + suffix, fast + suffix),
                criterion=Ratio(paper, within=2.0, quantity="steps to 95%, ratio"),
                chapter=_CHAPTER,
            )
        )
    claims.append(
        Claim(
            id=f"lr-plain-x5-diverges{suffix}",
            paper=_PAPER,
            where="Sec. 4.2.2",
            statement=f"The plain net diverges at 5x its learning rate ({how}).",
            paper_value="diverged",
            measure=_final(f"baseline-x5{suffix}"),
            criterion=Direction("<", 20.0, "final accuracy of the plain net at 5x (%)"),
            chapter=_CHAPTER,
            note=(
                "Our base rate sits further below the plain net's limit than Inception's: "
                "it breaks between 5x and 10x."
            ),
        )
    )
    claims.append(
        Claim(
            id=f"lr-bn-x30-most-accurate{suffix}",
            paper=_PAPER,
            where="Fig. 3 (Inception)",
            statement=f"BN at 30x ends more accurate than BN at 5x ({how}).",
            paper_value=f"{_paper_best('bn-x30'):.1f}% vs {_paper_best('bn-x5'):.1f}%",
            measure=_best_gap(f"bn-x30{suffix}", f"bn-x5{suffix}"),
            criterion=Direction(">", 0.0, "best accuracy, BN x30 minus BN x5 (points)", margin=0.2),
            chapter=_CHAPTER,
            note="4,000 steps at a fixed rate are not Inception's millions with a decaying rate.",
        )
    )
    return claims


CLAIMS = [
    *_speedup_claims("", "plain SGD"),
    *_speedup_claims("-m", "momentum 0.9"),
    Claim(
        id="lr-sigmoid-bn-below-relu",
        paper=_PAPER,
        where="Fig. 3 (Inception)",
        statement="With BN, the sigmoid net ends less accurate than the ReLU net (both at 5x).",
        paper_value=f"{_paper_best('bn-x5-sigmoid'):.1f}% vs {_paper_best('bn-x5'):.1f}%",
        measure=_best_gap("bn-x5", "bn-x5-sigmoid"),
        criterion=Direction(">", 0.0, "best accuracy, ReLU minus sigmoid, BN x5 (points)"),
        chapter=_CHAPTER,
    ),
    Claim(
        id="lr-sigmoid-bn-below-plain",
        paper=_PAPER,
        where="Fig. 3 (Inception)",
        statement="With BN, the sigmoid net never reaches the plain ReLU net's accuracy.",
        paper_value=f"{_paper_best('bn-x5-sigmoid'):.1f}% vs {_paper_best('baseline'):.1f}%",
        measure=_best_gap("bn-x5-sigmoid", "baseline"),
        criterion=Direction("<", 0.0, "best accuracy, BN sigmoid x5 minus plain ReLU (points)"),
        chapter=_CHAPTER,
    ),
    Claim(
        id="lr-sigmoid-needs-bn",
        paper=_PAPER,
        where="Sec. 4.2.2",
        statement="Without BN the sigmoid net does not learn.",
        paper_value=f"never above {_paper_best('sigmoid-x5'):.1f}% (1/1000: chance)",
        measure=_final("sigmoid-x5"),
        criterion=Direction("<", 20.0, "final accuracy of the sigmoid net without BN (%)"),
        chapter=_CHAPTER,
    ),
]


QUOTED = [
    Quoted(
        paper="Ioffe & Szegedy 2015",
        where="Fig. 3 (Inception)",
        statement="Best ImageNet accuracy of Inception and of BN-Baseline (Inception + BN)",
        paper_value=(
            f"{100 * PAPER_TABLE['baseline'][1]:.1f}% and {100 * PAPER_TABLE['bn'][1]:.1f}%"
        ),
        chapter="book/practice/learning-rate-and-sigmoid",
        why_not=(
            "ImageNet accuracy levels are not comparable with a small MNIST network's; the "
            "claims above compare orderings and step ratios instead"
        ),
    ),
]
"""Paper numbers the learning-rate chapter and the 3-minute page quote without measuring."""
