"""Normalizing outside the gradient step: Ioffe & Szegedy's argument (section 2), executed.

A layer adds a learned bias ``b`` to its input ``u`` and subtracts the mean of the result,
``x_hat = u + b - E[u + b]``. If the gradient step treats ``E[u + b]`` as a constant, every update
of ``b`` is undone by the next normalization: the output, and so the loss, never changes while
``b`` drifts without bound. When the mean is part of the computation that is differentiated (as
in batch norm), the gradient with respect to ``b`` is exactly zero and ``b`` stays put. Used in
chapter *The full guide: implementation* (page *Why normalize at all*).

Examples
--------
>>> from bnguide.outside_normalization import simulate_bias_drift
>>> outside = simulate_bias_drift(mean_in_graph=False)
>>> inside = simulate_bias_drift(mean_in_graph=True)
>>> outside.bias.shape  # (steps + 1, d)
(201, 4)
>>> bool(abs(outside.bias[-1]).max() > 10 * abs(inside.bias[-1]).max())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DriftResult", "simulate_bias_drift"]


@dataclass
class DriftResult:
    """Per step: the bias (``(steps + 1, d)``, row 0 before training) and the loss
    (``(steps + 1,)``), for the mean computed outside or inside the gradient step."""

    bias: np.ndarray
    loss: np.ndarray
    mean_in_graph: bool


def simulate_bias_drift(
    steps: int = 200,
    lr: float = 0.1,
    mean_in_graph: bool = False,
    n: int = 256,
    d: int = 4,
    seed: int = 0,
) -> DriftResult:
    """Train the bias of ``x_hat = u + b - E[u + b]`` by gradient descent on a squared error.

    The targets have a non-zero mean, which a mean-free ``x_hat`` can never match, so the
    gradient keeps pushing ``b`` in the same direction.

    Parameters
    ----------
    steps : int
        Gradient-descent steps.
    lr : float
        Step size.
    mean_in_graph : bool
        False: the mean is computed outside the gradient step (``.detach()``, the failure the
        paper describes). True: autograd differentiates through the mean, as batch norm does.
    n, d : int
        Examples and features of the fixed input ``u``.
    seed : int
        For the input and the targets.

    Returns
    -------
    DriftResult
    """
    if steps < 1:
        raise ValueError(f"simulate_bias_drift: steps must be at least 1, got {steps}.")
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=gen, dtype=torch.float64) * 2.0 + 0.5  # (n, d)
    target = 1.0 + torch.randn(n, d, generator=gen, dtype=torch.float64)  # mean about 1
    b = torch.zeros(d, dtype=torch.float64, requires_grad=True)

    def loss_at(b: torch.Tensor) -> torch.Tensor:
        x = u + b  # (n, d)
        mean = x.mean(dim=0)  # (d,)
        x_hat = x - (mean if mean_in_graph else mean.detach())
        return ((x_hat - target) ** 2).mean()

    biases, losses = [b.detach().clone()], []
    for _ in range(steps):
        loss = loss_at(b)
        (grad,) = torch.autograd.grad(loss, b)
        with torch.no_grad():
            b -= lr * grad
        losses.append(loss.item())
        biases.append(b.detach().clone())
    losses.append(loss_at(b).item())
    return DriftResult(
        bias=torch.stack(biases).numpy(), loss=np.array(losses), mean_in_graph=mean_in_graph
    )
