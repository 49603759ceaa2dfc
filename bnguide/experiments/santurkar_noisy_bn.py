"""Santurkar et al. (2018), Figure 2: does BN help because it stabilises layer-input distributions?

Four nets are trained the same way: standard (no normalization), BN, *noisy BN* (BN followed by
the time-varying random shift and scale of the paper's appendix Algorithm 1) and the standard
net with the same noise. Along the way we record training accuracy and, on a fixed probe batch,
what one hidden layer's activations receive — to measure how much that distribution moves
(internal covariate shift in the distributional sense). Used in chapter *Why BN works: internal
covariate shift*.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import santurkar_noisy_bn
>>> santurkar_noisy_bn.NAME
'santurkar-noisy-bn'
>>> result = cached_run(santurkar_noisy_bn.run, santurkar_noisy_bn.Config())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from bnguide.data import load_data
from bnguide.experiments import seed_configs
from bnguide.ics import distribution_shift
from bnguide.training import santurkar

NAME = "santurkar-noisy-bn"
DESCRIPTION = (
    "Santurkar et al. 2018 Fig. 2 on Fashion-MNIST: standard vs BN vs noisy BN vs noisy "
    "standard net, accuracy and layer-input distribution shift"
)
__all__ = [
    "CLAIMS",
    "EARLY_STEPS",
    "FAIL_ACCURACY",
    "PAPER_ACCURACY",
    "PAPER_STEPS",
    "SEEDS",
    "VARIANTS",
    "Config",
    "Result",
    "accuracy",
    "combine",
    "noise_cost",
    "run",
]

SEEDS = (0, 1, 2, 3, 4)
"""The seeds over which the book states every claim of this experiment."""

PAPER_STEPS = (1000, 2000, 5000)
PAPER_ACCURACY = {"none": (50, 72, 94), "batch": (80, 90, 98), "noisy-batch": (74, 86, 96)}
"""Santurkar et al. (2018), Figure 2 (VGG, CIFAR-10): training accuracy (%) at
:data:`PAPER_STEPS`. The standard network with the same noise did not train."""

# variant name -> (norm, noise)
VARIANTS = {
    "none": ("none", False),
    "batch": ("batch", False),
    "noisy-batch": ("batch", True),
    "none+noise": ("none", True),
}


@dataclass(frozen=True)
class Config:
    """The scale the book shows.

    Attributes
    ----------
    dataset : str
    hidden : tuple of int
        Hidden widths of the ReLU MLP (deep and narrow, so that depth matters as in a VGG).
    variants : tuple of str
        Keys of :data:`VARIANTS`.
    lr, batch_size, steps : float, int, int
        Plain SGD, the same for every variant.
    eval_every, n_eval : int
        Training accuracy (eval mode, noise off) on the first ``n_eval`` training images; beside
        it, the accuracy on the mini-batches trained on (training mode, noise on).
    probe_layer : int
        Hidden layer (0-based) whose activation inputs are recorded.
    snapshot_every, n_probe, n_units : int
        Record that layer every ``snapshot_every`` steps on ``n_probe`` fixed images; keep the
        raw values of the first ``n_units`` units for plots (the shift uses all units).
    seeds : tuple of int
        One run per seed (initialisation, batch order and noise).
    """

    dataset: str = "fashion-mnist"
    hidden: tuple[int, ...] = (64,) * 12
    variants: tuple[str, ...] = tuple(VARIANTS)
    lr: float = 0.1
    batch_size: int = 128
    steps: int = 1500
    eval_every: int = 100
    n_eval: int = 5000
    probe_layer: int = 8
    snapshot_every: int = 100
    n_probe: int = 512
    n_units: int = 4
    seeds: tuple[int, ...] = (0,)


@dataclass
class Result:
    """Per variant (dict keys), arrays with a leading seed axis S.

    Attributes
    ----------
    config : Config
    eval_steps : ndarray (E,)
    train_accuracy : dict of ndarray (S, E)
        Eval mode (running statistics, noise off) on a fixed subset of the training images.
    batch_accuracy : dict of ndarray (S, E)
        Training mode, noise on, as the paper measures it: the mean accuracy on the mini-batches
        of the ``eval_every`` steps before each evaluation (NaN at step 0).
    snapshot_steps : ndarray (T,)
    shift : dict of ndarray (S, T - 1)
        Mean 1-Wasserstein distance between consecutive snapshots of the probed layer, each
        unit's distance divided by its standard deviation (scale-free).
    drift : dict of ndarray (S, T - 1)
        The same, from the first snapshot.
    units : dict of ndarray (S, T, n_probe, n_units)
        Raw values of the first units (for histograms and percentiles).
    seconds : dict of float
    """

    config: Config
    eval_steps: np.ndarray
    train_accuracy: dict
    batch_accuracy: dict
    snapshot_steps: np.ndarray
    shift: dict
    drift: dict
    units: dict
    seconds: dict


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train every variant for every seed; record accuracy and layer-input snapshots.

    Parameters
    ----------
    config : Config, optional
        The experiment's settings; the defaults are the scale the book shows.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Accuracies and layer-input snapshots per variant and seed.
    """
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"Unknown variants {unknown}; use keys of VARIANTS: {list(VARIANTS)}.")
    data = load_data(config.dataset, standardize=True)
    x_probe = data.x_train[-config.n_probe :]  # fixed images, never in the accuracy subset
    snap_steps = np.arange(0, config.steps + 1, config.snapshot_every)
    out = {k: {} for k in ("train_accuracy", "batch_accuracy", "shift", "drift", "units")}
    out["seconds"] = {}
    eval_steps = None
    jobs = [(v, s) for v in config.variants for s in config.seeds]
    per = {
        v: {"acc": [], "batch": [], "shift": [], "drift": [], "units": []} for v in config.variants
    }
    for variant, seed in tqdm(jobs, disable=not progress, desc=NAME):
        start = time.perf_counter()
        norm, noise = VARIANTS[variant]
        snaps = []

        def make_probe(net, snaps=snaps):
            def probe(step, net, params, grads, xb, yb):
                snaps.append(santurkar.layer_inputs(net, x_probe, config.probe_layer))

            return probe

        net, log = santurkar.train_mlp(
            norm,
            data,
            seed=seed,
            lr=config.lr,
            steps=config.steps,
            hidden=config.hidden,
            batch_size=config.batch_size,
            eval_every=config.eval_every,
            n_eval=config.n_eval,
            noise=noise,
            probe_steps=snap_steps[snap_steps < config.steps],
            make_probe=make_probe,
            name=variant,
        )
        if log.diverged_at[0, 0] >= 0:
            raise RuntimeError(
                f"{variant!r} (seed {seed}) diverged at step {log.diverged_at[0, 0]}; "
                "lower Config.lr."
            )
        eval_steps = log.steps
        if snap_steps[-1] == config.steps:  # the probe runs before updates: add the last state
            snaps.append(santurkar.layer_inputs(net, x_probe, config.probe_layer))
        stack = torch.stack(snaps)  # (T, n_probe, width)
        per[variant]["acc"].append(log.train_accuracy[0, 0])
        per[variant]["batch"].append(log.batch_accuracy[0, 0])
        per[variant]["shift"].append(distribution_shift(stack, relative=True).numpy())
        drift = distribution_shift(stack, reference="first", relative=True)
        per[variant]["drift"].append(drift.numpy())
        per[variant]["units"].append(stack[:, :, : config.n_units].numpy())
        out["seconds"][variant] = out["seconds"].get(variant, 0.0) + time.perf_counter() - start
    for v in config.variants:
        out["train_accuracy"][v] = np.stack(per[v]["acc"])
        out["batch_accuracy"][v] = np.stack(per[v]["batch"])
        out["shift"][v] = np.stack(per[v]["shift"])
        out["drift"][v] = np.stack(per[v]["drift"])
        out["units"][v] = np.stack(per[v]["units"])
    return Result(config=config, eval_steps=eval_steps, snapshot_steps=snap_steps, **out)


