"""Why scaling inputs helps gradient descent: linear regression with raw, min-max,
standardized and whitened features, and what whitening would cost inside a network.

Gradient descent on a least-squares loss converges at a rate set by the condition number of the
Hessian: features on very different scales, or strongly correlated, stretch the loss surface
into a narrow valley. This module builds a small, deterministic regression problem (two
correlated features on different scales) and measures the effect of rescaling them. Used in
chapter *The full guide: implementation* (page *Why normalize at all*).

Examples
--------
>>> from bnguide.conditioning import condition_number, make_regression, preprocess
>>> x, y = make_regression()
>>> condition_number(x) > 1000 * condition_number(preprocess(x, "standardize"))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PREPROCESSINGS",
    "GDResult",
    "condition_number",
    "gradient_descent",
    "make_regression",
    "normalization_cost",
    "preprocess",
    "steps_to_tolerance",
]

PREPROCESSINGS = ("raw", "min-max", "standardize", "whiten")


def make_regression(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A toy house-price problem: rooms (1 to 6) and floor area (40 to 250 m²) -> price.

    Parameters
    ----------
    n : int, optional
        Number of houses.
    seed : int, optional
        Seed of the random features and noise.

    Returns
    -------
    x : ndarray
        ``(n, 2)`` features, on scales about 50 times apart.
    y : ndarray
        ``(n,)`` targets: a linear function of the features plus a little noise.
    """
    if n < 3:
        raise ValueError(f"make_regression: need at least 3 examples for 2 features, got n={n}.")
    rng = np.random.default_rng(seed)
    rooms = rng.integers(1, 7, n).astype(np.float64)
    area = 40.0 + 35.0 * rooms + rng.normal(0.0, 15.0, n)  # correlated with rooms, like real data
    x = np.stack([rooms, area], axis=1)  # (n, 2)
    y = 20.0 + 8.0 * rooms + 1.5 * area + rng.normal(0.0, 5.0, n)  # price in thousands
    return x, y


def preprocess(x: np.ndarray, method: str) -> np.ndarray:
    """Rescale every feature (column) of ``x``.

    Parameters
    ----------
    x : ndarray
        ``(n, d)`` features.
    method : {"raw", "min-max", "standardize", "whiten"}
        ``"min-max"`` maps each feature to [0, 1]; ``"standardize"`` to mean 0 and std 1;
        ``"whiten"`` (ZCA) also removes the correlations: covariance the identity.

    Returns
    -------
    ndarray
        ``(n, d)``.
    """
    if method == "raw":
        return x.copy()
    if method == "min-max":
        low, high = x.min(axis=0), x.max(axis=0)
        return (x - low) / (high - low)
    if method == "standardize":
        return (x - x.mean(axis=0)) / x.std(axis=0)
    if method == "whiten":
        centered = x - x.mean(axis=0)
        eigenvalues, eigenvectors = np.linalg.eigh(centered.T @ centered / len(x))
        return centered @ (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T
    raise ValueError(f"preprocess: method must be one of {PREPROCESSINGS}, got {method!r}.")


def _design(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)  # (n, d + 1): a bias column


def condition_number(x: np.ndarray) -> float:
    """Condition number of the Hessian of the mean squared error (bias column included).

    .. math:: \\kappa = \\lambda_{max} / \\lambda_{min} \\text{ of } \\tfrac{2}{n} A^\\top A,
        \\quad A = [x, 1]

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` features.

    Returns
    -------
    float
        The ratio of the largest to the smallest eigenvalue.
    """
    eig = np.linalg.eigvalsh(2.0 / len(x) * _design(x).T @ _design(x))
    return float(eig[-1] / eig[0])


@dataclass
class GDResult:
    """Loss after each step of gradient descent (``loss[0]`` is at the start), the best loss
    reachable (least squares), and the step size used."""

    loss: np.ndarray
    optimum: float
    lr: float

    @property
    def excess(self) -> np.ndarray:
        """``loss - optimum``: how far from the best fit, step by step."""
        return self.loss - self.optimum


def gradient_descent(
    x: np.ndarray, y: np.ndarray, steps: int = 500, lr: float | None = None
) -> GDResult:
    """Full-batch gradient descent on the mean squared error of ``y ≈ x w + b``, from zero.

    Parameters
    ----------
    x, y : ndarray
        ``(n, d)`` features and ``(n,)`` targets.
    steps : int
        Number of updates.
    lr : float, optional
        Step size. Default ``1 / L``, with ``L`` the largest eigenvalue of the Hessian: the
        largest step that is safe for every direction, so each preprocessing gets its best
        fixed step size.

    Returns
    -------
    GDResult
    """
    a = _design(x)  # (n, d + 1)
    hessian = 2.0 / len(x) * a.T @ a
    if lr is None:
        lr = 1.0 / np.linalg.eigvalsh(hessian)[-1]
    theta = np.zeros(a.shape[1])
    loss = np.empty(steps + 1)
    for t in range(steps + 1):
        residual = a @ theta - y
        loss[t] = np.mean(residual**2)
        theta = theta - lr * (2.0 / len(x)) * (a.T @ residual)
    best, *_ = np.linalg.lstsq(a, y, rcond=None)
    optimum = float(np.mean((a @ best - y) ** 2))
    return GDResult(loss=loss, optimum=optimum, lr=float(lr))


def steps_to_tolerance(result: GDResult, rtol: float = 1e-3) -> int | None:
    """First step whose loss is within ``rtol`` (relative) of the optimum, or None if never.

    Parameters
    ----------
    result : GDResult
        A run of :func:`gradient_descent`.
    rtol : float, optional
        Relative tolerance on the loss.

    Returns
    -------
    int or None
        The step, counted from 0.
    """
    hits = np.flatnonzero(result.excess <= rtol * result.optimum)
    return int(hits[0]) if len(hits) else None


def normalization_cost(m: int, d: int) -> dict[str, int]:
    """Multiply-adds per forward pass to normalize a mini-batch of ``m`` vectors of ``d`` features.

    Leading terms only: batch norm needs a few per value (mean, variance, normalize: ``3 m d``);
    full whitening needs the covariance (``m d^2``), its inverse square root (an eigenvalue
    decomposition, about ``9 d^3``, a common estimate for a symmetric eigensolver) and the product
    with it (``m d^2``), and then the same again, transposed, in the backward pass.

    Parameters
    ----------
    m : int
        Batch size.
    d : int
        Number of features.

    Returns
    -------
    dict
        ``{"batch norm": ..., "whitening": ...}``.
    """
    if m < 2 or d < 1:
        raise ValueError(f"normalization_cost: need m >= 2 and d >= 1, got m={m}, d={d}.")
    return {"batch norm": 3 * m * d, "whitening": 2 * m * d * d + 9 * d**3}
