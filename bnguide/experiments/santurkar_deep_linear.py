"""Santurkar et al. (2018) on their 25-layer deep linear network (DLN), with and without norms.

Full-batch gradient descent on :class:`bnguide.deep_linear.DeepLinearNet` (25 layers of 10x10
matrices, 1000 Gaussian samples, Glorot initialisation) for each normalization: none, BN, L1,
L2, L-infinity. Recorded: the loss curve; at probe steps, Definition 2.1 (``||G - G'||`` and
``cos(G, G')`` for every layer) and the landscape along the gradient for step sizes from
1/100x to 30x the learning rate (appendix A.2.2). Used in chapters *Why BN works: internal
covariate shift* and *Why BN works: a smoother landscape*.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import santurkar_deep_linear
>>> santurkar_deep_linear.NAME
'santurkar-deep-linear'
>>> result = cached_run(santurkar_deep_linear.run, santurkar_deep_linear.Config())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from bnguide import deep_linear
from bnguide.ics import gradient_shift
from bnguide.landscape import functional_loss, probe_gradient_direction

NAME = "santurkar-deep-linear"
DESCRIPTION = (
    "Santurkar et al. 2018 deep linear network (25 x 10x10 layers, full-batch GD): loss, "
    "gradient shift (Def. 2.1) and landscape, standard vs BN vs L1/L2/Linf"
)
__all__ = [
    "CLAIMS",
    "DEEP_LAYERS",
    "LR_SMALL",
    "PAPER_FINAL_LOSS",
    "PAPER_STEPS",
    "PAPER_WORST_LOSS",
    "SEEDS",
    "Config",
    "Result",
    "deep_cos",
    "final_loss_ratio",
    "run",
    "seed_configs",
    "small_lr_config",
    "worst_loss",
]

SEEDS = (0, 1, 2)
"""The data / initialisation seeds over which the book states every claim of this experiment."""

PAPER_FINAL_LOSS = {"none": 1661, "bn": 479, "l1": 97, "l2": 481, "linf": 986}
"""Santurkar et al. (2018), Figure 5: the DLN's loss after :data:`PAPER_STEPS` steps at lr 1e-6."""

PAPER_STEPS = 10_000
"""Gradient-descent steps of the paper's DLN runs (ours: ``Config.steps``; see the Config)."""

PAPER_WORST_LOSS = {"none": 1e9, "bn": 1e5}
"""Santurkar et al. (2018), Figure 4 (DLN): the loss along the gradient reaches 1e9-1e14 early
in training without BN and at most 1e5 with BN."""


@dataclass(frozen=True)
class Config:
    """The scale the book shows.

    Attributes
    ----------
    depth, dim, n_samples : int
        25, 10 and 1000 in the paper.
    variants : tuple of str
        Norms to train (see :data:`bnguide.deep_linear.NORMS`).
    ics_variants : tuple of str
        Variants on which Definition 2.1 is measured (it costs ``depth`` extra gradients).
    lr : float
        Step size of gradient descent on the *summed* squared error (the paper's 1e-6).
    steps : int
        Gradient-descent steps.
    loss_every, probe_every : int
        Record the loss / run the measurements every so many steps.
    step_multipliers : tuple of float
        Landscape step sizes as multiples of ``lr``.
    deep_layers : tuple of int
        ``(first, stop)``, 0-based: the layers every "deep layers" statistic uses (by default
        layers 20-24, the deepest normalized ones; layer 25 has no norm). Definition 2.1 is
        informative there, since the most layers below them have moved.
    seed : int
        Seeds the data (and ``seed + 1`` the initialisation, shared by all variants).
    """

    depth: int = 25
    dim: int = 10
    n_samples: int = 1000
    variants: tuple[str, ...] = ("none", "bn", "l1", "l2", "linf")
    ics_variants: tuple[str, ...] = ("none", "bn")
    lr: float = 1e-6
    steps: int = 1000
    loss_every: int = 10
    probe_every: int = 50
    step_multipliers: tuple[float, ...] = tuple(float(m) for m in np.geomspace(0.01, 30, 9))
    deep_layers: tuple[int, int] = (19, 24)
    seed: int = 0

    @property
    def deep(self) -> slice:
        """:attr:`deep_layers` as a slice of the layer axis."""
        return slice(*self.deep_layers)


DEEP_LAYERS = Config().deep
"""``Config().deep``: the default deep-layer window as a slice (layers 20-24)."""


