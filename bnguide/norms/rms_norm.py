"""Root-mean-square normalization (Zhang & Sennrich 2019), with ``torch.nn.RMSNorm``'s interface.

Like layer normalization without the mean: each example is divided by the root mean square of
its last dimensions. Used in :doc:`/book/scale/normalizers`.

Examples
--------
>>> import torch
>>> y = rms_norm(torch.randn(3, 8) * 5, 8)
>>> torch.allclose(y.square().mean(-1), torch.ones(3), atol=1e-4)
True
"""

from __future__ import annotations

import torch

from bnguide.functional import opmath_dtype
from bnguide.nn import NormBase
from bnguide.norms._common import as_shape as _as_shape
from bnguide.norms._common import check_trailing_shape as _check_trailing_shape

__all__ = ["RMSNorm", "machine_eps", "rms_norm", "rms_norm_unchecked"]


def rms_norm(
    input: torch.Tensor,
    normalized_shape,
    weight: torch.Tensor | None = None,
    eps: float | None = None,
) -> torch.Tensor:
    """RMS normalization, with the signature of ``torch.nn.functional.rms_norm``.

    .. math:: y = \\frac{x}{\\sqrt{\\mathrm{E}[x^2] + \\epsilon}} \\gamma

    Parameters
    ----------
    input : torch.Tensor
        Any shape ``(*, *normalized_shape)``.
    normalized_shape : int or sequence of int
        The trailing dimensions to normalize over.
    weight : torch.Tensor, optional
        Elementwise scale of shape ``normalized_shape``.
    eps : float, optional
        Added to the mean square; ``None`` means ``torch.finfo(input.dtype).eps`` as in torch.

    Returns
    -------
    torch.Tensor
        Same shape as ``input``.
    """
    shape = _as_shape(normalized_shape)
    _check_trailing_shape(input, shape, "rms_norm", weight)
    return rms_norm_unchecked(input, list(shape), weight, eps)


def machine_eps(dtype: torch.dtype) -> float:
    """``torch.finfo(dtype).eps`` for the floating dtypes, in a form TorchScript compiles.

    Parameters
    ----------
    dtype : torch.dtype
        float64, float32, float16 or bfloat16 (anything else gets float32's).

    Returns
    -------
    float
        The distance from 1 to the next representable number.
    """
    if dtype == torch.float64:
        return 2.0**-52
    if dtype == torch.float16:
        return 2.0**-10
    if dtype == torch.bfloat16:
        return 2.0**-7
    return 2.0**-23  # float32


def rms_norm_unchecked(
    input: torch.Tensor,
    normalized_shape: list[int],
    weight: torch.Tensor | None,
    eps: float | None,
) -> torch.Tensor:
    """:func:`rms_norm`'s arithmetic without its argument checks; TorchScript compiles it
    (a scripted :class:`RMSNorm` runs it, so ``torch.jit.save`` works).

    Parameters
    ----------
    input, weight, eps
        As for :func:`rms_norm`, already checked.
    normalized_shape : list of int
        The trailing dimensions to normalize over.

    Returns
    -------
    torch.Tensor
        Equal to :func:`rms_norm`'s output.
    """
    if eps is None:
        eps = machine_eps(input.dtype)
    compute = opmath_dtype(input.dtype)  # in float32 a float16 square cannot overflow
    x = input.to(compute)
    dims = list(range(-len(normalized_shape), 0))
    mean_square = x.square().mean(dims, keepdim=True)  # (*, 1, ..., 1)
    out = x * torch.rsqrt(mean_square + eps)
    return (out * weight.to(compute) if weight is not None else out).to(input.dtype)


class RMSNorm(NormBase):
    """RMS normalization as a module, mirroring ``torch.nn.RMSNorm``.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        Trailing input dimensions to normalize over.
    eps : float, optional
        Added to the mean square; ``None`` uses the input dtype's machine epsilon.
    elementwise_affine : bool
        Learn a per-element ``weight`` (init 1). RMSNorm has no bias.

    Shape
    -----
    Input ``(*, *normalized_shape)``; output the same shape.
    """

    _repr_positional = ("normalized_shape",)
    _repr_keywords = ("eps", "elementwise_affine")

    def __init__(
        self,
        normalized_shape,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        super().__init__(
            self.normalized_shape, elementwise_affine, bias=False, device=device, dtype=dtype
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize ``input``; see the class docstring. Scriptable: under ``torch.jit.script``
        the compiled module runs the unchecked arithmetic (no Python: ``torch.jit.save``
        works), in eager mode the checked function."""
        if torch.jit.is_scripting():
            return rms_norm_unchecked(input, list(self.normalized_shape), self.weight, self.eps)
        return self._forward(input)

    @torch.jit.unused
    def _forward(self, input):  # unannotated: TorchScript reads it as Tensor -> Tensor
        return rms_norm(input, self.normalized_shape, self.weight, self.eps)
