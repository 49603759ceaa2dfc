"""Instance normalization (Ulyanov et al. 2016), from scratch, with torch's InstanceNorm interface.

Each channel of each example is normalized over its own spatial positions only. Used in the
page :doc:`/book/scale/normalizers`.

Examples
--------
>>> import torch
>>> y = InstanceNorm2d(3)(torch.randn(2, 3, 8, 8) * 4 + 1)
>>> y.mean((2, 3)).abs().max() < 1e-5
tensor(True)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bnguide.norms._common import channel_view, mean_and_biased_var

__all__ = ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "instance_norm"]


def instance_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None = None,
    running_var: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Instance normalization, with the signature of ``torch.nn.functional.instance_norm``.

    Parameters
    ----------
    input : torch.Tensor
        ``(N, C, *)`` with at least one spatial dimension.
    running_mean, running_var : torch.Tensor, optional
        ``(C,)`` buffers. With ``use_input_stats`` they are updated in place with the batch
        average of the per-instance mean and unbiased variance (momentum weights the new value);
        without it they are what the input is normalized with.
    weight, bias : torch.Tensor, optional
        Per-channel scale and shift, shape ``(C,)``.
    use_input_stats : bool
        Normalize with each instance's own statistics (training, or no running statistics).
    momentum : float
        Weight of the new batch in the running-statistics update.
    eps : float
        Added to the variance for numerical stability.

    Returns
    -------
    torch.Tensor
        Same shape as ``input``.
    """
    if input.dim() < 3:
        raise ValueError(
            f"instance_norm expects input of shape (N, C, *) with at least one spatial "
            f"dimension, got {input.dim()}D input of size {list(input.shape)}."
        )
    dims = tuple(range(2, input.dim()))
    if use_input_stats:
        count = math.prod(input.shape[2:])
        if count <= 1:
            raise ValueError(
                "Expected more than 1 spatial element when training, got input size "
                f"{list(input.shape)}. Instance statistics need several positions per channel."
            )
        mean, var = mean_and_biased_var(input, dims)  # (N, C, 1, ...)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                new_mean = mean.mean(0).flatten()  # (C,)
                new_var = (var * (count / (count - 1))).mean(0).flatten()  # (C,) unbiased
                running_mean.mul_(1 - momentum).add_(momentum * new_mean)
                running_var.mul_(1 - momentum).add_(momentum * new_var)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(
                "Expected running_mean and running_var to be defined when use_input_stats is "
                "false. Pass the buffers, or set use_input_stats=True."
            )
        mean = channel_view(running_mean, input.dim())  # (1, C, 1, ...)
        var = channel_view(running_var, input.dim())
    out = (input - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * channel_view(weight, input.dim())
    if bias is not None:
        out = out + channel_view(bias, input.dim())
    return out


class _InstanceNorm(nn.Module):
    """Shared code of InstanceNorm1d/2d/3d (torch's ``_InstanceNorm``)."""

    _NO_BATCH_DIM = 0  # number of dims of an unbatched input, set by subclasses

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))
            if bias:
                self.bias = nn.Parameter(torch.empty(num_features, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean to zeros, running variance to ones, batch count to zero."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics, ``weight`` to ones and ``bias`` to zeros."""
        self.reset_running_stats()
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        n = self._NO_BATCH_DIM
        if input.dim() not in (n, n + 1):
            raise ValueError(f"expected {n}D or {n + 1}D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        feature_dim = input.dim() - self._NO_BATCH_DIM
        if self.affine and input.size(feature_dim) != self.num_features:
            raise ValueError(
                f"expected input's size at dim={feature_dim} to match num_features "
                f"({self.num_features}), but got: {input.size(feature_dim)}."
            )
        unbatched = input.dim() == self._NO_BATCH_DIM
        x = input.unsqueeze(0) if unbatched else input  # (N, C, *)
        out = instance_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_input_stats=self.training or not self.track_running_stats,
            momentum=self.momentum if self.momentum is not None else 0.0,  # as torch does
            eps=self.eps,
        )
        return out.squeeze(0) if unbatched else out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of ``(N, C, L)`` or unbatched ``(C, L)`` input.

    Mirrors ``torch.nn.InstanceNorm1d`` (defaults ``affine=False``, ``track_running_stats=False``).
    """

    _NO_BATCH_DIM = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of ``(N, C, H, W)`` or unbatched ``(C, H, W)`` input.

    Mirrors ``torch.nn.InstanceNorm2d`` (defaults ``affine=False``, ``track_running_stats=False``).
    """

    _NO_BATCH_DIM = 3


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)`` input.

    Mirrors ``torch.nn.InstanceNorm3d`` (defaults ``affine=False``, ``track_running_stats=False``).
    """

    _NO_BATCH_DIM = 4