@dataclass
class Result:
    """Arrays per variant (dict keys are the variant names).

    Attributes
    ----------
    config : Config
    loss_steps : ndarray (E,)
    loss : dict of ndarray (E,)
        The full-batch loss.
    probe_steps : ndarray (P,)
    step_sizes : ndarray (K,)
    band_losses : dict of ndarray (P, K)
        ``L(w - eta_k g)``.
    grad_diffs : dict of ndarray (P, K)
        ``||g - grad L(w - eta_k g)||``.
    grad_norm : dict of ndarray (P,)
    ics_l2, ics_cos : dict of ndarray (P, depth)
        Definition 2.1 for the ``ics_variants``.
    seconds : dict of float
    """

    config: Config
    loss_steps: np.ndarray
    loss: dict
    probe_steps: np.ndarray
    step_sizes: np.ndarray
    band_losses: dict
    grad_diffs: dict
    grad_norm: dict
    ics_l2: dict
    ics_cos: dict
    seconds: dict


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train every variant by full-batch gradient descent and measure it along the way.

    Parameters
    ----------
    config : Config, optional
        The experiment's settings; the defaults are the scale the book shows.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Losses, landscape probes and gradient shifts per variant.
    """
    x, target, _ = deep_linear.make_problem(config.n_samples, config.dim, seed=config.seed)
    etas = torch.tensor(config.step_multipliers, dtype=torch.float64) * config.lr
    probe_steps = np.arange(0, config.steps, config.probe_every)
    loss_steps = np.arange(0, config.steps + 1, config.loss_every)
    keys = ("loss", "band_losses", "grad_diffs", "grad_norm", "ics_l2", "ics_cos", "seconds")
    out = {k: {} for k in keys}
    for norm in tqdm(config.variants, disable=not progress, desc=NAME):
        start = time.perf_counter()
        net = deep_linear.DeepLinearNet(config.depth, config.dim, norm, seed=config.seed + 1)
        loss_fn = functional_loss(net, deep_linear.sum_squared_error)
        groups = deep_linear.layer_groups(net)
        losses = np.empty(len(loss_steps))
        rec = {k: [] for k in ("bl", "gd", "gn", "l2", "cos")}
        for step in range(config.steps + 1):
            net.zero_grad(set_to_none=True)
            loss = deep_linear.sum_squared_error(net(x), target)
            if step % config.loss_every == 0:
                losses[step // config.loss_every] = float(loss.detach())
            if not torch.isfinite(loss):
                raise RuntimeError(f"{norm!r} diverged at step {step}; lower Config.lr.")
            if step == config.steps:
                break
            loss.backward()
            if step % config.probe_every == 0:
                params = {k: v.detach().clone() for k, v in net.named_parameters()}
                grads = {k: v.grad.detach().clone() for k, v in net.named_parameters()}
                moved = probe_gradient_direction(loss_fn, params, etas, x, target)
                rec["bl"].append(moved.losses.numpy())
                rec["gd"].append(moved.grad_diffs.numpy())
                rec["gn"].append(moved.grad_norm)
                if norm in config.ics_variants:
                    new = {k: params[k] - config.lr * grads[k] for k in params}
                    l2, cos = gradient_shift(loss_fn, params, new, groups, x, target, grads=grads)
                    rec["l2"].append(l2.numpy())
                    rec["cos"].append(cos.numpy())
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(p.grad, alpha=-config.lr)
        out["loss"][norm] = losses
        out["band_losses"][norm] = np.stack(rec["bl"])
        out["grad_diffs"][norm] = np.stack(rec["gd"])
        out["grad_norm"][norm] = np.asarray(rec["gn"])
        if rec["l2"]:
            out["ics_l2"][norm] = np.stack(rec["l2"])
            out["ics_cos"][norm] = np.stack(rec["cos"])
        out["seconds"][norm] = time.perf_counter() - start
    return Result(
        config=config,
        loss_steps=loss_steps,
        probe_steps=probe_steps,
        step_sizes=etas.numpy(),
        **out,
    )


def seed_configs(config: Config = Config(), seeds=SEEDS) -> list[Config]:
    """``config`` once per seed, for :func:`bnguide.cache.cached_runs`.

    Parameters
    ----------
    config : Config, optional
        Every setting but the seed.
    seeds : sequence of int, optional
        By default :data:`SEEDS`.

    Returns
    -------
    list of Config
    """
    return [dataclasses.replace(config, seed=int(s)) for s in seeds]


# --- Comparisons with the paper (bnguide.claims) -------------------------------------------

LR_SMALL = 1e-7
"""The paper's second learning rate, at which the standard DLN is stable."""


def small_lr_config(config: Config = Config()) -> Config:
    """``config`` at :data:`LR_SMALL`, for the standard and the BN network only.

    Parameters
    ----------
    config : Config, optional
        Every other setting.

    Returns
    -------
    Config
    """
    return dataclasses.replace(config, lr=LR_SMALL, variants=("none", "bn"))


def deep_cos(results, variant: str) -> np.ndarray:
    """Per seed, the median of ``cos(G, G')`` over the probes and the ``deep_layers``.

    Parameters
    ----------
    results : sequence of Result
        One per seed; each result's own ``config.deep_layers`` is used.
    variant : str
        One of the result's ``ics_variants``.

    Returns
    -------
    ndarray (S,)
    """
    return np.array([float(np.median(r.ics_cos[variant][:, r.config.deep])) for r in results])


