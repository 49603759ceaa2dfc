"""Computing a batch variance in floating point: the E[x²] - E[x]² shortcut against two passes.

The shortcut subtracts two large, nearly equal numbers when the mean is large next to the
standard deviation, and float32 keeps only about 7 significant digits of each: the difference
is mostly rounding error. Subtracting the mean first (two passes over the data) avoids that.
:mod:`bnguide.functional` and :mod:`bnguide.numpy_bn` use two passes. Used in chapter *The full
guide: implementation* (page *Numerics and speed*).

Examples
--------
>>> import torch
>>> from bnguide.numerics import shortcut_variance, two_pass_variance
>>> x = 1000 + torch.randn(256, generator=torch.Generator().manual_seed(0))
>>> exact = x.double().var(unbiased=False)
>>> bool(abs(two_pass_variance(x) - exact) < abs(shortcut_variance(x) - exact))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "SweepResult",
    "relative_error",
    "shortcut_variance",
    "two_pass_variance",
    "variance_error_sweep",
]


def shortcut_variance(x: torch.Tensor, dim: int | Sequence[int] = 0) -> torch.Tensor:
    """Biased variance as ``E[x^2] - E[x]^2``: one pass over the data, unstable.

    Parameters
    ----------
    x : Tensor
        Any floating-point tensor.
    dim : int or sequence of int
        Dimensions to reduce.

    Returns
    -------
    Tensor
        The variance, in ``x``'s precision; can be badly wrong, even negative.
    """
    return (x * x).mean(dim) - x.mean(dim) ** 2


def two_pass_variance(x: torch.Tensor, dim: int | Sequence[int] = 0) -> torch.Tensor:
    """Biased variance as ``E[(x - E[x])^2]``: subtract the mean first, then square.

    Parameters and returns as for :func:`shortcut_variance`; accurate to a few units of the last
    place whatever the mean.

    Parameters
    ----------
    x : torch.Tensor
        Values of any shape.
    dim : int or sequence of int, optional
        Dimensions to reduce.

    Returns
    -------
    torch.Tensor
        The variance, with ``dim`` removed.
    """
    return ((x - x.mean(dim, keepdim=True)) ** 2).mean(dim)


def relative_error(estimate: torch.Tensor, exact: torch.Tensor) -> float:
    """Largest ``|estimate - exact| / |exact|`` over all entries, computed in float64.

    Parameters
    ----------
    estimate, exact : torch.Tensor
        Tensors of the same shape; ``exact`` has no zero entries.

    Returns
    -------
    float
        The largest relative error.
    """
    estimate, exact = estimate.double(), exact.double()
    return float(((estimate - exact).abs() / exact.abs()).max())


@dataclass
class SweepResult:
    """Relative error of each variance formula (``(len(offsets),)`` arrays) for float data of
    standard deviation ``std`` shifted by each of ``offsets``."""

    offsets: np.ndarray
    std: float
    shortcut: np.ndarray
    two_pass: np.ndarray
    dtype: str


def variance_error_sweep(
    offsets: Sequence[float],
    std: float = 1.0,
    n: int = 256,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> SweepResult:
    """Relative error of both formulas as the mean grows next to the standard deviation.

    For each offset, ``n`` values ``offset + std * z`` are rounded to ``dtype``; both formulas
    run in ``dtype`` and are compared with the exact variance of those same rounded numbers.

    Parameters
    ----------
    offsets : sequence of float
        Means of the values.
    std : float, optional
        Standard deviation of the values.
    n : int, optional
        Number of values per offset.
    dtype : torch.dtype, optional
        Precision of the values and of both formulas.
    seed : int, optional
        Seed of ``z``.

    Returns
    -------
    SweepResult
        The relative error of each formula at each offset.
    """
    z = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    shortcut, two_pass = [], []
    for offset in offsets:
        x = (offset + std * z).to(dtype)  # (n,)
        exact = two_pass_variance(x.double())
        shortcut.append(relative_error(shortcut_variance(x), exact))
        two_pass.append(relative_error(two_pass_variance(x), exact))
    return SweepResult(
        offsets=np.asarray(offsets, dtype=np.float64),
        std=std,
        shortcut=np.array(shortcut),
        two_pass=np.array(two_pass),
        dtype=str(dtype).removeprefix("torch."),
    )
