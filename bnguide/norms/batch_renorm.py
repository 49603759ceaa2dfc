"""Batch renormalization (Ioffe 2017): batch norm whose training output tracks its inference output.

In training, BN's output ``(x - mu_B) / sigma_B`` is corrected by ``r = sigma_B / sigma`` and
``d = (mu_B - mu) / sigma``, computed from the running statistics ``mu, sigma``, clipped to
``[1/r_max, r_max]`` and ``[-d_max, d_max]`` and treated as constants by backprop. Unclipped,
the training output equals ``(x - mu) / sigma``, the inference output. Torch has no such layer.
Used in :doc:`/book/scale/normalizers`.

Examples
--------
With ``r_max = 1`` and ``d_max = 0`` there is nothing to correct: it is batch norm.

>>> import torch
>>> x = torch.randn(8, 3, 4, 4)
>>> renorm = BatchRenorm2d(3, r_max=1.0, d_max=0.0)
>>> torch.allclose(renorm(x), torch.nn.BatchNorm2d(3)(x), atol=1e-5)
True
"""

from __future__ import annotations

import torch

from bnguide.nn import NormBase
from bnguide.norms._common import channel_view, mean_and_biased_var

__all__ = ["BatchRenorm1d", "BatchRenorm2d", "BatchRenorm3d", "batch_renorm", "renorm_limits"]


def batch_renorm(
    input: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    r_max: float = 3.0,
    d_max: float = 5.0,
) -> torch.Tensor:
    """Batch renormalization; in eval mode exactly ``F.batch_norm`` with running statistics.

    .. math:: \\hat x = \\frac{x - \\mu_B}{\\sigma_B} r + d,\\quad
              r = \\mathrm{clip}_{[1/r_{max}, r_{max}]}\\Big(\\frac{\\sigma_B}{\\sigma}\\Big),\\quad
              d = \\mathrm{clip}_{[-d_{max}, d_{max}]}\\Big(\\frac{\\mu_B - \\mu}{\\sigma}\\Big)

    with :math:`\\sigma_B = \\sqrt{\\mathrm{Var}_B + \\epsilon}` (biased batch variance) and
    :math:`\\sigma = \\sqrt{\\text{running\\_var} + \\epsilon}`.

    Parameters
    ----------
    input : torch.Tensor
        ``(N, C, *)``.
    running_mean, running_var : torch.Tensor
        ``(C,)`` buffers; in training, ``r`` and ``d`` use their values *before* this batch,
        then they are updated in place (momentum weights the new batch, ``running_var`` gets the
        unbiased batch variance, as in torch's BatchNorm).
    weight, bias : torch.Tensor, optional
        Per-channel ``gamma`` and ``beta``, shape ``(C,)``.
    training : bool
        Use batch statistics with the r/d correction (True) or the running statistics (False).
    momentum : float
        Weight of the new batch in the running-statistics update.
    eps : float
        Added to variances for numerical stability.
    r_max, d_max : float
        Clipping limits; ``r_max=1, d_max=0`` is plain batch normalization.

    Returns
    -------
    torch.Tensor
        Same shape as ``input``.
    """
    if input.dim() < 2:
        raise ValueError(
            f"batch_renorm expects input of shape (N, C, *), got {input.dim()}D input."
        )
    if r_max < 1 or d_max < 0:
        raise ValueError(
            f"batch_renorm needs r_max >= 1 and d_max >= 0 (r is clipped to [1/r_max, r_max], "
            f"d to [-d_max, d_max]), got r_max={r_max}, d_max={d_max}."
        )
    ndim = input.dim()
    mean_run = channel_view(running_mean, ndim)  # (1, C, 1, ...)
    std_run = torch.sqrt(channel_view(running_var, ndim) + eps)
    if training:
        count = input.numel() // input.shape[1] if input.shape[1] else 0
        if count == 0:  # an empty batch, as torch's BatchNorm: empty output, stats unchanged
            out = input
        elif count == 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, got input size "
                f"{list(input.shape)}."
            )
        else:
            dims = (0, *range(2, ndim))
            mean, var = mean_and_biased_var(input, dims)  # (1, C, 1, ...)
            std = torch.sqrt(var + eps)
            with torch.no_grad():  # r and d are constants for backprop
                r = (std / std_run).clamp(1 / r_max, r_max)
                d = ((mean - mean_run) / std_run).clamp(-d_max, d_max)
                running_mean.mul_(1 - momentum).add_(momentum * mean.flatten())
                running_var.mul_(1 - momentum).add_(momentum * var.flatten() * count / (count - 1))
            out = (input - mean) / std * r + d
    else:
        out = (input - mean_run) / std_run
    if weight is not None:
        out = out * channel_view(weight, ndim)
    if bias is not None:
        out = out + channel_view(bias, ndim)
    return out


