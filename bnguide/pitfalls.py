"""Batch-norm layers with the mistakes found in public code, kept on purpose, and their fixes.

Each ``Wrong*`` class below has exactly one bug, the way it appears in real tutorials; the
chapter *Pitfalls* makes each one fail and then shows the fix. Do not use them for anything
else. Correct behaviour is ``torch.nn.BatchNorm1d`` (or :class:`bnguide.nn.BatchNorm1d`).

- :class:`WrongGradModeBatchNorm1d` picks batch or running statistics from
  ``torch.is_grad_enabled()`` instead of ``self.training``.
- :class:`WrongAttributeBatchNorm1d` keeps its running statistics as plain attributes, not
  buffers: they are missing from ``state_dict`` and ignored by ``.to()``.
- :class:`WrongGraphBatchNorm1d` updates its running statistics with autograd recording, so
  they drag the graph of every past step along.

The fixes that are functions: :func:`train_with_frozen_bn` (fine-tuning with BN statistics
frozen) and :func:`autograd_graph_size` (to see a leaking graph). :func:`trained_model` gives
the chapter a fresh copy of a trained BN network to make the mistakes on.

Examples
--------
>>> import torch
>>> from bnguide.pitfalls import WrongAttributeBatchNorm1d
>>> sorted(WrongAttributeBatchNorm1d(4).state_dict())  # the running statistics are missing
['bias', 'weight']
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from bnguide.models.norm_mlp import NormMLP
from bnguide.precise_bn import bn_layers

__all__ = [
    "WrongAttributeBatchNorm1d",
    "WrongGradModeBatchNorm1d",
    "WrongGraphBatchNorm1d",
    "autograd_graph_size",
    "train_with_frozen_bn",
    "trained_model",
]


class WrongGradModeBatchNorm1d(nn.BatchNorm1d):
    """WRONG: uses batch statistics whenever gradients are enabled, running ones under no_grad.

    Evaluating with gradients (a saliency map, a validation loss computed with grad on) then
    silently uses and updates batch statistics, and training steps run under ``no_grad`` (e.g.
    a statistics warm-up) use the running ones. The fix: decide with ``self.training``.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        use_batch = torch.is_grad_enabled()  # the bug: should be self.training
        return F.batch_norm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_batch,
            self.momentum,
            self.eps,
        )


class WrongAttributeBatchNorm1d(nn.Module):
    """WRONG: running statistics stored as plain tensor attributes instead of buffers.

    The layer computes the right thing, but ``state_dict()`` has no ``running_mean`` or
    ``running_var`` (a saved and reloaded model evaluates with the initial zeros and ones), and
    ``.to(device or dtype)`` leaves them behind. The fix: ``self.register_buffer(...)``.

    Parameters
    ----------
    num_features : int
        Number of features ``C``.
    eps, momentum : float
        As in ``torch.nn.BatchNorm1d``.

    Shape
    -----
    Input ``(N, C)``; output the same shape.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.running_mean = torch.zeros(num_features)  # the bug: not a buffer
        self.running_var = torch.ones(num_features)  # the bug: not a buffer

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.training:
            n = input.shape[0]
            mean, var = input.mean(0), input.var(0, correction=0)  # (C,)
            with torch.no_grad():
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)
        else:
            mean, var = self.running_mean, self.running_var
        return (input - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class WrongGraphBatchNorm1d(nn.BatchNorm1d):
    """WRONG: updates the running statistics outside ``torch.no_grad()``.

    The new running mean is computed from the batch mean, which carries the autograd graph of
    the whole forward pass, so ``running_mean`` becomes a non-leaf tensor whose history reaches
    back through every training step: memory grows with each step, and a loss computed in eval
    mode backpropagates into freed graphs (``RuntimeError: Trying to backward through the graph
    a second time``). The fix: update under ``torch.no_grad()`` (or from ``.detach()`` ed values).
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training:
            mean, var = self.running_mean, self.running_var  # carry the old graphs
            return (input - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        n = input.shape[0]
        mean, var = input.mean(0), input.var(0, correction=0)  # (C,), with autograd history
        m = self.momentum
        # The bug: these lines run with autograd recording.
        self.running_mean = (1 - m) * self.running_mean + m * mean
        self.running_var = (1 - m) * self.running_var + m * var * n / (n - 1)
        self.num_batches_tracked += 1
        return (input - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def autograd_graph_size(tensor: torch.Tensor) -> int:
    """Number of autograd nodes reachable from ``tensor`` (0 for a tensor without history).

    Parameters
    ----------
    tensor : torch.Tensor
        Any tensor.

    Returns
    -------
    int
        Distinct ``grad_fn`` nodes in the graph that produced ``tensor``.
    """
    seen: set[int] = set()
    stack = [tensor.grad_fn] if tensor.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(nxt for nxt, _ in node.next_functions if nxt is not None)
    return len(seen)


def train_with_frozen_bn(model: nn.Module, *, freeze_affine: bool = False) -> nn.Module:
    """Put ``model`` in training mode but keep its BN layers normalizing with running statistics.

    The usual way to fine-tune a network with BN on a small or different dataset: the running
    statistics stay as learned on the original data (they are neither used nor updated with
    batch statistics). Call it instead of ``model.train()``, after every ``model.train()``.
    Setting ``requires_grad=False`` on BN's weight and bias alone does *not* freeze the
    statistics.

    Parameters
    ----------
    model : torch.nn.Module
        Any network with BN layers.
    freeze_affine : bool
        Also stop training BN's ``weight`` and ``bias``.

    Returns
    -------
    torch.nn.Module
        The same model.
    """
    layers = bn_layers(model)
    if not layers:
        raise ValueError(
            "train_with_frozen_bn: the model has no batch-norm layer with running statistics; "
            "call model.train() instead."
        )
    model.train()
    for layer in layers:
        layer.eval()
        if freeze_affine:
            for p in layer.parameters(recurse=False):
                p.requires_grad_(False)
    return model


def trained_model(result) -> NormMLP:
    """A fresh copy, in eval mode, of the MLP with BN trained by ``confounded-comparison``.

    Parameters
    ----------
    result : bnguide.experiments.confounded_comparison.Result
        Its ``config.hidden`` gives the widths and its ``state_dict`` the trained weights and
        running statistics.

    Returns
    -------
    NormMLP
        ``784 -> hidden -> 10`` with BN; each call builds a new one, so a mistake made on one
        copy does not leak into the next.
    """
    model = NormMLP(784, result.config.hidden, norm="batch")
    model.load_state_dict(result.state_dict)
    return model.eval()
