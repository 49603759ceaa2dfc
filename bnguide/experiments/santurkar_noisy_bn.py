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

from bnguide.ics import distribution_shift
from bnguide.training import santurkar as _santurkar

NAME = "santurkar-noisy-bn"
DESCRIPTION = (
    "Santurkar et al. 2018 Fig. 2 on Fashion-MNIST: standard vs BN vs noisy BN vs noisy "
    "standard net, accuracy and layer-input distribution shift"
)
__all__ = [
    "PAPER_ACCURACY",
    "PAPER_STEPS",
    "SEEDS",
    "VARIANTS",
    "Config",
    "Result",
    "combine",
    "run",
    "seed_configs",
]

SEEDS = (0, 1, 2)
"""The seeds over which the book states every claim of this experiment."""

PAPER_STEPS = (1000, 2000, 5000)
PAPER_ACCURACY = {"standard": (50, 72, 94), "bn": (80, 90, 98), "noisy-bn": (74, 86, 96)}
"""Santurkar et al. (2018), Figure 2 (VGG, CIFAR-10): training accuracy (%) at
:data:`PAPER_STEPS`. The standard network with the same noise did not train."""

# variant name -> (norm, noise)
VARIANTS = {
    "standard": ("none", False),
    "bn": ("bn", False),
    "noisy-bn": ("bn", True),
    "standard+noise": ("none", True),
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
        Training accuracy (eval mode, noise off) on the first ``n_eval`` training images.
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
    x, y, x_eval, y_eval = _santurkar.load_data(config.dataset, None, config.n_eval)
    x_probe = x[-config.n_probe :]  # fixed images, never in the accuracy subset
    snap_steps = np.arange(0, config.steps + 1, config.snapshot_every)
    out = {k: {} for k in ("train_accuracy", "shift", "drift", "units", "seconds")}
    eval_steps = None
    jobs = [(v, s) for v in config.variants for s in config.seeds]
    per = {v: {"acc": [], "shift": [], "drift": [], "units": []} for v in config.variants}
    for variant, seed in tqdm(jobs, disable=not progress, desc=NAME):
        start = time.perf_counter()
        norm, noise = VARIANTS[variant]
        torch.manual_seed(seed)  # the noise draws come from the global generator
        net = _santurkar.build_mlp(norm, noise=noise, hidden=config.hidden, seed=seed)
        snaps = []

        def probe(step, net, params, grads, xb, yb, snaps=snaps):
            snaps.append(_santurkar.layer_inputs(net, x_probe, config.probe_layer))

        log = _santurkar.train(
            net,
            x,
            y,
            steps=config.steps,
            lr=config.lr,
            batch_size=config.batch_size,
            seed=seed,
            eval_every=config.eval_every,
            eval_data=(x_eval, y_eval),
            probe_steps=snap_steps[snap_steps < config.steps],
            probe=probe,
        )
        if log.diverged_at is not None:
            raise RuntimeError(
                f"{variant!r} (seed {seed}) diverged at step {log.diverged_at}; lower Config.lr."
            )
        acc = np.asarray(log.train_accuracy)
        eval_steps = np.asarray(log.steps)
        if snap_steps[-1] == config.steps:  # the probe runs before updates: add the last state
            snaps.append(_santurkar.layer_inputs(net, x_probe, config.probe_layer))
        stack = torch.stack(snaps)  # (T, n_probe, width)
        per[variant]["acc"].append(acc)
        per[variant]["shift"].append(distribution_shift(stack, relative=True).numpy())
        drift = distribution_shift(stack, reference="first", relative=True)
        per[variant]["drift"].append(drift.numpy())
        per[variant]["units"].append(stack[:, :, : config.n_units].numpy())
        out["seconds"][variant] = out["seconds"].get(variant, 0.0) + time.perf_counter() - start
    for v in config.variants:
        out["train_accuracy"][v] = np.stack(per[v]["acc"])
        out["shift"][v] = np.stack(per[v]["shift"])
        out["drift"][v] = np.stack(per[v]["drift"])
        out["units"][v] = np.stack(per[v]["units"])
    return Result(config=config, eval_steps=eval_steps, snapshot_steps=snap_steps, **out)


def seed_configs(config: Config = Config(), seeds=SEEDS) -> list[Config]:
    """``config`` once per seed (``seeds=(s,)``), for :func:`bnguide.cache.cached_runs`.

    Parameters
    ----------
    config : Config, optional
        Every setting but the seeds.
    seeds : sequence of int, optional
        By default :data:`SEEDS`.

    Returns
    -------
    list of Config
    """
    return [dataclasses.replace(config, seeds=(int(s),)) for s in seeds]


def combine(results) -> Result:
    """One Result from runs that differ only in their seeds, stacked along the seed axis.

    Parameters
    ----------
    results : sequence of Result
        For example one per config of :func:`seed_configs`.

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
        shift=stack("shift"),
        drift=stack("drift"),
        units=stack("units"),
        seconds={v: sum(r.seconds[v] for r in results) for v in base.variants},
    )