def final_loss_ratio(results, variant: str) -> np.ndarray:
    """Per seed, ``variant``'s final loss over the standard network's.

    Parameters
    ----------
    results : sequence of Result
        One per seed, each with the ``"none"`` variant.
    variant : str

    Returns
    -------
    ndarray (S,)
    """
    return np.array([r.loss[variant][-1] / r.loss["none"][-1] for r in results])


def worst_loss(results, variant: str) -> np.ndarray:
    """Per seed, the largest loss along the gradient over every probe and step size.

    Parameters
    ----------
    results : sequence of Result
        One per seed.
    variant : str

    Returns
    -------
    ndarray (S,)
    """
    return np.array([float(r.band_losses[variant].max()) for r in results])


def _book(config: Config = Config()):
    from bnguide.cache import cached_runs

    return cached_runs(run, seed_configs(config))


def _measure(fn, config: Config = Config()):
    return lambda: fn(_book(config))


def _claims():
    from bnguide.claims import Claim, Direction, Ratio

    pf = PAPER_FINAL_LOSS
    ics = dict(paper="Santurkar et al. 2018", where="Fig. 3 (DLN)", chapter="book/why/ics")
    land = dict(paper="Santurkar et al. 2018", where="Fig. 4 (DLN)", chapter="book/why/smoothness")
    lp = dict(paper="Santurkar et al. 2018", where="Fig. 5 (DLN)", chapter="book/why/smoothness")
    deep = "median cos(G, G') over layers 20-24"
    small = small_lr_config()
    out = []
    for tag, config in (("", Config()), ("-lr1e-7", small)):
        lr = f"lr {config.lr:.0e}".replace("e-0", "e-")
        out += [
            Claim(
                id=f"dln-standard-cos{tag}",
                statement="Without BN the DLN's gradients keep their direction (cos near 1).",
                paper_value="cos(G, G') close to 1",
                measure=_measure(lambda r: deep_cos(r, "none"), config),
                criterion=Direction(">", 0.9, f"standard, {deep}, {lr}"),
                note=""
                if tag
                else "At lr 1e-6 our standard DLN (loss summed over the 1,000 samples) "
                "oscillates along its sharpest directions, so successive gradients point in "
                "nearly opposite directions.",
                **ics,
            ),
            Claim(
                id=f"dln-bn-cos{tag}",
                statement="With BN the DLN's gradient direction changes much more.",
                paper_value="cos(G, G') swinging between -0.9 and +0.9 with BN, about 1 without",
                measure=_measure(lambda r: deep_cos(r, "bn") - deep_cos(r, "none"), config),
                criterion=Direction("<", 0.0, f"BN minus standard, {deep}, {lr}", margin=0.1),
                note=""
                if tag
                else "At lr 1e-6 both networks' deep-layer gradients flip at every step.",
                **ics,
            ),
        ]
    for norm in ("bn", "l1", "l2", "linf"):
        out.append(
            Claim(
                id=f"dln-final-loss-{norm}",
                statement=f"{norm.upper()} normalization ends with a lower loss than the "
                "standard DLN.",
                paper_value=f"{pf[norm]} vs {pf['none']} after {PAPER_STEPS:,} steps "
                f"({pf[norm] / pf['none']:.2f}x)",
                measure=_measure(lambda r, norm=norm: final_loss_ratio(r, norm)),
                criterion=Ratio(
                    pf[norm] / pf["none"], 2.0, f"final loss, {norm} / standard, lr 1e-6"
                ),
                note=f"Ours after {Config().steps:,} steps, not {PAPER_STEPS:,} (time budget)."
                + (
                    " Which seeds end above the standard network changes with the float kernels."
                    if norm == "linf"
                    else ""
                ),
                **lp,
            )
        )
    out += [
        Claim(
            id="dln-worst-loss-ratio",
            statement="Along the gradient the loss explodes without BN, not with it.",
            paper_value=f"up to 1e9-1e14 without BN, at most {PAPER_WORST_LOSS['bn']:.0e} with",
            measure=_measure(lambda r: worst_loss(r, "none") / worst_loss(r, "bn")),
            criterion=Direction(">", 1e3, "largest loss along g, standard / BN, lr 1e-6"),
            **land,
        ),
        Claim(
            id="dln-worst-loss-bn",
            statement="With BN the loss along the gradient stays below 1e5.",
            paper_value=f"at most {PAPER_WORST_LOSS['bn']:.0e}",
            measure=_measure(lambda r: worst_loss(r, "bn")),
            criterion=Direction(
                "<", PAPER_WORST_LOSS["bn"], "largest loss along g with BN, lr 1e-6"
            ),
            note="Our BN network's worst loss is a few times the paper's bound; the loss is a "
            "sum over 1,000 random samples whose scale depends on the draw of A and x.",
            **land,
        ),
    ]
    return out


CLAIMS = _claims()
"""This experiment's comparisons with the paper (:mod:`bnguide.claims`)."""
