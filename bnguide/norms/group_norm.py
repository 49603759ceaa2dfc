"""Group normalization (Wu & He 2018), from scratch, with ``torch.nn.GroupNorm``'s interface.

Channels are split into groups; each example is normalized over the channels of a group and all
spatial positions. ``num_groups=1`` is layer normalization over ``(C, H, W)``, ``num_groups=C``
is instance normalization. Used in :doc:`/book/scale/normalizers`.

Examples
--------
>>> import torch
>>> x = torch.randn(2, 6, 4, 4)
>>> torch.allclose(group_norm(x, 6), torch.nn.functional.instance_norm(x), atol=1e-5)
True
"""

from __future__ import annotations

import math

import torch

from bnguide._validation import TorchRuntimeError
from bnguide.functional import opmath_dtype
from bnguide.nn import NormBase
from bnguide.norms._common import channel_view, mean_and_biased_var

__all__ = ["GroupNorm", "group_norm", "group_norm_unchecked"]


def group_norm(
    input: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Group normalization, with the signature of ``torch.nn.functional.group_norm``.

    Parameters
    ----------
    input : torch.Tensor
        ``(N, C, *)`` with ``C`` divisible by ``num_groups``.
    num_groups : int
        Number of channel groups ``G``.
    weight, bias : torch.Tensor, optional
        Per-channel scale and shift, shape ``(C,)``.
    eps : float
        Added to the variance for numerical stability.

    Returns
    -------
    torch.Tensor
        Same shape as ``input``.
    """
    if input.dim() < 2:
        raise TorchRuntimeError(
            f"Expected at least 2 dimensions for input tensor but received {input.shape}: "
            "group_norm expects input of shape (N, C, *). Add a batch dimension with "
            "input.unsqueeze(0)."
        )
    n, c = input.shape[:2]
    if num_groups < 1 or c % num_groups != 0:
        raise TorchRuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got "
            f"input of shape {input.shape} and num_groups={num_groups}."
        )
    if n * (c // num_groups) * math.prod(input.shape[2:]) == 1:  # as torch's _verify_batch_size
        raise ValueError(
            "Expected more than 1 value per channel when training, got input size "
            f"{list(input.shape)} with num_groups={num_groups}: each group holds one value, "
            "so its variance is 0. Use fewer groups or more spatial positions."
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise TorchRuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in "
                f"input, but got {name} of shape {list(t.shape)} and input of shape "
                f"{list(input.shape)}."
            )
    return group_norm_unchecked(input, num_groups, weight, bias, eps)


def group_norm_unchecked(
    input: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """:func:`group_norm`'s arithmetic without its argument checks; TorchScript compiles it
    (a scripted :class:`GroupNorm` runs it, so ``torch.jit.save`` works).

    Parameters
    ----------
    input, num_groups, weight, bias, eps
        As for :func:`group_norm`, already checked.

    Returns
    -------
    torch.Tensor
        Equal to :func:`group_norm`'s output.
    """
    n, c = input.shape[0], input.shape[1]
    compute = opmath_dtype(input.dtype)  # float16/bfloat16 computed in float32, as torch does
    x = input.to(compute)
    per_group = c // num_groups  # values in one group: channels per group times positions
    for extent in input.shape[2:]:
        per_group *= extent
    grouped = x.reshape(n, num_groups, per_group)  # (N, G, C/G * spatial); a copy if strided
    mean, var = mean_and_biased_var(grouped, [2])  # (N, G, 1)
    # per-channel statistics applied to the input itself, so the output keeps its memory
    # format (channels_last in, channels_last out)
    shape = [n, c] + [1] * (input.dim() - 2)
    mean_c = mean.repeat_interleave(c // num_groups, dim=1).reshape(shape)  # (N, C, 1, ...)
    rstd_c = torch.rsqrt(var + eps).repeat_interleave(c // num_groups, dim=1).reshape(shape)
    out = (x - mean_c) * rstd_c  # (N, C, *)
    if weight is not None:
        out = out * channel_view(weight.to(compute), input.dim())
    if bias is not None:
        out = out + channel_view(bias.to(compute), input.dim())
    return out.to(input.dtype)


class GroupNorm(NormBase):
    """Group normalization as a module, mirroring ``torch.nn.GroupNorm``.

    Parameters
    ----------
    num_groups : int
        Number of groups the channels are split into.
    num_channels : int
        Number of channels ``C`` (divisible by ``num_groups``).
    eps : float
        Added to the variance for numerical stability.
    affine : bool
        Learn per-channel ``weight`` (init 1) and, if ``bias``, ``bias`` (init 0).
    bias : bool
        Learn the additive ``bias`` (only with ``affine``).

    Shape
    -----
    Input ``(N, C, *)``; output the same shape.
    """

    _repr_positional = ("num_groups", "num_channels")
    _repr_keywords = ("eps", "affine", "bias")

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        if num_groups < 1 or num_channels % num_groups != 0:
            raise ValueError(
                f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups}); "
                "choose a num_groups that divides the channel count."
            )
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        super().__init__(num_channels, affine, bias, device=device, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize ``input``; see the class docstring. Scriptable: under ``torch.jit.script``
        the compiled module runs the unchecked arithmetic (no Python: ``torch.jit.save``
        works), in eager mode the checked function."""
        if torch.jit.is_scripting():
            return group_norm_unchecked(input, self.num_groups, self.weight, self.bias, self.eps)
        return self._forward(input)

    @torch.jit.unused
    def _forward(self, input):  # unannotated: TorchScript reads it as Tensor -> Tensor
        if input.dim() >= 2 and input.shape[1] != self.num_channels:
            raise TorchRuntimeError(
                f"GroupNorm({self.num_groups}, {self.num_channels}) expects input of shape "
                f"(N, {self.num_channels}, *), got {list(input.shape)}."
            )
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)
