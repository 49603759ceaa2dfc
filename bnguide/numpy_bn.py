"""Batch normalization in plain NumPy: forward, two backward passes, and inference.

The training transform is Algorithm 1 of Ioffe & Szegedy (2015); inference with population
statistics is their Algorithm 2. Inputs are ``(N, D)`` (a fully connected layer) or
``(N, C, *spatial)`` (a convolutional layer, statistics over N and every spatial position).
Used in chapter *The full guide: implementation* (pages *Forward pass* and *Backward pass*).

Examples
--------
>>> import numpy as np
>>> from bnguide.numpy_bn import batchnorm_forward
>>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(64, 4))  # (N, C)
>>> out, cache = batchnorm_forward(x, np.ones(4), np.zeros(4))
>>> np.allclose(out.mean(axis=0), 0), np.allclose(out.std(axis=0), 1, atol=1e-4)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnguide import _validation

__all__ = [
    "ForwardCache",
    "batchnorm_backward",
    "batchnorm_backward_graph",
    "batchnorm_forward",
    "batchnorm_inference",
    "population_statistics",
    "reduce_axes",
]


def reduce_axes(ndim: int) -> tuple[int, ...]:
    """Axes the statistics are taken over: the batch axis 0 and every spatial axis (2, 3, ...).

    Parameters
    ----------
    ndim : int
        Number of dimensions of the input, at least 2.

    Returns
    -------
    tuple of int
        ``(0, 2, 3, ...)``.
    """
    return (0, *range(2, ndim))


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    # (C,) -> (1, C, 1, ...): broadcasts against an (N, C, *spatial) array
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def _check(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, where: str) -> None:
    _validation.check_floating_point(x, where)
    _validation.check_min_dims(x, where)
    _validation.check_per_channel(gamma, "gamma", x.shape[1], where)
    _validation.check_per_channel(beta, "beta", x.shape[1], where)


@dataclass
class ForwardCache:
    """What the forward pass keeps for the backward pass (every node of the computation graph).

    Arrays are broadcastable against the input: per-channel values have shape ``(1, C, 1, ...)``.
    """

    x_centered: np.ndarray  # x - mu, (N, C, *)
    mu: np.ndarray  # batch mean, (1, C, 1, ...)
    var: np.ndarray  # biased batch variance, (1, C, 1, ...)
    std: np.ndarray  # sqrt(var + eps), (1, C, 1, ...)
    inv_std: np.ndarray  # 1 / std, (1, C, 1, ...)
    x_hat: np.ndarray  # normalized input, (N, C, *)
    gamma: np.ndarray  # (1, C, 1, ...)
    eps: float

    @property
    def axes(self) -> tuple[int, ...]:
        """The axes the statistics were taken over."""
        return reduce_axes(self.x_hat.ndim)

    @property
    def m(self) -> int:
        """Number of values behind each channel's statistics (N times the spatial size)."""
        return self.x_hat.size // self.x_hat.shape[1]


def batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, ForwardCache]:
    """Normalize ``x`` with its batch statistics, then scale by ``gamma`` and shift by ``beta``.

    .. math:: y = \\gamma \\frac{x - \\mu_B}{\\sqrt{\\sigma_B^2 + \\epsilon}} + \\beta

    Parameters
    ----------
    x : ndarray
        The mini-batch, floating point.
    gamma, beta : ndarray
        Per-channel scale and shift.
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    out : ndarray
        The normalized, scaled and shifted batch, same shape as ``x``.
    cache : ForwardCache
        Intermediate values for :func:`batchnorm_backward` and :func:`batchnorm_backward_graph`.

    Shape
    -----
    x, out: ``(N, D)`` or ``(N, C, *spatial)``; gamma, beta: ``(C,)``.
    """
    _check(x, gamma, beta, "batchnorm_forward")
    _validation.check_batch_size(x.shape)
    _validation.check_eps(eps, training=True)
    axes = reduce_axes(x.ndim)
    mu = x.mean(axis=axes, keepdims=True)  # (1, C, 1, ...)
    x_centered = x - mu  # (N, C, *)
    var = (x_centered**2).mean(axis=axes, keepdims=True)  # biased, two passes: stable
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = x_centered * inv_std  # (N, C, *)
    gamma_b = _per_channel(gamma, x.ndim)
    out = gamma_b * x_hat + _per_channel(beta, x.ndim)
    cache = ForwardCache(x_centered, mu, var, std, inv_std, x_hat, gamma_b, eps)
    return out, cache


