"""Per-layer activation and gradient histograms of sigmoid MLPs, with the share of saturated units.

Karpathy's "diagnose, then fix": look at what every hidden layer outputs and what gradient
reaches it, before and after training, with and without BN. A sigmoid unit is *saturated* on an
example when its output is within ``threshold`` of 0 or 1; there its slope
``s (1 - s)`` is below ``threshold (1 - threshold)`` (under a fifth of the maximum 1/4 for the
default 0.05) and little gradient passes. Used in chapter *Learning rate and sigmoid*.

Examples
--------
>>> import torch
>>> from bnguide.models import MLPSpec, StackedMLP, draw_weights
>>> from bnguide.saturation import layer_statistics
>>> spec = MLPSpec(in_features=8, hidden=(6, 6), out_features=3, placement="before")
>>> net = StackedMLP(spec, members=2).load_weights_(
...     [torch.stack([w, w]) for w in draw_weights(spec.sizes, 0.5, seed=0)])
>>> stats = layer_statistics(net, torch.randn(32, 8), torch.randint(0, 3, (32,)))
>>> stats.saturated.shape  # (members, hidden layers)
(2, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bnguide.models import StackedMLP

__all__ = ["LayerStatistics", "gaussian_saturated_share", "layer_statistics"]


@dataclass
class LayerStatistics:
    """What every hidden layer of every member of a :class:`~bnguide.models.StackedMLP` does on
    one batch.

    Attributes
    ----------
    saturated : numpy.ndarray
        ``(M, L)``: share of (example, unit) pairs whose sigmoid output is within ``threshold``
        of 0 or 1.
    activation_hist : numpy.ndarray
        ``(M, L, bins)``: share of the sigmoid outputs in each of ``activation_edges``' bins.
    gradient_hist : numpy.ndarray
        ``(M, L, bins)``: share of ``log10 |dL/da|`` (``a`` the sigmoid's input, after BN) in
        each of ``gradient_edges``' bins; values outside the range count in the end bins.
    gradient_rms : numpy.ndarray
        ``(M, L)``: root mean square of ``dL/da`` per layer.
    activation_edges, gradient_edges : numpy.ndarray
        Bin edges, ``(bins + 1,)``.
    threshold : float
    """

    saturated: np.ndarray
    activation_hist: np.ndarray
    gradient_hist: np.ndarray
    gradient_rms: np.ndarray
    activation_edges: np.ndarray
    gradient_edges: np.ndarray
    threshold: float


def gaussian_saturated_share(threshold: float = 0.05) -> float:
    """Share of a standard normal input that a sigmoid saturates: ``2 Phi(-logit(1 - t))``.

    What a freshly initialized BN layer (``gamma = 1``, ``beta = 0``) hands its sigmoid when the
    pre-activations are Gaussian: 0.32% for ``threshold = 0.05``.

    Parameters
    ----------
    threshold : float
        A sigmoid output below ``threshold`` or above ``1 - threshold`` counts as saturated.

    Returns
    -------
    float
        The share, between 0 and 1.
    """
    _check_threshold(threshold)
    cut = math.log((1 - threshold) / threshold)  # sigmoid(cut) = 1 - threshold
    return math.erfc(cut / math.sqrt(2))


def _check_threshold(threshold):
    if not 0 < threshold < 0.5:
        raise ValueError(
            f"threshold must lie in (0, 0.5): the distance from 0 or 1 below which a sigmoid "
            f"output counts as saturated; got {threshold}."
        )


def layer_statistics(
    net: StackedMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    threshold: float = 0.05,
    bins: int = 40,
    gradient_range: tuple[float, float] = (-9.0, -1.0),
) -> LayerStatistics:
    """Activations, gradients and saturation of every hidden layer, on one batch.

    One forward and backward pass in training mode (BN uses the batch's statistics, as during
    training) on a copy of ``net``: its running statistics are left untouched. The loss is
    each member's mean cross-entropy over the batch; gradients are taken by autograd.

    Parameters
    ----------
    net : StackedMLP
        A sigmoid network (``spec.activation == "sigmoid"``), with or without BN.
    x : torch.Tensor
        ``(B, in)`` inputs shared by every member, or ``(M, B, in)``.
    y : torch.Tensor
        ``(B,)`` or ``(M, B)`` integer labels.
    threshold : float
        A sigmoid output below ``threshold`` or above ``1 - threshold`` counts as saturated.
    bins : int
        Histogram bins.
    gradient_range : (float, float)
        Range of ``log10 |dL/da|`` covered by the gradient histogram.

    Returns
    -------
    LayerStatistics
    """
    if not isinstance(net, StackedMLP):
        raise TypeError(f"layer_statistics needs a bnguide.models.StackedMLP, got {type(net)}.")
    if net.spec.activation != "sigmoid":
        raise ValueError(
            f"layer_statistics measures sigmoid saturation; this net uses "
            f"{net.spec.activation!r} (build it with MLPSpec(activation='sigmoid'))."
        )
    _check_threshold(threshold)
    if int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins}.")
    lo, hi = gradient_range
    if not lo < hi:
        raise ValueError(
            f"gradient_range must be (low, high) with low < high, got {gradient_range}."
        )
    ref = net.weight0
    clone = StackedMLP(net.spec, net.members, device=ref.device, dtype=ref.dtype)
    clone.load_state_dict(net.state_dict())  # a copy: the running statistics stay untouched
    net = clone.train()
    with torch.enable_grad():
        logits, pre = net(x, probe=True)  # (M, B, C); per hidden layer (M, B, n)
        logp = torch.log_softmax(logits, dim=-1)
        index = y.expand(net.members, logits.shape[1]).unsqueeze(-1)  # (M, B, 1)
        loss = -logp.gather(2, index).squeeze(-1).mean(1).sum()  # members do not interact
        grads = torch.autograd.grad(loss, pre)
    a_edges = np.linspace(0.0, 1.0, bins + 1)
    g_edges = np.linspace(lo, hi, bins + 1)
    members, layers = net.members, len(pre)
    out = {
        "saturated": np.zeros((members, layers)),
        "activation_hist": np.zeros((members, layers, bins)),
        "gradient_hist": np.zeros((members, layers, bins)),
        "gradient_rms": np.zeros((members, layers)),
    }
    for l, (a, g) in enumerate(zip(pre, grads, strict=True)):
        s = torch.sigmoid(a.detach()).double().cpu().numpy().reshape(members, -1)  # (M, B * n)
        g = g.double().cpu().numpy().reshape(members, -1)
        out["saturated"][:, l] = ((s < threshold) | (s > 1 - threshold)).mean(1)
        out["gradient_rms"][:, l] = np.sqrt((g**2).mean(1))
        log_g = np.log10(np.maximum(np.abs(g), 1e-300)).clip(lo, hi)
        for m in range(members):
            out["activation_hist"][m, l] = np.histogram(s[m], a_edges)[0] / s.shape[1]
            out["gradient_hist"][m, l] = np.histogram(log_g[m], g_edges)[0] / g.shape[1]
    return LayerStatistics(
        **out, activation_edges=a_edges, gradient_edges=g_edges, threshold=float(threshold)
    )