def renorm_limits(
    step: int,
    warmup: int,
    r_steps: int,
    d_steps: int,
    r_final: float = 3.0,
    d_final: float = 5.0,
) -> tuple[float, float]:
    """The clipping schedule of Ioffe (2017): plain BN first, then the limits relax linearly.

    ``r_max = 1, d_max = 0`` for the first ``warmup`` steps; then ``r_max`` rises linearly to
    ``r_final`` at step ``r_steps`` and ``d_max`` to ``d_final`` at step ``d_steps``. The paper
    used warmup 5k, ``r_max = 3`` at 40k and ``d_max = 5`` at 25k steps ("gradually relaxed";
    linear is our reading).

    Parameters
    ----------
    step : int
        The current training step.
    warmup : int
        Steps of plain BN before the limits start to relax.
    r_steps, d_steps : int
        Steps at which ``r_max`` and ``d_max`` reach their final values.
    r_final, d_final : float
        The final limits.

    Returns
    -------
    (r_max, d_max) : tuple of float
    """
    if not 0 <= warmup < min(r_steps, d_steps):
        raise ValueError(
            f"renorm_limits needs 0 <= warmup < r_steps and d_steps, got warmup={warmup}, "
            f"r_steps={r_steps}, d_steps={d_steps}."
        )

    def ramp(end: int) -> float:
        return min(max((step - warmup) / (end - warmup), 0.0), 1.0)

    return 1.0 + (r_final - 1.0) * ramp(r_steps), d_final * ramp(d_steps)


class _BatchRenorm(NormBase):
    """Shared code of BatchRenorm1d/2d/3d; buffers and parameters named as in torch's BatchNorm,
    so a state_dict loads into ``torch.nn.BatchNorm2d`` (same inference function) and back."""

    _version = 2  # num_batches_tracked: version-1 checkpoints load, as torch's batch norm
    _repr_positional = ("num_features",)
    _repr_keywords = ("eps", "momentum", "affine", "r_max", "d_max")

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        r_max: float = 3.0,
        d_max: float = 5.0,
        device=None,
        dtype=None,
    ) -> None:
        if r_max < 1 or d_max < 0:
            raise ValueError(
                f"BatchRenorm needs r_max >= 1 and d_max >= 0, got r_max={r_max}, d_max={d_max}."
            )
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.r_max = r_max
        self.d_max = d_max
        stats = {"running_mean": 0.0, "running_var": 1.0}
        super().__init__(num_features, affine, True, stats, True, device, dtype)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        raise NotImplementedError

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects {self.num_features} "
                f"channels in dimension 1, got input of shape {list(input.shape)}."
            )
        factor = self._momentum_step()  # momentum, or 1/t for a cumulative average
        return batch_renorm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=self.training,
            momentum=factor,
            eps=self.eps,
            r_max=self.r_max,
            d_max=self.d_max,
        )


class BatchRenorm1d(_BatchRenorm):
    """Batch renormalization of ``(N, C)`` or ``(N, C, L)`` input (cf. ``torch.nn.BatchNorm1d``)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchRenorm2d(_BatchRenorm):
    """Batch renormalization of ``(N, C, H, W)`` input (cf. ``torch.nn.BatchNorm2d``)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


class BatchRenorm3d(_BatchRenorm):
    """Batch renormalization of ``(N, C, D, H, W)`` input (cf. ``torch.nn.BatchNorm3d``)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 5:
            raise ValueError(f"expected 5D input (got {input.dim()}D input)")