def combine(results) -> Result:
    """One Result from runs that differ only in their seeds, stacked along the seed axis.

    Parameters
    ----------
    results : sequence of Result
        For example one per config of :func:`bnguide.experiments.seed_configs`.

    Returns
    -------
    Result
        Its ``config.seeds`` lists every seed in order; ``seconds`` adds up the runs' times.

    Raises
    ------
    ValueError
        If the runs differ in anything but their seeds.
    """
    results = list(results)
    if not results:
        raise ValueError("combine needs at least one Result.")
    base = dataclasses.replace(results[0].config, seeds=())
    for r in results[1:]:
        if dataclasses.replace(r.config, seeds=()) != base:
            raise ValueError(
                f"combine needs runs that differ only in their seeds; got {r.config} and "
                f"{results[0].config}."
            )
    seeds = tuple(s for r in results for s in r.config.seeds)

    def stack(field):
        return {v: np.concatenate([getattr(r, field)[v] for r in results]) for v in base.variants}

    return Result(
        config=dataclasses.replace(base, seeds=seeds),
        eval_steps=results[0].eval_steps,
        snapshot_steps=results[0].snapshot_steps,
        train_accuracy=stack("train_accuracy"),
        batch_accuracy=stack("batch_accuracy"),
        shift=stack("shift"),
        drift=stack("drift"),
        units=stack("units"),
        seconds={v: sum(r.seconds[v] for r in results) for v in base.variants},
    )


