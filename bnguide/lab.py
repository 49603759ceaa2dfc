"""The Python twin of the book's interactive BN lab (``book/_static/bnlab.js``).

The lab runs in the reader's browser with no server: one feature, a stream of training batches
``x = shift + scale * z``, a BN layer with ``gamma``, ``beta`` and PyTorch's ``momentum``. This
module draws the same batches from the same seeded generator and computes what the lab shows
with :mod:`bnguide.numpy_bn` (batch statistics, training and evaluation outputs) and
:func:`bnguide.momentum.running_average` (PyTorch's running statistics, variance unbiased), so
the browser test can compare the page's numbers with these to 1e-9.

The generator is mulberry32 (32-bit integer arithmetic that JavaScript's ``Math.imul`` and
Python compute identically), and each standard value ``z`` is an Irwin-Hall draw, the sum of 12
uniforms minus 6 (mean 0, variance 1, close to a normal). Every uniform is a multiple of
``2**-32`` below 1, so the sum is exact in float64: the batches are bit-identical in both
languages. Used in chapter *The full guide: implementation* (page *BN lab*).

Examples
--------
>>> from bnguide.lab import simulate
>>> state = simulate(batch_size=8, shift=3.0, scale=2.0, beta=0.5, steps=50)
>>> state.inputs.shape, state.running_mean.shape  # the batch on show; 0, 1, ..., 50 updates
((8,), (51,))
>>> bool(abs(state.train_output.mean() - 0.5) < 1e-12)  # training mode: the output's mean is beta
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnguide.momentum import running_average
from bnguide.numpy_bn import batchnorm_forward, batchnorm_inference

__all__ = ["EPS", "MAX_STEPS", "SEED", "LabState", "simulate", "standard_batches", "uniforms"]

SEED = 20150211  # the lab's default seed (the paper's arXiv date)
EPS = 1e-5  # PyTorch's default, as in the lab
MAX_STEPS = 500  # the lab's slider stops here
_MASK = 0xFFFFFFFF
_DRAWS_PER_VALUE = 12  # Irwin-Hall: 12 uniforms give variance 1


def uniforms(seed: int, count: int) -> np.ndarray:
    """``count`` uniforms in [0, 1) from mulberry32 seeded with ``seed``, as the lab draws them.

    Parameters
    ----------
    seed : int
        Any integer; only its low 32 bits are used (as JavaScript's ``| 0`` does).
    count : int
        How many values.

    Returns
    -------
    ndarray
        ``(count,)`` float64, each a multiple of ``2**-32``.
    """
    # mulberry32's state is a Weyl sequence, a_i = seed + (i + 1) * 0x6D2B79F5 (mod 2**32),
    # so every draw can be computed at once. uint64 products keep the low 32 bits exact.
    mask = np.uint64(_MASK)
    steps = np.arange(1, count + 1, dtype=np.uint64)
    a = (np.uint64(int(seed) & _MASK) + steps * np.uint64(0x6D2B79F5)) & mask
    t = ((a ^ (a >> np.uint64(15))) * (a | np.uint64(1))) & mask  # Math.imul(a ^ a >>> 15, 1 | a)
    t = ((t + (((t ^ (t >> np.uint64(7))) * (t | np.uint64(61))) & mask)) & mask) ^ t
    return ((t ^ (t >> np.uint64(14))) & mask).astype(np.float64) / 4294967296.0


def standard_batches(seed: int, num_batches: int, batch_size: int) -> np.ndarray:
    """The lab's standardized batches: row ``t`` is the ``z`` of training batch ``t``.

    Parameters
    ----------
    seed : int
        The generator's seed.
    num_batches, batch_size : int
        How many batches, and the values in each.

    Returns
    -------
    ndarray
        ``(num_batches, batch_size)``; each value is 12 consecutive uniforms summed minus 6.
    """
    u = uniforms(seed, num_batches * batch_size * _DRAWS_PER_VALUE)
    u = u.reshape(num_batches, batch_size, _DRAWS_PER_VALUE)
    # summed left to right like the JavaScript loop (exact anyway: multiples of 2**-32 below 12)
    total = np.zeros((num_batches, batch_size))
    for k in range(_DRAWS_PER_VALUE):
        total = total + u[..., k]
    return total - 6.0


@dataclass
class LabState:
    """What the lab shows after ``steps`` training steps.

    The batch on show is batch number ``steps`` (the next one; batches ``0 .. steps-1`` have
    updated the running statistics). Variances of the outputs are biased (of the batch shown).
    """

    inputs: np.ndarray  # (N,) the batch on show, x = shift + scale * z
    batch_mean: float
    batch_var: float  # biased: what normalizes the batch
    batch_var_unbiased: float  # n / (n - 1) times it: what the running variance averages
    train_output: np.ndarray  # (N,) batch statistics (model.train())
    eval_output: np.ndarray  # (N,) running statistics (model.eval())
    running_mean: np.ndarray  # (steps + 1,) after 0, 1, ..., steps updates
    running_var: np.ndarray  # (steps + 1,)
    step_means: np.ndarray  # (steps,) the mean of each batch that updated the running stats
    step_vars: np.ndarray  # (steps,) their unbiased variances

    @property
    def gap(self) -> float:
        """Largest ``|train_output - eval_output|`` over the batch: the train-vs-eval gap."""
        return float(np.max(np.abs(self.train_output - self.eval_output)))


def _check(batch_size, scale, momentum, steps) -> None:
    if int(batch_size) != batch_size or batch_size < 2:
        raise ValueError(
            f"simulate: batch_size must be an integer of at least 2 (batch statistics need two "
            f"values), got {batch_size!r}."
        )
    if not scale > 0:
        raise ValueError(f"simulate: scale must be positive, got {scale!r}.")
    if not 0 < momentum <= 1:
        raise ValueError(
            f"simulate: momentum must lie in (0, 1] (PyTorch's weight of the new batch), "
            f"got {momentum!r}."
        )
    if int(steps) != steps or not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"simulate: steps must be an integer in [0, {MAX_STEPS}], got {steps!r}.")


def simulate(
    batch_size: int,
    shift: float,
    scale: float,
    gamma: float = 1.0,
    beta: float = 0.0,
    momentum: float = 0.1,
    steps: int = 0,
    seed: int = SEED,
    eps: float = EPS,
) -> LabState:
    """Run the lab: ``steps`` training steps of a one-feature BN layer, then the next batch.

    Parameters
    ----------
    batch_size : int
        Values per batch, at least 2.
    shift, scale : float
        The incoming activations are ``shift + scale * z`` with ``z`` of mean 0 and variance 1.
    gamma, beta : float
        BN's scale and shift.
    momentum : float
        PyTorch's convention: the weight of the new batch in the running averages, in (0, 1].
    steps : int
        Training steps taken, ``0 .. MAX_STEPS``; the running statistics start at 0 and 1.
    seed : int
        The generator's seed (the lab uses :data:`SEED`).
    eps : float
        Added to the variances.

    Returns
    -------
    LabState
        The batch on show, its outputs in both modes and the running statistics' history.
    """
    _check(batch_size, scale, momentum, steps)
    n = int(batch_size)
    x = shift + scale * standard_batches(seed, steps + 1, n)  # (steps + 1, N)
    g, b = np.array([gamma], dtype=np.float64), np.array([beta], dtype=np.float64)
    # Every batch at once: its N values are the N rows of an (N, steps + 1) input, one channel
    # per batch, so the cache holds each batch's mean and biased variance.
    _, cache = batchnorm_forward(x.T, np.ones(steps + 1), np.zeros(steps + 1), eps)
    means, variances = cache.mu[0], cache.var[0]  # (steps + 1,)
    unbiased = variances * (n / (n - 1))
    running_mean = np.concatenate(
        [[0.0], running_average(means[:steps, None], momentum, "pytorch", 0.0)[:, 0]]
    )
    running_var = np.concatenate(
        [[1.0], running_average(unbiased[:steps, None], momentum, "pytorch", 1.0)[:, 0]]
    )
    shown = x[steps][:, None]  # (N, 1)
    train_output, _ = batchnorm_forward(shown, g, b, eps)
    eval_output = batchnorm_inference(
        shown, g, b, running_mean[-1:], running_var[-1:], eps
    )  # (N, 1)
    return LabState(
        inputs=x[steps],
        batch_mean=float(means[steps]),
        batch_var=float(variances[steps]),
        batch_var_unbiased=float(unbiased[steps]),
        train_output=train_output[:, 0],
        eval_output=eval_output[:, 0],
        running_mean=running_mean,
        running_var=running_var,
        step_means=means[:steps],
        step_vars=unbiased[:steps],
    )
