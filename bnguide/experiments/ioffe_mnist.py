"""Ioffe & Szegedy's MNIST experiment (section 4.1, Figure 1) at the paper's full scale.

A 784-100-100-100-10 net with sigmoid hidden units, trained with and without batch
normalization (BN before every hidden sigmoid, no bias where BN follows) for 50,000 SGD steps of
60 examples. For every seed both nets start from the same Gaussian weights and see the same
batches. Records test accuracy over training and the 15th/50th/85th percentiles of the input to
one sigmoid of the last hidden layer (and pooled over all its units). The paper leaves the
optimizer, learning rate, initial-weight scale and input preprocessing open; :class:`Config`
states our choices. Used in :doc:`/book/practice/ioffe-mnist` and :doc:`/book/in-3-minutes`.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import ioffe_mnist
>>> [v.name for v in ioffe_mnist.Config().variants()]
['baseline', 'bn']
>>> result = cached_run(ioffe_mnist.run, ioffe_mnist.Config())  # doctest: +SKIP
>>> ioffe_mnist.median_range(result, "bn", which="pooled")  # doctest: +SKIP
array([0.27, 0.23, 0.25])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnguide.models import MLPSpec
from bnguide.table import Table
from bnguide.training import TrainLog, Variant, evaluation_steps, load_data, train_variants

__all__ = [
    "DESCRIPTION",
    "NAME",
    "PAPER_ACCURACY",
    "PAPER_PERCENTILES",
    "Config",
    "Result",
    "comparison_display",
    "comparison_table",
    "median_range",
    "run",
]

PLOTS = "bnguide.plots.ioffe"  # where ``plot_result`` lives (experiments never plot)

NAME = "ioffe-mnist"
DESCRIPTION = "Ioffe & Szegedy 2015 Figure 1: sigmoid MLP on MNIST with and without BN"

# Figure 1(a) of the paper, read off the plot (approximate): test accuracy at these steps.
PAPER_ACCURACY = {
    "steps": np.array([4_000, 5_000, 8_000, 10_000, 15_000, 20_000, 30_000, 40_000, 50_000]),
    "baseline": np.array([0.712, 0.787, 0.910, 0.926, 0.953, 0.963, 0.967, 0.972, np.nan]),
    "bn": np.array([0.953, 0.956, 0.967, 0.966, 0.972, 0.974, 0.978, 0.980, 0.982]),
}
# Figure 1(b, c), read off the plot: how far the median input to the sigmoid moves in training.
PAPER_PERCENTILES = {
    "baseline_median_range": 1.34,  # from about +1.05 early to about -0.2 later
    "bn_median_range": 0.33,  # stays within about -0.18 .. +0.15
}


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows.

    The paper fixes the architecture, the batch size (60) and the number of steps (50,000); the
    rest is our choice: plain SGD (no momentum) with the same learning rate for both nets,
    weights drawn from ``N(0, init_std^2)``, biases 0, pixels in [0, 1] (not binarized), BN with
    PyTorch's ``eps=1e-5``, ``momentum=0.1``; evaluation on the 10,000 test images with BN's
    running statistics.
    """

    steps: int = 50_000
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 60
    lr: float = 0.5
    init_std: float = 0.01
    eval_every: int = 1_000
    dense_every: int = 250  # evaluations before ``dense_until`` come this often
    dense_until: int = 2_500
    probe_unit: int = 0  # which sigmoid of the last hidden layer Figure 1(b, c) follows
    dataset: str = "mnist"
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps}.")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed.")
        for name in ("eval_every", "dense_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive number of steps.")

    def variants(self) -> list[Variant]:
        """The two nets: ``"baseline"`` (no BN) and ``"bn"`` (BN before every sigmoid)."""
        return [
            Variant("baseline", MLPSpec(activation="sigmoid", placement="none"), self.lr),
            Variant("bn", MLPSpec(activation="sigmoid", placement="before"), self.lr),
        ]