# --- Comparisons with the paper (bnguide.claims) -------------------------------------------

FAIL_ACCURACY = 30.0
"""Training accuracy (%) below which a network counts as *not training* (chance is 10%; every
network that trains reaches more than 80% here). Fixed before the runs, shared with
:mod:`bnguide.experiments.santurkar_learning_rate`."""


def accuracy(result: Result, variant: str, at, field: str = "batch_accuracy") -> np.ndarray:
    """Per seed, the accuracy (%) at evaluation step ``at``, or averaged over several steps.

    Parameters
    ----------
    result : Result
        One run over several seeds (see :func:`combine`).
    variant : str
    at : int or sequence of int or "end"
        An evaluation step, several (averaged), or ``"end"``: the last three evaluations.
    field : {"batch_accuracy", "train_accuracy"}
        Training mode with the noise on (the paper's measure) or eval mode with it off.

    Returns
    -------
    ndarray (S,)
    """
    if field not in ("batch_accuracy", "train_accuracy"):
        raise ValueError(f"field must be batch_accuracy or train_accuracy, got {field!r}.")
    steps = list(result.eval_steps)
    if isinstance(at, str):
        if at != "end":
            raise ValueError(f"at must be a step, a list of steps or 'end', got {at!r}.")
        idx = list(range(len(steps)))[-3:]
    else:
        wanted = [at] if np.ndim(at) == 0 else list(at)
        missing = [s for s in wanted if s not in steps]
        if missing:
            raise ValueError(f"steps {missing} were not evaluated; evaluations: {steps}.")
        idx = [steps.index(s) for s in wanted]
    return 100 * getattr(result, field)[variant][:, idx].mean(1)


def noise_cost(result: Result, field: str = "batch_accuracy") -> dict:
    """Per seed, the points the noise costs each network at the end (last three evaluations).

    Parameters
    ----------
    result : Result
        Over several seeds, with all four variants.
    field : {"batch_accuracy", "train_accuracy"}, optional
        Training mode with the noise on (default) or eval mode with it off.

    Returns
    -------
    dict
        ``{"none": standard - standard+noise, "batch": BN - noisy BN}``, arrays (S,).
    """
    end = {v: accuracy(result, v, "end", field) for v in result.config.variants}
    return {"none": end["none"] - end["none+noise"], "batch": end["batch"] - end["noisy-batch"]}


EARLY_STEPS = (100, 200, 300, 400)
"""The early evaluations over which the book compares noisy BN with the standard network."""


def _book() -> Result:
    from bnguide.cache import cached_runs

    return combine(cached_runs(run, seed_configs(Config(), SEEDS)))


def _measure(fn):
    return lambda: fn(_book())


def _diff(a: str, b: str, at):
    return lambda r: accuracy(r, a, at) - accuracy(r, b, at)


