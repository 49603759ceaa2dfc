"""The loss landscape along the gradient: Santurkar et al. (2018), Figure 4 and appendix A.2.2.

At a training step with parameters ``w`` and gradient ``g`` (on the step's batch), move to
``w - eta * g`` for a range of step sizes ``eta`` and evaluate, on the *same* batch,

* the loss ``L(w - eta g)`` — its spread over ``eta`` is the *loss band*;
* the gradient change ``||grad L(w) - grad L(w - eta g)||`` — a *difference* of gradients,
  how well the gradient here predicts the gradient there (*gradient predictiveness*);
* ``||grad L(w) - grad L(w - eta g)|| / ||eta g||``, whose maximum over ``eta`` is the
  *effective beta-smoothness*.

All step sizes are evaluated in one :func:`torch.func.vmap` call over stacked copies of the
parameters; ``vectorized=False`` loops over them instead (same numbers, the benchmark's
baseline). Used in chapter *Why BN works: a smoother landscape*.

Examples
--------
>>> import torch
>>> from bnguide.landscape import functional_loss, probe_gradient_direction
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
>>> loss_fn = functional_loss(model, torch.nn.functional.cross_entropy)
>>> params = {k: v.detach() for k, v in model.named_parameters()}
>>> x, y = torch.randn(16, 5), torch.randint(0, 2, (16,))
>>> probe = probe_gradient_direction(loss_fn, params, [0.1, 0.5, 1.0], x, y)
>>> probe.losses.shape
torch.Size([3])
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

__all__ = [
    "LandscapeProbe",
    "band_statistics",
    "functional_loss",
    "probe_gradient_direction",
    "stateless_copy",
]


def stateless_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose normalization layers keep no running statistics.

    In training mode such a copy normalizes with batch statistics exactly like the original
    but never writes to a buffer, so it can be called under :func:`torch.func.vmap` and probed
    without disturbing the model being trained. This is what
    :func:`torch.func.replace_all_batch_norm_modules_` does for torch's batch norms, extended
    to any module with ``track_running_stats``.

    Parameters
    ----------
    model : torch.nn.Module
        The model to copy.

    Returns
    -------
    torch.nn.Module
        A deep copy with ``track_running_stats`` off and no running buffers.
    """
    clone = copy.deepcopy(model)
    for module in clone.modules():
        if getattr(module, "track_running_stats", False):
            module.track_running_stats = False
            for name in ("running_mean", "running_var", "running_scale", "num_batches_tracked"):
                if hasattr(module, name):
                    setattr(module, name, None)
    return clone.train(model.training)


def functional_loss(
    model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor]
) -> Callable[[Mapping[str, Tensor], Tensor, Tensor], Tensor]:
    """``loss(params, x, y) = criterion(model with params (x), y)``, a pure function.

    Parameters
    ----------
    model : nn.Module
        Copied with :func:`stateless_copy`; later changes to ``model`` do not reach the copy,
        pass the current parameters explicitly.
    criterion : callable
        e.g. :func:`torch.nn.functional.cross_entropy`.

    Returns
    -------
    callable
        Usable with :func:`torch.func.grad` and :func:`torch.func.vmap`.
    """
    clone = stateless_copy(model)

    def loss(params: Mapping[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return criterion(functional_call(clone, dict(params), (x,)), y)

    return loss


@dataclass
class LandscapeProbe:
    """What :func:`probe_gradient_direction` measured at one training step.

    Attributes
    ----------
    step_sizes : Tensor
        ``(K,)`` the etas.
    loss : float
        ``L(w)``.
    grad_norm : float
        ``||g||`` with ``g = grad L(w)``.
    losses : Tensor
        ``(K,)`` ``L(w - eta_k g)``.
    grad_diffs : Tensor
        ``(K,)`` ``||g - grad L(w - eta_k g)||``.
    """

    step_sizes: Tensor
    loss: float
    grad_norm: float
    losses: Tensor
    grad_diffs: Tensor

    @property
    def loss_band(self) -> tuple[float, float]:
        """``(min, max)`` of the loss over the step sizes."""
        return float(self.losses.min()), float(self.losses.max())

    @property
    def grad_band(self) -> tuple[float, float]:
        """``(min, max)`` of the gradient change over the step sizes."""
        return float(self.grad_diffs.min()), float(self.grad_diffs.max())

    @property
    def beta(self) -> float:
        """Effective beta-smoothness: ``max_k ||g - grad L(w - eta_k g)|| / (eta_k ||g||)``."""
        return float((self.grad_diffs / (self.step_sizes * self.grad_norm)).max())


def _flat_norm(tensors: Sequence[Tensor]) -> Tensor:
    return torch.sqrt(sum(t.square().sum() for t in tensors))


def probe_gradient_direction(
    loss_fn: Callable[..., Tensor],
    params: Mapping[str, Tensor],
    step_sizes: Sequence[float] | Tensor,
    *batch: Tensor,
    vectorized: bool = True,
) -> LandscapeProbe:
    """Walk along the negative gradient and record losses and gradient changes.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params, *batch) -> scalar``, pure (see :func:`functional_loss`).
    params : dict
        ``w``, the parameters at this training step.
    step_sizes : sequence of float
        The etas, e.g. ``lr * torch.linspace(0.5, 4, 8)``; all must be positive.
    *batch : Tensor
        The step's batch; every evaluation uses it.
    vectorized : bool
        One :func:`torch.func.vmap` call over the step sizes (default), or a Python loop.

    Returns
    -------
    LandscapeProbe
    """
    etas = torch.as_tensor(step_sizes, dtype=torch.float64).flatten()
    if etas.numel() == 0 or not bool((etas > 0).all()):
        raise ValueError(
            f"step_sizes must be a non-empty sequence of positive numbers, got {etas.tolist()}."
        )
    params = {k: v.detach() for k, v in params.items()}
    g, loss0 = grad_and_value(loss_fn)(params, *batch)
    grad_norm = _flat_norm(list(g.values()))
    names = list(params)
    if vectorized:
        e = etas.to(next(iter(params.values())).dtype)  # (K,)
        stacked = {
            k: params[k] - e.view(-1, *([1] * params[k].dim())) * g[k] for k in names
        }  # each (K, *shape)
        in_dims = (0,) + (None,) * len(batch)
        g_new, losses = vmap(grad_and_value(loss_fn), in_dims=in_dims)(stacked, *batch)
        diffs = torch.sqrt(sum((g_new[k] - g[k]).square().flatten(1).sum(1) for k in names))  # (K,)
    else:
        out_l, out_d = [], []
        for eta in etas.tolist():
            moved = {k: params[k] - eta * g[k] for k in names}
            g_eta, l_eta = grad_and_value(loss_fn)(moved, *batch)
            out_l.append(l_eta)
            out_d.append(_flat_norm([g_eta[k] - g[k] for k in names]))
        losses, diffs = torch.stack(out_l), torch.stack(out_d)
    return LandscapeProbe(
        step_sizes=etas,
        loss=float(loss0),
        grad_norm=float(grad_norm),
        losses=losses.detach().double(),
        grad_diffs=diffs.detach().double(),
    )


def band_statistics(
    band_losses: np.ndarray, grad_diffs: np.ndarray, step_sizes: np.ndarray, grad_norm: np.ndarray
) -> dict[str, np.ndarray]:
    """Per probed step, the three summaries of Figure 4 from stacked probe results.

    Parameters
    ----------
    band_losses, grad_diffs : ndarray
        ``(P, K)``: :attr:`LandscapeProbe.losses` and :attr:`LandscapeProbe.grad_diffs` of P
        probes at the same K step sizes.
    step_sizes : ndarray
        ``(K,)``.
    grad_norm : ndarray
        ``(P,)``: :attr:`LandscapeProbe.grad_norm` of each probe.

    Returns
    -------
    dict of ndarray, each ``(P,)``
        ``"loss_band"``: max minus min of the loss over the step sizes; ``"grad_envelope"``:
        the largest gradient change; ``"beta"``: the effective beta-smoothness.
    """
    band_losses, grad_diffs = np.asarray(band_losses), np.asarray(grad_diffs)
    step_sizes, grad_norm = np.asarray(step_sizes), np.asarray(grad_norm)
    if band_losses.shape != grad_diffs.shape or band_losses.ndim != 2:
        raise ValueError(
            f"band_losses and grad_diffs must both be (P, K), got {band_losses.shape} and "
            f"{grad_diffs.shape}."
        )
    if step_sizes.shape != band_losses.shape[1:] or grad_norm.shape != band_losses.shape[:1]:
        raise ValueError(
            f"step_sizes must be (K,) = {band_losses.shape[1:]} and grad_norm (P,) = "
            f"{band_losses.shape[:1]}, got {step_sizes.shape} and {grad_norm.shape}."
        )
    return {
        "loss_band": band_losses.max(1) - band_losses.min(1),
        "grad_envelope": grad_diffs.max(1),
        "beta": (grad_diffs / (step_sizes[None, :] * grad_norm[:, None])).max(1),
    }
