"""Layer-by-layer activation and gradient histograms of the deep sigmoid MLP, with and without BN,
at initialization and after a short training run.

The network of the learning-rate chapter (six hidden layers of 100 sigmoid units, weights
``N(0, 0.1^2)``, plain SGD at 5x the base rate): :func:`bnguide.saturation.layer_statistics`
on the first ``examples`` training images, before the first step and after ``steps`` steps,
for every seed. Used in :doc:`/book/practice/learning-rate-and-sigmoid`.

Examples
--------
>>> from bnguide.experiments import saturation
>>> saturation.Config().hidden
(100, 100, 100, 100, 100, 100)
>>> result = saturation.run(saturation.Config(steps=20))  # doctest: +SKIP
>>> result.stats["bn"]["init"].saturated.shape  # doctest: +SKIP
(3, 6)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bnguide.models import MLPSpec
from bnguide.saturation import LayerStatistics, layer_statistics
from bnguide.training import Trainer, Variant, load_data

__all__ = ["DESCRIPTION", "NAME", "Config", "Result", "run"]

NAME = "saturation"
DESCRIPTION = "per-layer activation/gradient histograms of the sigmoid MLP, before/after training"


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows (a few seconds on a laptop CPU)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    hidden: tuple[int, ...] = (100,) * 6
    steps: int = 300
    batch_size: int = 60
    lr: float = 0.5
    init_std: float = 0.1
    examples: int = 1000
    threshold: float = 0.05
    dataset: str = "mnist"
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not self.seeds:
            raise ValueError("seeds must name at least one seed.")
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps}.")
        if int(self.examples) != self.examples or self.examples < 2:
            raise ValueError(f"examples must be an integer >= 2, got {self.examples}.")

    def variants(self) -> list[Variant]:
        """``"sigmoid"`` (no BN) and ``"bn-sigmoid"`` (BN before every sigmoid), same rate."""
        return [
            Variant(
                name, MLPSpec(hidden=self.hidden, activation="sigmoid", placement=norm), self.lr
            )
            for name, norm in (("sigmoid", "none"), ("bn-sigmoid", "before"))
        ]


@dataclass
class Result:
    """``stats[variant][moment]``: the :class:`~bnguide.saturation.LayerStatistics` of every
    seed (as members), ``moment`` in ``("init", "trained")``."""

    config: Config
    stats: dict[str, dict[str, LayerStatistics]]
    seconds: float


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Measure both variants at initialization, train them, measure again.

    Parameters
    ----------
    config : Config
    progress : bool
        Unused (the run takes seconds); kept for the experiment interface.

    Returns
    -------
    Result
    """
    start = time.perf_counter()
    data = load_data(config.dataset, device=config.device)
    x, y = data.x_train[: config.examples], data.y_train[: config.examples]
    variants = config.variants()
    trainer = Trainer(
        variants, data, seeds=config.seeds, batch_size=config.batch_size, init_std=config.init_std
    )

    def measure():
        out = {}
        for v in variants:
            net, rows = trainer.nets(v.name)
            stats = layer_statistics(net, x, y, threshold=config.threshold)
            for field in ("saturated", "activation_hist", "gradient_hist", "gradient_rms"):
                setattr(stats, field, getattr(stats, field)[rows])
            out[v.name] = stats
        return out

    before = measure()
    for _ in range(config.steps):
        trainer.step()
    after = measure()
    stats = {v.name: {"init": before[v.name], "trained": after[v.name]} for v in variants}
    return Result(config=config, stats=stats, seconds=time.perf_counter() - start)