def _claims():
    from bnguide.claims import Claim, Direction

    p, k1 = PAPER_ACCURACY, PAPER_STEPS[0]
    i = 0  # index of PAPER_STEPS[0]
    common = dict(paper="Santurkar et al. 2018", where="Fig. 2", chapter="book/why/ics")
    quantity = "training accuracy (noise on, training mode), points"
    return [
        Claim(
            id="noisy-bn-below-bn",
            statement="Noisy BN ends a little below BN.",
            paper_value=f"BN {p['batch'][-1]}% vs noisy BN {p['noisy-batch'][-1]}% at "
            f"{PAPER_STEPS[-1]:,} steps ({p['batch'][1]} vs {p['noisy-batch'][1]} at "
            f"{PAPER_STEPS[1]:,})",
            measure=_measure(_diff("batch", "noisy-batch", "end")),
            criterion=Direction(">", 0.0, f"BN minus noisy BN at the end, {quantity}"),
            **common,
        ),
        Claim(
            id="noisy-bn-vs-bn-1k",
            statement="BN is ahead of noisy BN at 1,000 steps.",
            paper_value=f"BN {p['batch'][i]}% vs noisy BN {p['noisy-batch'][i]}% at {k1:,} steps",
            measure=_measure(_diff("batch", "noisy-batch", k1)),
            criterion=Direction(">", 0.0, f"BN minus noisy BN at step {k1:,}, {quantity}"),
            **common,
        ),
        Claim(
            id="noisy-bn-vs-standard-1k",
            statement="Noisy BN still trains faster than the standard network.",
            paper_value=f"noisy BN {p['noisy-batch'][i]}% vs standard {p['none'][i]}% at "
            f"{k1:,} steps",
            measure=_measure(_diff("noisy-batch", "none", k1)),
            criterion=Direction(">", 0.0, f"noisy BN minus standard at step {k1:,}, {quantity}"),
            note="Our MLP trains in fewer steps than the paper's VGG: by step 1,000 the standard "
            "network has caught up, so the early steps (next row) are the comparable ones.",
            **common,
        ),
        Claim(
            id="noisy-bn-vs-standard-early",
            statement="Noisy BN still trains faster than the standard network (early steps).",
            paper_value=f"noisy BN {p['noisy-batch'][i]}% vs standard {p['none'][i]}% at "
            f"{k1:,} steps",
            measure=_measure(_diff("noisy-batch", "none", EARLY_STEPS)),
            criterion=Direction(
                ">", 0.0, f"noisy BN minus standard, mean of steps 100-400, {quantity}"
            ),
            **common,
        ),
        Claim(
            id="noise-stops-standard",
            statement="The same noise added to the standard network stops it from training.",
            paper_value="does not train",
            measure=_measure(lambda r: accuracy(r, "none+noise", "end")),
            criterion=Direction("<", FAIL_ACCURACY, f"standard + noise at the end, {quantity}"),
            note="Our standard network with the noise trains, more slowly: the noise shifts "
            "units whose spread is under 0.1 by up to 0.5, but a 12-layer MLP on Fashion-MNIST "
            "still learns through it.",
            **common,
        ),
        Claim(
            id="noise-hurts-standard-more",
            statement="The noise hurts the standard network much more than the BN network.",
            paper_value=f"BN loses {p['batch'][-1] - p['noisy-batch'][-1]} points; the standard "
            "network does not train",
            measure=_measure(lambda r: (lambda c: c["none"] - c["batch"])(noise_cost(r))),
            criterion=Direction(
                ">",
                0.0,
                "points the noise costs the standard network minus points it costs BN, "
                "at the end (noise on)",
            ),
            note="Not 'much more' here: a few points with the noise on. Eval-mode accuracy (noise "
            "off) makes it look far larger, because the noise's mean scale E[s] = 1.125 is then "
            "missing at each of the standard network's 12 un-normalized layers.",
            **common,
        ),
        Claim(
            id="noisy-bn-shift",
            statement="Noisy BN's layer inputs are less stable than the standard network's.",
            paper_value="noisy BN's distributions move more (Fig. 2, right)",
            measure=_measure(lambda r: r.shift["noisy-batch"].mean(1) / r.shift["none"].mean(1)),
            criterion=Direction(
                ">", 1.0, "layer-9 input shift (W1/std per 100 steps), noisy BN / standard"
            ),
            **common,
        ),
    ]


CLAIMS = _claims()
"""This experiment's comparisons with the paper (:mod:`bnguide.claims`)."""
