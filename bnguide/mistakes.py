"""Deliberately wrong pieces of a batch-norm implementation, each with exactly one bug.

Each mistake below has been seen in public code. The page *Common implementation mistakes* of
chapter *The full guide: implementation* runs each one next to the right version and shows the
difference; the tests check that the difference is there. Mistakes in how a layer keeps its
state (buffers, ``no_grad``, train/eval mode) live in :mod:`bnguide.pitfalls`. Never use these
for anything else: the right versions are :mod:`bnguide.numpy_bn` and :mod:`bnguide.nn`.

Examples
--------
>>> import torch
>>> from bnguide.mistakes import batch_norm_unbiased_variance
>>> x = torch.randn(32, 4, dtype=torch.float64)
>>> right = (x - x.mean(0)) / x.std(0, unbiased=False)  # (N, C)
>>> wrong = batch_norm_unbiased_variance(x, eps=0.0)  # (N, C)
>>> torch.allclose(wrong, right * (31 / 32) ** 0.5)
True
"""

from __future__ import annotations

import numpy as np
import torch

from bnguide import nn as bnn
from bnguide.numpy_bn import ForwardCache

__all__ = [
    "ZeroVarInitBatchNorm1d",
    "backward_ignoring_variance",
    "batch_norm_shortcut_variance",
    "batch_norm_unbiased_variance",
]


def batch_norm_unbiased_variance(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """WRONG: normalizes an ``(N, C)`` batch with the *unbiased* batch variance.

    ``x.var(0)`` defaults to the unbiased estimate (divide by ``N - 1``); batch norm divides by
    ``N``. The outputs shrink by ``sqrt((N - 1) / N)``: at ``N = 32`` about 1.6%, up to a few
    hundredths in absolute terms.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C)`` batch.
    eps : float, optional
        Added to the variance.

    Returns
    -------
    torch.Tensor
        ``(N, C)`` normalized batch, with no scale or shift.
    """
    return (x - x.mean(0)) / torch.sqrt(x.var(0) + eps)  # the bug: x.var(0) is unbiased


def batch_norm_shortcut_variance(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """WRONG: normalizes an ``(N, C)`` batch with the variance computed as E[x²] - E[x]².

    Fine in float64 for well-centred data; in float32 with a mean far from zero the variance is
    mostly rounding error (see :mod:`bnguide.numerics`).

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C)`` batch.
    eps : float, optional
        Added to the variance.

    Returns
    -------
    torch.Tensor
        ``(N, C)`` normalized batch, with no scale or shift.
    """
    var = (x * x).mean(0) - x.mean(0) ** 2  # the bug: catastrophic cancellation
    return (x - x.mean(0)) / torch.sqrt(var.clamp_min(0) + eps)


def backward_ignoring_variance(
    dout: np.ndarray, cache: ForwardCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WRONG: a backward pass that forgets that the batch variance depends on ``x``.

    Same signature as :func:`bnguide.numpy_bn.batchnorm_backward`. It keeps the path through the
    mean but drops the one through the variance, so ``dx`` misses the term
    ``- x_hat * mean(g_hat * x_hat)``. With an all-ones upstream gradient that term is zero
    anyway, which is why such a check cannot catch this bug.

    Parameters
    ----------
    dout : numpy.ndarray
        Upstream gradient, the input's shape: ``(N, C)`` or ``(N, C, *spatial)``.
    cache : ForwardCache
        What the forward pass saved.

    Returns
    -------
    dx : numpy.ndarray
        The input's shape.
    dgamma, dbeta : numpy.ndarray
        ``(C,)``.
    """
    axes = cache.axes
    g_hat = dout * cache.gamma
    dx = cache.inv_std * (g_hat - g_hat.mean(axis=axes, keepdims=True))  # the bug
    return dx, (dout * cache.x_hat).sum(axis=axes), dout.sum(axis=axes)


class ZeroVarInitBatchNorm1d(bnn.BatchNorm1d):
    """WRONG: starts ``running_var`` at zeros instead of ones (everything else is right).

    Until many batches have been averaged in, the running variance is far too small, so in
    evaluation mode the layer divides by almost ``sqrt(eps)`` and its outputs explode.
    """

    def reset_running_stats(self) -> None:
        super().reset_running_stats()
        if self.track_running_stats:
            self.running_var.zero_()  # the bug: torch starts from ones
