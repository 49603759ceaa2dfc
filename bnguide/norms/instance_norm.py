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

import torch
from torch.nn.modules.instancenorm import _InstanceNorm as _TorchInstanceNorm

from bnguide._validation import TorchRuntimeError
from bnguide.functional import opmath_dtype
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

    TorchScript compiles it: a scripted InstanceNorm runs it, and ``torch.jit.save`` works.
    """
    if input.dim() < 3:
        raise ValueError(
            f"instance_norm expects input of shape (N, C, *) with at least one spatial "
            f"dimension, got {input.dim()}D input of size {list(input.shape)}."
        )
    compute = opmath_dtype(input.dtype)  # float16/bfloat16 computed in float32, as torch does
    x = input.to(compute)
    dims = list(range(2, input.dim()))
    if use_input_stats:
        count = 1  # positions per instance
        for extent in input.shape[2:]:
            count *= extent
        if count <= 1:
            raise ValueError(
                f"Expected more than 1 spatial element when training, got input size "
                f"{list(input.shape)}. Instance statistics need several positions per channel."
            )
        mean, var = mean_and_biased_var(x, dims)  # (N, C, 1, ...)
        if running_mean is not None and running_var is not None and input.shape[0] > 0:
            with torch.no_grad():  # detach(): no gradient, and no forward-mode tangent either
                new_mean = mean.detach().mean(0).flatten()  # (C,)
                new_var = (var.detach() * (count / (count - 1))).mean(0).flatten()  # unbiased
                running_mean.lerp_(new_mean.to(running_mean.dtype), momentum)
                running_var.lerp_(new_var.to(running_var.dtype), momentum)
    else:
        if running_mean is None or running_var is None:
            raise TorchRuntimeError(
                "Expected running_mean and running_var to be defined when use_input_stats is "
                "false. Pass the buffers, or set use_input_stats=True."
            )
        mean = channel_view(running_mean.to(compute), input.dim())  # (1, C, 1, ...)
        var = channel_view(running_var.to(compute), input.dim())
    out = (x - mean) * torch.rsqrt(var + eps)  # keeps the input's memory format
    if weight is not None:
        out = out * channel_view(weight.to(compute), input.dim())
    if bias is not None:
        out = out + channel_view(bias.to(compute), input.dim())
    return out.to(input.dtype)


class _InstanceNorm(_TorchInstanceNorm):
    """Shared code of InstanceNorm1d/2d/3d.

    Subclasses torch's ``_InstanceNorm`` (a ``_NormBase``) for the bookkeeping: parameters,
    buffers, reset, ``forward``'s checks and unbatched inputs, the state_dict version (2) and
    old-checkpoint loading, and ``isinstance`` filters. The computation is bnguide's
    :func:`instance_norm`.
    """

    _NO_BATCH_DIM = 0  # number of dims of an unbatched input, set by subclasses
    __constants__ = [*_TorchInstanceNorm.__constants__, "_NO_BATCH_DIM"]  # for TorchScript

    def _get_no_batch_dim(self):
        return self._NO_BATCH_DIM

    def _check_input_dim(self, input):
        n = self._get_no_batch_dim()
        if input.dim() not in (n, n + 1):
            raise ValueError(f"expected {n}D or {n + 1}D input (got {input.dim()}D input)")

    def _apply_instance_norm(self, input: torch.Tensor) -> torch.Tensor:
        return instance_norm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_input_stats=self.training or not self.track_running_stats,
            momentum=self.momentum if self.momentum is not None else 0.0,  # as torch does
            eps=self.eps,
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
