"""Ioffe & Szegedy's MNIST experiment (section 4.1, Figure 1) at the paper's full scale.

A 784-100-100-100-10 net with sigmoid hidden units, trained with and without batch
normalization (BN before every hidden sigmoid, no bias where BN follows) for 50,000 SGD steps of
60 examples. For every seed both nets start from the same Gaussian weights and see the same
batches. Records test accuracy over training and the 15th/50th/85th percentiles of the input to
one sigmoid of the last hidden layer (and pooled over all its units). The paper leaves the
optimizer, learning rate, initial-weight scale and input preprocessing open; :class:`Config`
states our choices. :data:`CLAIMS` compares the run with the paper's Figure 1, over the seeds;
:data:`SLOW_START` is a short sweep of the plain net's initial weight scale that tests our
explanation of its slow start. Used in :doc:`/book/practice/ioffe-mnist` and
:doc:`/book/in-3-minutes`.

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

from bnguide.cache import cached_run
from bnguide.claims import Claim, Direction, Ratio, Within
from bnguide.experiments import init_scale
from bnguide.models import MLPSpec
from bnguide.table import Table
from bnguide.training import TrainLog, Variant, evaluation_steps, load_data, train_variants

__all__ = [
    "CLAIMS",
    "DESCRIPTION",
    "NAME",
    "PAPER_ACCURACY",
    "PAPER_PERCENTILES",
    "PAPER_STEPS_TO_95",
    "SLOW_START",
    "Config",
    "Result",
    "comparison_display",
    "comparison_table",
    "crossing_steps",
    "median_range",
    "run",
    "slow_start_accuracy",
    "steps_to_target",
    "typical_unit",
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


def crossing_steps(steps, values, target: float) -> np.ndarray:
    """The step at which each row of ``values`` first reaches ``target``, interpolated.

    Linear interpolation between the last evaluation below the target and the first at or
    above it, so the answer is not tied to the evaluation grid. A row already at the target at
    its first evaluation gives that step (an upper bound); a row that never reaches it gives NaN.

    Parameters
    ----------
    steps : array_like
        ``(E,)`` evaluation steps, increasing.
    values : array_like
        ``(E,)`` or ``(S, E)`` accuracies.
    target : float

    Returns
    -------
    numpy.ndarray
        ``(S,)`` (or a 0-d array for one row), float.
    """
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    rows = np.atleast_2d(values)
    if rows.shape[-1] != len(steps):
        raise ValueError(f"values have {rows.shape[-1]} evaluations but steps has {len(steps)}.")
    out = np.full(len(rows), np.nan)
    for i, row in enumerate(rows):
        hit = np.flatnonzero(row >= target)
        if len(hit) == 0:
            continue
        j = hit[0]
        if j == 0 or not np.isfinite(row[j - 1]):
            out[i] = steps[j]
        else:
            frac = (target - row[j - 1]) / (row[j] - row[j - 1])
            out[i] = steps[j - 1] + frac * (steps[j] - steps[j - 1])
    return out if values.ndim == 2 else out[0]


def steps_to_target(result: Result, name: str, target: float = 0.95) -> np.ndarray:
    """Each seed's interpolated step to ``target`` test accuracy (:func:`crossing_steps`).

    Parameters
    ----------
    result : Result
    name : {"baseline", "bn"}
    target : float

    Returns
    -------
    numpy.ndarray
        ``(seeds,)``; NaN for a seed that never reaches it.
    """
    return crossing_steps(result.log.steps, result.log.accuracy(name), target)


def typical_unit(result: Result, name: str) -> np.ndarray:
    """Per seed, the unit of the last hidden layer whose median moves a typical amount.

    The unit whose range of the median (over the evaluations after step 0, first 1,000 test
    images) is closest to the median of all units' ranges: the "typical" sigmoid the paper's
    Figure 1(b, c) follows, chosen by a rule rather than by eye.

    Parameters
    ----------
    result : Result
    name : {"baseline", "bn"}

    Returns
    -------
    numpy.ndarray of int
        ``(seeds,)``.
    """
    log = result.log
    per_unit = log.probe_units[log.index(name)][:, log.steps > 0][..., 1]  # (S, E', H)
    ranges = per_unit.max(1) - per_unit.min(1)  # (S, H)
    middle = np.median(ranges, axis=1, keepdims=True)
    return np.abs(ranges - middle).argmin(1)


# Paper: steps to 95% read off Figure 1(a) by the same interpolation (BN is above 95% at the
# first point the figure lets us read, 4,000 steps: an upper bound).
PAPER_STEPS_TO_95 = {
    name: float(crossing_steps(PAPER_ACCURACY["steps"][:8], PAPER_ACCURACY[name][:8], 0.95))
    for name in ("baseline", "bn")
}

SLOW_START = init_scale.Config(
    stds=(0.01, 0.03, 0.1),
    norms=("none",),
    steps=4_000,
    eval_steps=tuple(
        int(s) for s in evaluation_steps(4_000, 1_000, dense_every=250, dense_until=2_500)
    ),
)
"""The plain net of :class:`Config` (same seeds, learning rate and batches) from three initial
weight scales, for 4,000 steps: does a larger scale shorten the slow start?"""


def slow_start_accuracy(sweep: init_scale.Result, step: int = 4_000) -> np.ndarray:
    """The plain net's test accuracy at ``step`` of a :data:`SLOW_START` sweep.

    Parameters
    ----------
    sweep : bnguide.experiments.init_scale.Result
    step : int
        An evaluated step.

    Returns
    -------
    numpy.ndarray
        ``(stds, seeds)``.
    """
    where = np.flatnonzero(np.asarray(sweep.steps) == step)
    if len(where) == 0:
        raise ValueError(f"the sweep did not evaluate step {step}; it evaluated {sweep.steps}.")
    return sweep.curve["plain"][:, :, where[0]]


# -- claims: the comparisons with the paper's Figure 1 that the book's pages make ----------------

_PAPER = "Ioffe & Szegedy 2015"
_CHAPTER = "book/practice/ioffe-mnist"


def _result() -> Result:
    return cached_run(run, Config())


def _accuracy_at(name: str, step: int) -> np.ndarray:
    log = _result().log
    return 100 * log.accuracy(name)[:, int(np.flatnonzero(log.steps == step)[0])]


def _bn_lead() -> np.ndarray:
    log = _result().log
    at = np.isin(log.steps, PAPER_ACCURACY["steps"][:8])  # every step the paper shows both nets
    return (100 * (log.accuracy("bn") - log.accuracy("baseline"))[:, at]).min(1)


def _range_ratio() -> np.ndarray:
    r = _result()
    return median_range(r, "baseline", which="typical") / median_range(r, "bn", which="typical")


def _slow_start() -> np.ndarray:
    acc = slow_start_accuracy(cached_run(init_scale.run, SLOW_START))  # (stds, seeds)
    return 100 * np.diff(acc, axis=0).min(0)  # the smallest gain from one std to the next


_P = PAPER_PERCENTILES
_PAPER_LEAD = 100 * np.min(PAPER_ACCURACY["bn"][:8] - PAPER_ACCURACY["baseline"][:8])
CLAIMS = [
    Claim(
        id="ioffe-mnist-steps-to-95",
        paper=_PAPER,
        where="Fig. 1a",
        statement="With BN the sigmoid MLP reaches 95% test accuracy several times sooner.",
        paper_value=(
            f"no BN {PAPER_STEPS_TO_95['baseline']:,.0f} steps, BN by "
            f"{PAPER_STEPS_TO_95['bn']:,.0f}: "
            f"{PAPER_STEPS_TO_95['baseline'] / PAPER_STEPS_TO_95['bn']:.1f}x"
        ),
        measure=lambda: steps_to_target(_result(), "baseline") / steps_to_target(_result(), "bn"),
        criterion=Ratio(
            PAPER_STEPS_TO_95["baseline"] / PAPER_STEPS_TO_95["bn"],
            within=2.0,
            quantity="steps to 95%, no BN / BN",
        ),
        chapter=_CHAPTER,
    ),
    Claim(
        id="ioffe-mnist-bn-ahead",
        paper=_PAPER,
        where="Fig. 1a",
        statement="The BN net is more accurate at every step the figure shows (4k to 40k).",
        paper_value=f"smallest lead {_PAPER_LEAD:.1f} points",
        measure=_bn_lead,
        criterion=Direction(">", 0.0, "BN minus no BN, smallest over the paper's steps (points)"),
        chapter=_CHAPTER,
    ),
    Claim(
        id="ioffe-mnist-bn-final",
        paper=_PAPER,
        where="Fig. 1a",
        statement="With BN the net ends at about 98.2% test accuracy after 50,000 steps.",
        paper_value=f"{100 * PAPER_ACCURACY['bn'][-1]:.1f}%",
        measure=lambda: _accuracy_at("bn", 50_000),
        criterion=Within(100 * PAPER_ACCURACY["bn"][-1], 0.5, "BN's accuracy at 50,000 steps (%)"),
        chapter=_CHAPTER,
    ),
    Claim(
        id="ioffe-mnist-baseline-40k",
        paper=_PAPER,
        where="Fig. 1a",
        statement="Without BN the net is at about 97.2% after 40,000 steps.",
        paper_value=f"{100 * PAPER_ACCURACY['baseline'][7]:.1f}%",
        measure=lambda: _accuracy_at("baseline", 40_000),
        criterion=Within(
            100 * PAPER_ACCURACY["baseline"][7], 0.5, "no-BN accuracy at 40,000 steps (%)"
        ),
        chapter=_CHAPTER,
    ),
    Claim(
        id="ioffe-mnist-baseline-4k",
        paper=_PAPER,
        where="Fig. 1a",
        statement="Without BN the net is at about 71% after 4,000 steps.",
        paper_value=f"{100 * PAPER_ACCURACY['baseline'][0]:.1f}%",
        measure=lambda: _accuracy_at("baseline", 4_000),
        criterion=Within(
            100 * PAPER_ACCURACY["baseline"][0], 5.0, "no-BN accuracy at 4,000 steps (%)"
        ),
        chapter=_CHAPTER,
        note=(
            "Our plain net leaves its initial plateau later: the paper does not give its "
            "initial weight scale or learning rate, and a larger initial scale shortens the "
            "plateau (claim ioffe-mnist-slow-start)."
        ),
    ),
    Claim(
        id="ioffe-mnist-slow-start",
        paper=_PAPER,
        where="Fig. 1a (our explanation of the gap at 4,000 steps)",
        statement="A larger initial weight scale shortens the plain net's slow start.",
        paper_value="init scale not given; no BN at 71.2% after 4,000 steps",
        measure=_slow_start,
        criterion=Direction(
            ">",
            0.0,
            "no-BN accuracy at 4,000 steps, smallest gain from std 0.01 to 0.03 to 0.1 (points)",
        ),
        chapter=_CHAPTER,
    ),
    Claim(
        id="ioffe-mnist-median-range-ratio",
        paper=_PAPER,
        where="Fig. 1b, c",
        statement="The median input to a typical last-layer sigmoid moves far less with BN.",
        paper_value=(
            f"range of the median {_P['baseline_median_range']:.2f} without BN, "
            f"{_P['bn_median_range']:.2f} with: "
            f"{_P['baseline_median_range'] / _P['bn_median_range']:.1f}x"
        ),
        measure=_range_ratio,
        criterion=Ratio(
            _P["baseline_median_range"] / _P["bn_median_range"],
            within=2.0,
            quantity="range of a typical unit's median, no BN / BN",
        ),
        chapter=_CHAPTER,
    ),
    Claim(
        id="ioffe-mnist-bn-median-range",
        paper=_PAPER,
        where="Fig. 1b, c",
        statement="With BN the median input to a typical sigmoid moves within about 0.33.",
        paper_value=f"{_P['bn_median_range']:.2f}",
        measure=lambda: median_range(_result(), "bn", which="typical"),
        criterion=Within(_P["bn_median_range"], 0.15, "range of a typical BN unit's median"),
        chapter=_CHAPTER,
        note=(
            "Our BN units' medians jitter from one evaluation to the next (SGD noise on gamma "
            "and beta at learning rate 0.5); pooled over the layer, the range is close to the "
            "paper's."
        ),
    ),
]
