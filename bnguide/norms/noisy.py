"""Noisy BN: batch norm followed by deliberately injected covariate shift.

Santurkar et al. (2018, Figure 2 and appendix Algorithm 1) test whether batch norm helps by
stabilising layer-input distributions. After the normalization they add noise that makes every
unit's distribution change at every step, far more than it ever does in a standard network:

for each step ``t`` and unit ``j``: :math:`\\mu_t \\sim U(-n_\\mu, n_\\mu)`,
:math:`\\sigma_t \\sim U(1, n_\\sigma)`; for each example ``i``:
:math:`m \\sim U(\\mu_t - r_\\mu, \\mu_t + r_\\mu)`, :math:`s \\sim N(\\sigma_t, r_\\sigma)`, and
the activation becomes :math:`a \\leftarrow s\\,a + m`. Constants: ``n_mu = 0.5``,
``n_sigma = 1.25``, ``r_mu = r_sigma = 0.1``. For convolutions, positions count as examples.
The noise is only added in training mode. Used in chapter *Why BN works: internal covariate
shift*.

Examples
--------
>>> import torch
>>> from bnguide.norms.noisy import NoisyBatchNorm1d
>>> layer = NoisyBatchNorm1d(4)
>>> layer(torch.randn(32, 4)).shape  # (N, C): normalized, then shifted and scaled at random
torch.Size([32, 4])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CovariateShiftNoise", "NoisyBatchNorm1d", "NoisyBatchNorm2d", "covariate_shift_noise"]


def _check_constants(n_mu: float, n_sigma: float, r_mu: float, r_sigma: float) -> None:
    if n_mu < 0 or r_mu < 0 or r_sigma < 0:
        raise ValueError(
            f"n_mu, r_mu and r_sigma are half-widths / a standard deviation and must be >= 0, "
            f"got n_mu={n_mu}, r_mu={r_mu}, r_sigma={r_sigma}."
        )
    if n_sigma < 1:
        raise ValueError(
            f"n_sigma is the upper end of U(1, n_sigma) and must be >= 1, got {n_sigma}."
        )


def covariate_shift_noise(
    input: Tensor,
    n_mu: float = 0.5,
    n_sigma: float = 1.25,
    r_mu: float = 0.1,
    r_sigma: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One draw of the appendix's noise: ``s * input + m`` with fresh per-unit distributions.

    Parameters
    ----------
    input : Tensor
        ``(N, C)`` or ``(N, C, *spatial)``; channel ``j`` is unit ``j``.
    n_mu, n_sigma, r_mu, r_sigma : float
        The constants of Algorithm 1.
    generator : torch.Generator, optional
        Source of randomness (the global one when None).

    Returns
    -------
    Tensor
        Same shape as ``input``. Gradients flow through ``input`` (``s`` and ``m`` are constants).
    """
    _check_constants(n_mu, n_sigma, r_mu, r_sigma)
    if input.dim() < 2:
        raise ValueError(
            f"covariate_shift_noise: expected input of shape (N, C) or (N, C, *spatial), got "
            f"{tuple(input.shape)}."
        )
    c = input.shape[1]
    kw = {"device": input.device, "dtype": input.dtype}
    view = (1, c) + (1,) * (input.dim() - 2)
    u = torch.rand(2, c, generator=generator, **kw)  # (2, C): one draw per unit and step
    mu_t = ((2 * u[0] - 1) * n_mu).view(view)  # U(-n_mu, n_mu)
    sigma_t = (1 + u[1] * (n_sigma - 1)).view(view)  # U(1, n_sigma)
    # m ~ U(mu_t - r_mu, mu_t + r_mu), s ~ N(sigma_t, r_sigma), per example and unit
    m = torch.rand(input.shape, generator=generator, **kw).mul_(2 * r_mu).add_(mu_t - r_mu)
    s = torch.randn(input.shape, generator=generator, **kw).mul_(r_sigma).add_(sigma_t)
    return torch.addcmul(m, s, input)  # (N, C, *)


class CovariateShiftNoise(nn.Module):
    """The noise of Algorithm 1 as a layer: active in training mode, the identity in eval mode.

    Put it after a batch norm (noisy BN) or after a plain linear layer (the same noise in a
    standard network).

    Parameters
    ----------
    n_mu, n_sigma, r_mu, r_sigma : float
        The constants of Algorithm 1 (defaults are the paper's).

    Shape
    -----
    input and output: ``(N, C)`` or ``(N, C, *spatial)``.
    """

    def __init__(
        self, n_mu: float = 0.5, n_sigma: float = 1.25, r_mu: float = 0.1, r_sigma: float = 0.1
    ) -> None:
        super().__init__()
        _check_constants(n_mu, n_sigma, r_mu, r_sigma)
        self.n_mu, self.n_sigma, self.r_mu, self.r_sigma = n_mu, n_sigma, r_mu, r_sigma

    def forward(self, input: Tensor) -> Tensor:
        if not self.training:
            return input
        return covariate_shift_noise(input, self.n_mu, self.n_sigma, self.r_mu, self.r_sigma)

    def extra_repr(self) -> str:
        return f"n_mu={self.n_mu}, n_sigma={self.n_sigma}, r_mu={self.r_mu}, r_sigma={self.r_sigma}"


class _NoisyMixin:
    def _init_noise(self, n_mu, n_sigma, r_mu, r_sigma):
        self.noise = CovariateShiftNoise(n_mu, n_sigma, r_mu, r_sigma)

    def forward(self, input: Tensor) -> Tensor:
        return self.noise(super().forward(input))  # noise is the identity in eval mode


class NoisyBatchNorm1d(_NoisyMixin, nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` followed by :class:`CovariateShiftNoise` in training mode.

    Takes every argument of ``BatchNorm1d`` plus the noise constants ``n_mu``, ``n_sigma``,
    ``r_mu``, ``r_sigma``. Its ``state_dict`` is that of a ``BatchNorm1d`` (the noise has no
    state), so a trained noisy net loads into a plain one.
    """

    def __init__(self, num_features, *args, n_mu=0.5, n_sigma=1.25, r_mu=0.1, r_sigma=0.1, **kw):
        super().__init__(num_features, *args, **kw)
        self._init_noise(n_mu, n_sigma, r_mu, r_sigma)


class NoisyBatchNorm2d(_NoisyMixin, nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` followed by :class:`CovariateShiftNoise` in training mode."""

    def __init__(self, num_features, *args, n_mu=0.5, n_sigma=1.25, r_mu=0.1, r_sigma=0.1, **kw):
        super().__init__(num_features, *args, **kw)
        self._init_noise(n_mu, n_sigma, r_mu, r_sigma)