def batchnorm_backward_graph(
    dout: np.ndarray, cache: ForwardCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass, one node of the computation graph at a time (the chain rule by hand).

    Parameters
    ----------
    dout : ndarray
        Gradient of the loss with respect to the forward output.
    cache : ForwardCache
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : ndarray
        Gradients with respect to ``x``, ``gamma`` and ``beta``.

    Shape
    -----
    dout, dx: the input's shape; dgamma, dbeta: ``(C,)``.
    """
    c, axes, m = cache, cache.axes, cache.m
    # out = gamma * x_hat + beta
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * c.x_hat).sum(axis=axes)
    dx_hat = dout * c.gamma
    # x_hat = x_centered * inv_std  (x_centered feeds two nodes: here and the variance)
    dx_centered = dx_hat * c.inv_std
    dinv_std = (dx_hat * c.x_centered).sum(axis=axes, keepdims=True)
    # inv_std = 1 / std
    dstd = -dinv_std / c.std**2
    # std = sqrt(var + eps)
    dvar = dstd / (2.0 * c.std)
    # var = mean(x_centered ** 2)
    dx_centered = dx_centered + 2.0 * c.x_centered * dvar / m
    # x_centered = x - mu  (x feeds two nodes: here and the mean)
    dmu = -dx_centered.sum(axis=axes, keepdims=True)
    dx = dx_centered
    # mu = mean(x)
    dx = dx + dmu / m
    return dx, dgamma, dbeta


def batchnorm_backward(
    dout: np.ndarray, cache: ForwardCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass in closed form.

    .. math:: \frac{\partial L}{\partial x} = \frac{\gamma}{m\sqrt{\sigma^2+\epsilon}}
        \left(m\,\frac{\partial L}{\partial y} - \frac{\partial L}{\partial \beta}
        - \hat x\, \frac{\partial L}{\partial \gamma}\right)

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
    axes, m = cache.axes, cache.m
    dbeta = dout.sum(axis=axes)  # (C,)
    dgamma = (dout * cache.x_hat).sum(axis=axes)  # (C,)
    # the two sums the derivation needs are the parameter gradients themselves
    dbeta_b, dgamma_b = _per_channel(dbeta, dout.ndim), _per_channel(dgamma, dout.ndim)
    dx = (cache.gamma * cache.inv_std / m) * (m * dout - dbeta_b - cache.x_hat * dgamma_b)
    return dx, dgamma, dbeta


def population_statistics(
    batch_means: np.ndarray, batch_vars: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Population mean and variance from per-batch statistics (Algorithm 2, steps 8-10).

    .. math:: E[x] = E_B[\\mu_B], \\qquad \\mathrm{Var}[x] = \\frac{m}{m-1} E_B[\\sigma_B^2]

    Parameters
    ----------
    batch_means, batch_vars : ndarray
        One row per training mini-batch: its mean and its biased variance.
    batch_size : int
        ``m``, the number of values behind each batch statistic (> 1).

    Returns
    -------
    mean, var : ndarray
        The population estimates; ``var`` is unbiased.

    Shape
    -----
    batch_means, batch_vars: ``(num_batches, C)``; mean, var: ``(C,)``.
    """
    if batch_size < 2:
        raise ValueError(
            f"population_statistics: batch_size must be at least 2 for the unbiased "
            f"m/(m-1) correction, got {batch_size}."
        )
    mean = np.mean(batch_means, axis=0)
    var = batch_size / (batch_size - 1) * np.mean(batch_vars, axis=0)
    return mean, var


def batchnorm_inference(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = 1e-5,
) -> np.ndarray:
    """Batch norm at inference: a fixed per-channel affine map (Algorithm 2, step 11).

    .. math:: y = \\frac{\\gamma}{\\sqrt{\\mathrm{Var}[x]+\\epsilon}}\\, x
        + \\left(\\beta - \\frac{\\gamma\\, E[x]}{\\sqrt{\\mathrm{Var}[x]+\\epsilon}}\\right)

    Parameters
    ----------
    x : ndarray
        Any number of examples, even one.
    gamma, beta : ndarray
        The trained scale and shift.
    mean, var : ndarray
        Population statistics, e.g. from :func:`population_statistics`.
    eps : float
        As in training.

    Returns
    -------
    ndarray
        Same shape as ``x``; each example is transformed independently of the others.

    Shape
    -----
    x: ``(N, D)`` or ``(N, C, *spatial)``, N >= 1; gamma, beta, mean, var: ``(C,)``.
    """
    _check(x, gamma, beta, "batchnorm_inference")
    _validation.check_per_channel(mean, "mean", x.shape[1], "batchnorm_inference")
    _validation.check_per_channel(var, "var", x.shape[1], "batchnorm_inference")
    scale = gamma / np.sqrt(var + eps)  # (C,)
    shift = beta - scale * mean  # (C,)
    return _per_channel(scale, x.ndim) * x + _per_channel(shift, x.ndim)
