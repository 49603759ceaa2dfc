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
from torch import nn

from bnguide.functional import opmath_dtype
from bnguide.norms._common import as_shape as _as_shape
from bnguide.norms._common import check_trailing_shape as _check_trailing_shape

__all__ = ["RMSNorm", "rms_norm"]


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
    if eps is None:
        eps = torch.finfo(input.dtype).eps
    compute = opmath_dtype(input.dtype)  # in float32 a float16 square cannot overflow
    x = input.to(compute)
    dims = tuple(range(-len(shape), 0))
    mean_square = x.square().mean(dims, keepdim=True)  # (*, 1, ..., 1)
    out = x * torch.rsqrt(mean_square + eps)
    return (out * weight.to(compute) if weight is not None else out).to(input.dtype)


class RMSNorm(nn.Module):
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

    def __init__(
        self,
        normalized_shape,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(
                torch.empty(self.normalized_shape, device=device, dtype=dtype)
            )
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set ``weight`` to ones."""
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize ``input``; see the class docstring. Scriptable: ``torch.jit.script``
        compiles this method and calls the Python implementation below from it."""
        return self._forward(input)

    @torch.jit.ignore
    def _forward(self, input):  # unannotated: TorchScript reads it as Tensor -> Tensor
        return rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )
