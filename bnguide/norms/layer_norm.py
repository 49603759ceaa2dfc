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
from torch import nn

from bnguide.functional import opmath_dtype
from bnguide.norms._common import as_shape as _as_shape
from bnguide.norms._common import check_trailing_shape as _check_trailing_shape
from bnguide.norms._common import mean_and_biased_var

__all__ = ["LayerNorm", "layer_norm"]


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
    compute = opmath_dtype(input.dtype)  # float16/bfloat16 computed in float32, as torch does
    x = input.to(compute)
    dims = tuple(range(-len(shape), 0))
    mean, var = mean_and_biased_var(x, dims)  # (*, 1, ..., 1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight.to(compute)
    if bias is not None:
        out = out + bias.to(compute)
    return out.to(input.dtype)


class LayerNorm(nn.Module):
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

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.empty(self.normalized_shape, **factory))
            if bias:
                self.bias = nn.Parameter(torch.empty(self.normalized_shape, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set ``weight`` to ones and ``bias`` to zeros."""
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize ``input``; see the class docstring. Scriptable: ``torch.jit.script``
        compiles this method and calls the Python implementation below from it."""
        return self._forward(input)

    @torch.jit.ignore
    def _forward(self, input):  # unannotated: TorchScript reads it as Tensor -> Tensor
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )
