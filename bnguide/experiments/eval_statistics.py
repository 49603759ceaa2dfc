"""Population statistics for evaluation: moving averages against the exact average (precise BN).

One BN network is trained on MNIST. At each step of ``config.checkpoints`` its test accuracy is
measured with several sets of population statistics: exponential moving averages (EMA) of the
batch statistics with each momentum in ``config.momenta`` (all tracked on the same run, since
BN's training output does not depend on them), and the exact averages of Algorithm 2 recomputed
with the current weights over ``precise_batches`` training batches
(:func:`bnguide.precise_bn.recompute_bn_stats`).
Chapter *Normalization during evaluation*.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import eval_statistics
>>> eval_statistics.NAME
'eval-statistics'
>>> result = cached_run(eval_statistics.run, eval_statistics.Config())  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from bnguide.data import load
from bnguide.models.norm_mlp import NormMLP
from bnguide.precise_bn import bn_layers, recompute_bn_stats
from bnguide.training.fit import check_batch_size, evaluate, minibatches, single_thread, train

__all__ = ["NAME", "DESCRIPTION", "Config", "EMATracker", "Result", "run"]

NAME = "eval-statistics"
DESCRIPTION = "EMA vs exact (precise BN) population statistics: distance and test accuracy"


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    hidden: tuple[int, ...] = (100, 100, 100)
    batch_size: int = 60
    lr: float = 0.1
    sgd_momentum: float = 0.9
    checkpoints: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000, 1500)  # the last ends training
    momenta: tuple[float, ...] = (0.01, 0.1)  # EMA momenta (torch convention: new-batch weight)
    precise_batches: int = 100  # training batches averaged by precise BN
    seeds: tuple[int, ...] = (0, 1)
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size, where="eval-statistics")
        if not self.momenta or not all(0 < m <= 1 for m in self.momenta):
            raise ValueError(f"momenta must be in (0, 1], got {self.momenta}.")
        if not self.checkpoints or list(self.checkpoints) != sorted(set(self.checkpoints)):
            raise ValueError(
                f"checkpoints must be increasing step numbers, got {self.checkpoints}."
            )
        if self.checkpoints[0] < 1:
            raise ValueError(f"checkpoints must be >= 1, got {self.checkpoints}.")
        if self.precise_batches < 1 or not self.seeds:
            raise ValueError("precise_batches must be >= 1 and seeds must not be empty.")


@dataclass
class Result:
    """Test accuracy and statistics distance per method, seed and checkpoint.

    ``methods`` are ``"ema 0.01"``, ``"ema 0.1"``, ... and ``"precise"``. ``accuracy[m]`` has
    shape ``(seeds, checkpoints)``. ``mean_distance[m]``: mean over layers and units of
    ``|mu_m - mu_precise| / sqrt(var_precise)``; ``log_var_ratio[m]``: mean of
    ``|log(var_m / var_precise)|``; both ``(seeds, checkpoints)``.
    ``state_dict``: the final network of the first seed (for the chapter's demonstrations).
    """

    config: Config
    steps: np.ndarray
    methods: tuple[str, ...]
    accuracy: dict[str, np.ndarray]
    mean_distance: dict[str, np.ndarray]
    log_var_ratio: dict[str, np.ndarray]
    state_dict: dict[str, torch.Tensor] = field(repr=False)


class EMATracker:
    """Exponential moving averages of every BN layer's batch statistics, for several momenta.

    Registers forward hooks; in training mode each batch updates, for each momentum ``m``,
    ``running = (1 - m) * running + m * batch`` with the batch mean and the *unbiased* batch
    variance, exactly torch's update. Call :meth:`remove` to detach the hooks.
    """

    def __init__(self, model: nn.Module, momenta: tuple[float, ...]) -> None:
        self.layers = bn_layers(model)
        self.stats = {
            m: [
                (torch.zeros_like(b.running_mean), torch.ones_like(b.running_var))
                for b in self.layers
            ]
            for m in momenta
        }
        self._hooks = [
            layer.register_forward_pre_hook(self._make_hook(i))
            for i, layer in enumerate(self.layers)
        ]

    def _make_hook(self, index: int):
        def hook(module: nn.Module, args: tuple) -> None:
            if not module.training:
                return
            with torch.no_grad():
                x = args[0]  # (N, C)
                mean, var = x.mean(0), x.var(0, correction=1)  # (C,)
                for m, per_layer in self.stats.items():
                    run_mean, run_var = per_layer[index]
                    run_mean.mul_(1 - m).add_(m * mean)
                    run_var.mul_(1 - m).add_(m * var)

        return hook

    def remove(self) -> None:
        """Detach the hooks from the model."""
        for h in self._hooks:
            h.remove()


def _clone(model: NormMLP) -> NormMLP:
    # A fresh copy without the tracker's hooks (copy.deepcopy would copy them too, and the
    # copy's forward passes would then update the tracked averages).
    clone = NormMLP(model[0].in_features, model.hidden, model[-1].out_features, norm=model.norm)
    clone.load_state_dict(model.state_dict())
    return clone


def _with_stats(model: nn.Module, stats: list[tuple[torch.Tensor, torch.Tensor]]) -> nn.Module:
    clone = _clone(model)
    for layer, (mean, var) in zip(bn_layers(clone), stats, strict=True):
        layer.running_mean.copy_(mean)
        layer.running_var.copy_(var)
    return clone


def _distances(stats, reference) -> tuple[float, float]:
    mean_d, var_d = [], []
    for (mu, var), (mu_ref, var_ref) in zip(stats, reference, strict=True):
        mean_d.append(((mu - mu_ref).abs() / var_ref.sqrt()).mean())
        var_d.append((var / var_ref).log().abs().mean())
    return float(torch.stack(mean_d).mean()), float(torch.stack(var_d).mean())


@single_thread()
def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train, and at each checkpoint compare EMA and precise population statistics.

    Parameters
    ----------
    config : Config, optional
        The experiment's settings; the defaults are the scale the book shows.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Test accuracy and distance to the exact statistics, per method, seed and checkpoint.
    """
    x, y = load(config.dataset, "train", flatten=True)
    x_test, y_test = load(config.dataset, "test", flatten=True)
    methods = tuple(f"ema {m:g}" for m in config.momenta) + ("precise",)
    n_ckpt = len(config.checkpoints)
    where = {step: k for k, step in enumerate(config.checkpoints)}
    shape = (len(config.seeds), n_ckpt)
    accuracy = {m: np.zeros(shape) for m in methods}
    mean_distance = {m: np.zeros(shape) for m in methods}
    log_var_ratio = {m: np.zeros(shape) for m in methods}
    state_dict = {}
    for s, seed in enumerate(config.seeds):
        torch.manual_seed(seed)
        model = NormMLP(784, config.hidden, norm="batch")
        tracker = EMATracker(model, config.momenta)
        # Precise BN always averages the same training batches (its own fixed shuffle).
        precise_gen = torch.Generator().manual_seed(10_000 + seed)
        idx_stream = minibatches(len(x), config.batch_size, precise_gen)
        precise_idx = [next(idx_stream) for _ in range(config.precise_batches)]

        def checkpoint(step: int, net: nn.Module, s=s, tracker=tracker, idx=precise_idx) -> None:
            if step not in where:
                return
            k = where[step]
            precise = _clone(net)
            recompute_bn_stats(precise, (x[i] for i in idx))
            reference = [(b.running_mean, b.running_var) for b in bn_layers(precise)]
            accuracy["precise"][s, k] = evaluate(precise, x_test, y_test)[1]
            for m, name in zip(config.momenta, methods, strict=False):
                stats = tracker.stats[m]
                accuracy[name][s, k] = evaluate(_with_stats(net, stats), x_test, y_test)[1]
                mean_distance[name][s, k], log_var_ratio[name][s, k] = _distances(stats, reference)
            if progress:
                print(
                    f"seed {config.seeds[s]} step {step}: "
                    + ", ".join(f"{m} {accuracy[m][s, k]:.4f}" for m in methods)
                )

        train(
            model,
            x,
            y,
            batch_size=config.batch_size,
            steps=config.checkpoints[-1],
            lr=config.lr,
            momentum=config.sgd_momentum,
            seed=seed,
            on_step=checkpoint,
        )
        tracker.remove()
        if s == 0:
            state_dict = {k: v.clone() for k, v in model.state_dict().items()}
    return Result(
        config=config,
        steps=np.array(config.checkpoints),
        methods=methods,
        accuracy=accuracy,
        mean_distance=mean_distance,
        log_var_ratio=log_var_ratio,
        state_dict=state_dict,
    )
