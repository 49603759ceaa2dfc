"""Numerical gradient checks: central finite differences against an analytic backward pass.

Used in chapter *The full guide: implementation* (page *Backward pass*) and by the tests of
:mod:`bnguide.numpy_bn`. Check with a random upstream gradient: for batch norm the gradient of
``sum(BN(x))`` with respect to ``x`` is exactly zero, so an all-ones upstream gradient cannot tell
a right derivation from a wrong one.

Examples
--------
>>> import numpy as np
>>> from bnguide.gradcheck import numerical_gradient, relative_error
>>> x, dout = np.random.default_rng(0).normal(size=(2, 5, 3))
>>> numeric = numerical_gradient(lambda v: v**2, x, dout)  # (5, 3)
>>> relative_error(numeric, 2 * x * dout) < 1e-8
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["numerical_gradient", "relative_error"]


def numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Gradient of ``sum(f(x) * dout)`` with respect to ``x`` by central differences.

    .. math:: \\frac{\\partial}{\\partial x_i} \\approx
        \\frac{\\langle f(x + h e_i), d\\rangle - \\langle f(x - h e_i), d\\rangle}{2h}

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``. It must not keep ``x``:
        each entry of ``x`` is nudged in place and restored.
    x : ndarray
        Where to differentiate, float64 for a meaningful check.
    dout : ndarray
        The upstream gradient; use a random one.
    h : float
        The finite-difference step.

    Returns
    -------
    ndarray
        Same shape as ``x``. Costs ``2 * x.size`` calls of ``f``.
    """
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"numerical_gradient: x must be floating point (float64 for a meaningful check), "
            f"got dtype {x.dtype}."
        )
    x = x.copy()
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)  # views into x and grad
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + h
        up = np.sum(f(x) * dout)
        flat_x[i] = saved - h
        down = np.sum(f(x) * dout)
        flat_x[i] = saved
        flat_grad[i] = (up - down) / (2.0 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / (||a|| + ||b||)`` (Euclidean norms over all entries; 0 when both are zero).

    About 1e-8 or less when a float64 analytic gradient is right; 1e-2 or more when it is wrong.

    Parameters
    ----------
    a, b : numpy.ndarray
        Arrays of the same shape.

    Returns
    -------
    float
        The relative error, between 0 and 1.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denominator == 0.0 else float(np.linalg.norm(a - b) / denominator)