@dataclass
class Result:
    """The reproduction: the training log of both nets and the paper's numbers beside it.

    ``log.names`` is ``("baseline", "bn")``; see :class:`bnguide.training.TrainLog` for the
    arrays (``test_accuracy`` is ``(2, seeds, evaluations)``; ``probe_unit``/``probe_all`` add a
    last axis for the 15th, 50th and 85th percentiles).
    """

    config: Config
    log: TrainLog


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train both nets for every seed; see :class:`Config` for the protocol.

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
        probe_layer=-1,
        probe_unit=config.probe_unit,
        quantiles=(0.15, 0.5, 0.85),
        progress=progress,
    )
    return Result(config=config, log=log)


def median_range(result: Result, name: str, *, which: str = "unit") -> np.ndarray:
    """How far the median input to a sigmoid of the last hidden layer moves over training.

    The range (largest minus smallest value) of the median over the evaluations after step 0
    (before training, BN's running statistics are still their initial values).

    Parameters
    ----------
    result : Result
    name : {"baseline", "bn"}
    which : {"unit", "typical", "pooled"}
        ``"unit"``: the probed unit (``config.probe_unit``, over the whole test set);
        ``"typical"``: the range of every unit of the layer, then the median over units;
        ``"pooled"``: the median of all units' inputs together. The last two use the first
        1,000 test images.

    Returns
    -------
    numpy.ndarray
        ``(seeds,)``.
    """
    log = result.log
    v, later = log.index(name), log.steps > 0
    if which == "unit":
        median = log.probe_unit[v][:, later, 1]  # (S, E')
    elif which == "pooled":
        median = log.probe_all[v][:, later, 1]  # (S, E')
    elif which == "typical":
        per_unit = log.probe_units[v][:, later][..., 1]  # (S, E', H)
        return np.median(per_unit.max(1) - per_unit.min(1), axis=1)
    else:
        raise ValueError(f"which must be 'unit', 'typical' or 'pooled', got {which!r}.")
    return median.max(1) - median.min(1)


def comparison_table(result: Result) -> list[dict]:
    """Our mean (min, max over seeds) test accuracy beside the paper's, at the paper's steps.

    Parameters
    ----------
    result : Result

    Returns
    -------
    list of dict
        One row per step the paper reports that our run evaluated, with keys ``step``,
        ``paper_baseline``, ``paper_bn`` and ``baseline``/``bn`` as ``(mean, min, max)``.
    """
    log = result.log
    rows = []
    for k, step in enumerate(PAPER_ACCURACY["steps"]):
        where = np.flatnonzero(log.steps == step)
        if len(where) == 0:
            continue
        row = {"step": int(step)}
        for name in ("baseline", "bn"):
            acc = log.test_accuracy[log.index(name), :, where[0]]  # (S,)
            row[name] = (float(acc.mean()), float(acc.min()), float(acc.max()))
            row[f"paper_{name}"] = float(PAPER_ACCURACY[name][k])
        rows.append(row)
    return rows


def comparison_display(result: Result) -> Table:
    """:func:`comparison_table` as a table to show (percent; ours as mean and seed range).

    Parameters
    ----------
    result : Result

    Returns
    -------
    bnguide.table.Table
        One row per step of the paper's Figure 1(a) that our run evaluated; a notebook cell
        ending with it shows an HTML table.
    """

    def ours(stats):
        mean, low, high = (100 * v for v in stats)
        return f"{mean:.1f} ({low:.1f}-{high:.1f})"

    def paper(value):
        return "-" if np.isnan(value) else f"{100 * value:.1f}"

    rows = [
        [f"{row['step']:,}", paper(row["paper_baseline"]), ours(row["baseline"])]
        + [paper(row["paper_bn"]), ours(row["bn"])]
        for row in comparison_table(result)
    ]
    header = ["step", "paper, no BN", "ours, no BN", "paper, BN", "ours, BN"]
    return Table(header, rows, align="rrrrr")
