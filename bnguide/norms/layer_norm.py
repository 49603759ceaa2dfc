"""Layer normalization (Ba, Kiros & Hinton 2016) from scratch, mirroring ``torch.nn.LayerNorm``.

Each example is normalized over its last ``len(normalized_shape)`` dimensions, so the result
does not depend on the batch. Used in :doc:`/book/scale/normalizers`.

Examples
--------
>>> import torch
>>> y = layer_norm(torch.randn(3, 8) * 5 + 2, 8)
>>> y.mean(-1).abs().max() < 1e-6
tensor(True)
"""

from __future__ import annotations

import torch

from bnguide.functional import opmath_dtype
from bnguide.nn import NormBase
from bnguide.norms._common import as_shape as _as_shape
from bnguide.norms._common import check_trailing_shape as _check_trailing_shape
from bnguide.norms._common import mean_and_biased_var

__all__ = ["LayerNorm", "layer_norm", "layer_norm_unchecked"]


def layer_norm(
    input: torch.Tensor,
    normalized_shape,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer normalization, with the signature of ``torch.nn.functional.layer_norm``.

    .. math:: y = \\frac{x - \\mathrm{E}[x]}{\\sqrt{\\mathrm{Var}[x] + \\epsilon}} \\gamma + \\beta

    with mean and biased variance taken over the last ``len(normalized_shape)`` dimensions.

    Parameters
    ----------
    input : torch.Tensor
        Any shape ``(*, *normalized_shape)``.
    normalized_shape : int or sequence of int
        The trailing dimensions to normalize over.
    weight, bias : torch.Tensor, optional
        Elementwise scale and shift of shape ``normalized_shape``.
    eps : float
        Added to the variance for numerical stability.

    Returns
    -------
    torch.Tensor
        Same shape as ``input``.
    """
    shape = _as_shape(normalized_shape)
    _check_trailing_shape(input, shape, "layer_norm", weight, bias)
    return layer_norm_unchecked(input, list(shape), weight, bias, eps)


def layer_norm_unchecked(
    input: torch.Tensor,
    normalized_shape: list[int],
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """:func:`layer_norm`'s arithmetic without its argument checks; TorchScript compiles it
    (a scripted :class:`LayerNorm` runs it, so ``torch.jit.save`` works).

    Parameters
    ----------
    input, weight, bias, eps
        As for :func:`layer_norm`, already checked.
    normalized_shape : list of int
        The trailing dimensions to normalize over.

    Returns
    -------
    torch.Tensor
        Equal to :func:`layer_norm`'s output.
    """
    compute = opmath_dtype(input.dtype)  # float16/bfloat16 computed in float32, as torch does
    x = input.to(compute)
    dims = list(range(-len(normalized_shape), 0))
    mean, var = mean_and_biased_var(x, dims)  # (*, 1, ..., 1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight.to(compute)
    if bias is not None:
        out = out + bias.to(compute)
    return out.to(input.dtype)


class LayerNorm(NormBase):
    """Layer normalization as a module, mirroring ``torch.nn.LayerNorm``.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        Trailing input dimensions to normalize over (e.g. the hidden size).
    eps : float
        Added to the variance for numerical stability.
    elementwise_affine : bool
        Learn a per-element ``weight`` (init 1) and, if ``bias``, a ``bias`` (init 0).
    bias : bool
        Learn the additive ``bias`` (only with ``elementwise_affine``).

    Shape
    -----
    Input ``(*, *normalized_shape)``; output the same shape.
    """

    _repr_positional = ("normalized_shape",)
    _repr_keywords = ("eps", "elementwise_affine", "bias")

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        super().__init__(
            self.normalized_shape, elementwise_affine, bias, device=device, dtype=dtype
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize ``input``; see the class docstring. Scriptable: under ``torch.jit.script``
        the compiled module runs the unchecked arithmetic (no Python: ``torch.jit.save``
        works), in eager mode the checked function."""
        if torch.jit.is_scripting():
            return layer_norm_unchecked(
                input, list(self.normalized_shape), self.weight, self.bias, self.eps
            )
        return self._forward(input)

    @torch.jit.unused
    def _forward(self, input):  # unannotated: TorchScript reads it as Tensor -> Tensor
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)
