"""BN under a train/test distribution shift, and three fixes.

Networks trained on clean MNIST are tested on images whose intensities were changed,
``x' = contrast * x + brightness``, and on test batches that each hold a single class. A BN
network evaluated with its population statistics (the usual eval mode) is compared with three
fixes: recomputing the statistics on unlabeled shifted images
(:func:`bnguide.precise_bn.recompute_bn_stats` on the target domain), normalizing with each test
batch's own statistics (:func:`bnguide.precise_bn.batch_statistics`), and a batch-independent
normalizer (LayerNorm) trained instead. Chapter *Stability issues*.

Examples
--------
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import distribution_shift
>>> distribution_shift.NAME
'distribution-shift'
>>> result = cached_run(distribution_shift.run, distribution_shift.Config())  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bnguide.data import load
from bnguide.models.norm_mlp import NormMLP
from bnguide.precise_bn import bn_layers, recompute_bn_stats
from bnguide.training.fit import check_batch_size, evaluate, single_thread, train

__all__ = ["NAME", "DESCRIPTION", "METHODS", "Config", "Result", "run", "shift"]

NAME = "distribution-shift"
DESCRIPTION = "BN's eval mode under intensity- and class-shifted test data, and three fixes"

METHODS = (
    "no normalization",
    "BN, population statistics",
    "BN, recomputed on target",
    "BN, batch statistics",
    "LayerNorm",
)


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    hidden: tuple[int, ...] = (100, 100)
    batch_size: int = 64
    lr: float = 0.05
    sgd_momentum: float = 0.9
    steps: int = 1000
    seeds: tuple[int, ...] = (0, 1)
    contrasts: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # with brightness 0
    brightnesses: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)  # with contrast 1
    eval_batch_size: int = 100  # test batches normalized with their own statistics
    target_examples: int = 5000  # unlabeled shifted training images for recomputation
    dataset: str = "mnist"

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size, where="distribution-shift")
        check_batch_size(self.eval_batch_size, where="distribution-shift (eval_batch_size)")
        if self.target_examples < 2 * self.eval_batch_size:
            raise ValueError(
                "target_examples must hold at least two evaluation batches, got "
                f"{self.target_examples} < 2 * {self.eval_batch_size}."
            )
        if any(c <= 0 for c in self.contrasts):
            raise ValueError(f"contrasts must be positive, got {self.contrasts}.")
        if not self.seeds:
            raise ValueError("seeds must not be empty.")

    @property
    def shifts(self) -> tuple[tuple[float, float], ...]:
        """All ``(contrast, brightness)`` pairs tested: contrast sweep, then brightness sweep."""
        return tuple((c, 0.0) for c in self.contrasts) + tuple((1.0, b) for b in self.brightnesses)


@dataclass
class Result:
    """Accuracies under each shift and the size of BN's eval-mode activations.

    ``accuracy[method]``: ``(seeds, shifts)`` test accuracy, shifts as in ``config.shifts``.
    ``bn_rms``: ``(seeds, shifts, layers)`` root mean square of each BN layer's output in eval
    mode (population statistics) on the shifted test set; about 1 on data like the training data.
    ``class_sorted[method]``: ``(seeds,)`` accuracy on clean test batches sorted by label, so
    that each batch holds one class (two where a class ends mid-batch); NaN for the recomputed
    statistics, which have nothing to adapt to here.
    """

    config: Config
    shifts: tuple[tuple[float, float], ...]
    accuracy: dict[str, np.ndarray]
    bn_rms: np.ndarray
    class_sorted: dict[str, np.ndarray]


def shift(x: torch.Tensor, contrast: float, brightness: float) -> torch.Tensor:
    """Intensity shift ``contrast * x + brightness`` of images in [0, 1] (values not clipped).

    Parameters
    ----------
    x : torch.Tensor
        Images of any shape, values in [0, 1].
    contrast : float
        Factor applied to every pixel.
    brightness : float
        Value added to every pixel.

    Returns
    -------
    torch.Tensor
        The shifted images, same shape as ``x``.
    """
    return x * contrast + brightness


@torch.no_grad()
def _bn_output_rms(model: nn.Module, x: torch.Tensor) -> list[float]:
    outputs: list[float] = []
    hooks = [
        layer.register_forward_hook(lambda m, i, o: outputs.append(float(o.square().mean().sqrt())))
        for layer in bn_layers(model)
    ]
    model.eval()
    model(x)
    for h in hooks:
        h.remove()
    return outputs


def _train(config: Config, norm: str, seed: int, x, y) -> NormMLP:
    torch.manual_seed(seed)
    model = NormMLP(x.shape[1], config.hidden, norm=norm)
    train(
        model,
        x,
        y,
        batch_size=config.batch_size,
        steps=config.steps,
        lr=config.lr,
        momentum=config.sgd_momentum,
        seed=seed,
    )
    return model.eval()


@single_thread()
def run(config: Config = Config(), progress: bool = False) -> Result:
    """Train a plain, a BN and a LayerNorm network per seed; test them on shifted data.

    Parameters
    ----------
    config : Config, optional
        The experiment's settings; the defaults are the scale the book shows.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Result
        Accuracy under every shift, and the size of BN's eval-mode activations.
    """
    x, y = load(config.dataset, "train", flatten=True)
    x_test, y_test = load(config.dataset, "test", flatten=True)
    target = x[-config.target_examples :]  # unlabeled images for recomputing statistics
    shifts = config.shifts
    n_seeds = len(config.seeds)
    accuracy = {m: np.zeros((n_seeds, len(shifts))) for m in METHODS}
    bn_rms = np.zeros((n_seeds, len(shifts), len(config.hidden)))
    class_sorted = {m: np.zeros(n_seeds) for m in METHODS}
    eval_bs = config.eval_batch_size
    for s, seed in enumerate(config.seeds):
        plain = _train(config, "none", seed, x, y)
        bn = _train(config, "batch", seed, x, y)
        ln = _train(config, "layer", seed, x, y)
        for k, (c, b) in enumerate(shifts):
            xs = shift(x_test, c, b)  # (10000, 784)
            adapted = NormMLP(x.shape[1], config.hidden, norm="batch")
            adapted.load_state_dict(bn.state_dict())
            target_shifted = shift(target, c, b)
            recompute_bn_stats(
                adapted, target_shifted.split(eval_bs)[: len(target_shifted) // eval_bs]
            )
            row = {
                "no normalization": evaluate(plain, xs, y_test)[1],
                "BN, population statistics": evaluate(bn, xs, y_test)[1],
                "BN, recomputed on target": evaluate(adapted, xs, y_test)[1],
                "BN, batch statistics": evaluate(
                    bn, xs, y_test, batch_size=eval_bs, batch_stats=True
                )[1],
                "LayerNorm": evaluate(ln, xs, y_test)[1],
            }
            for m, acc in row.items():
                accuracy[m][s, k] = acc
            bn_rms[s, k] = _bn_output_rms(bn, xs)
            if progress:
                print(f"seed {seed} contrast {c} brightness {b}: {row}")
        # Class shift: each test batch holds one class (stable sort keeps the order within).
        order = torch.argsort(y_test, stable=True)
        xc, yc = x_test[order], y_test[order]
        class_sorted["no normalization"][s] = evaluate(plain, xc, yc, batch_size=eval_bs)[1]
        class_sorted["BN, population statistics"][s] = evaluate(bn, xc, yc, batch_size=eval_bs)[1]
        class_sorted["BN, recomputed on target"][s] = np.nan  # no shift to adapt to
        class_sorted["BN, batch statistics"][s] = evaluate(
            bn, xc, yc, batch_size=eval_bs, batch_stats=True
        )[1]
        class_sorted["LayerNorm"][s] = evaluate(ln, xc, yc, batch_size=eval_bs)[1]
    return Result(
        config=config,
        shifts=shifts,
        accuracy=accuracy,
        bn_rms=bn_rms,
        class_sorted=class_sorted,
    )
