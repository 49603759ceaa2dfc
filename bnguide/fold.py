"""Fold eval-mode batch norm into the Linear or Conv layer before it, for inference.

With fixed running statistics, BN is a per-channel affine map
``y = gamma * (z - mu) / sqrt(var + eps) + beta``; after a layer ``z = W x + b`` it folds into
new weights ``W' = s W`` and bias ``b' = s (b - mu) + beta`` with ``s = gamma / sqrt(var + eps)``,
so the folded network computes the same function with one layer fewer. Used in
:doc:`/book/scale/folding`.

Examples
--------
>>> from torch import nn
>>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
>>> fold(model)
Sequential(
  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))
  (1): Identity()
  (2): ReLU()
)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from bnguide.norms.registry import is_batch_norm

__all__ = ["fold", "fold_bn", "is_batch_norm"]

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _check_foldable(bn: nn.Module) -> None:
    name = type(bn).__name__
    if bn.training:
        raise RuntimeError(
            f"Cannot fold {name} in training mode: it then normalizes with each batch's own "
            "statistics, which no fixed weights reproduce. Call model.eval() first."
        )
    if getattr(bn, "running_mean", None) is None or getattr(bn, "running_var", None) is None:
        raise ValueError(
            f"Cannot fold {name} without running statistics (track_running_stats=False): it "
            "normalizes with batch statistics even in eval mode, so it is not a fixed affine "
            "map. Train it with track_running_stats=True, or keep the layer unfolded."
        )


@torch.no_grad()
def fold_bn(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of ``layer`` (Linear or Conv1d/2d/3d) with the eval-mode ``bn`` after it folded in.

    Parameters
    ----------
    layer : nn.Linear or nn.Conv1d/2d/3d
        The layer whose output ``bn`` normalizes (any ``groups``, with or without bias).
    bn : batch norm layer in eval mode with running statistics
        ``num_features`` must equal the layer's output channels.

    Returns
    -------
    nn.Module
        A new layer of the same type, always with a bias; ``layer`` and ``bn`` are unchanged.
        The arithmetic is done in float64 and the result cast to ``layer``'s dtype.

    Shape
    -----
    Same as ``layer``'s.
    """
    if not isinstance(layer, _LAYERS):
        raise TypeError(
            f"fold_bn folds BN into nn.Linear or nn.Conv1d/2d/3d, got {type(layer).__name__}."
        )
    if not is_batch_norm(bn):
        raise TypeError(
            f"fold_bn expects a batch norm layer after the layer, got {type(bn).__name__}."
        )
    _check_foldable(bn)
    out_channels = layer.weight.shape[0]
    if bn.num_features != out_channels:
        raise ValueError(
            f"Cannot fold {type(bn).__name__}({bn.num_features}) into a "
            f"{type(layer).__name__} with {out_channels} output channels: they must match."
        )
    w = layer.weight.double()  # (out, in/groups, *kernel) or (out, in)
    b = layer.bias.double() if layer.bias is not None else w.new_zeros(out_channels)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(b)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(b)
    scale = gamma / torch.sqrt(bn.running_var.double() + bn.eps)  # (out,)
    folded = copy.deepcopy(layer)
    if folded.bias is None:
        folded.bias = nn.Parameter(layer.weight.new_empty(out_channels))
    folded.weight.copy_(w * scale.reshape(-1, *([1] * (w.dim() - 1))))
    folded.bias.copy_((b - bn.running_mean.double()) * scale + beta)
    return folded


def fold(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every Linear/Conv -> BN pair of an ``nn.Sequential`` folded.

    Each folded BN is replaced by ``nn.Identity`` so module names and indices stay valid. Only
    consecutive children of ``nn.Sequential`` containers are paired (there the data flow is
    known); other BN layers are left as they are.

    Parameters
    ----------
    model : nn.Module
        In eval mode.

    Returns
    -------
    nn.Module
        The folded copy (in eval mode); ``model`` is unchanged.
    """
    if model.training:
        raise RuntimeError(
            "fold needs the model in eval mode: call model.eval() first. Folding bakes the "
            "running statistics into the weights, and a training-mode BN does not use them."
        )
    folded = copy.deepcopy(model)
    _fold_in_place(folded)
    return folded


def _fold_in_place(module: nn.Module) -> None:
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            layer, bn = module._modules[first], module._modules[second]
            if isinstance(layer, _LAYERS) and is_batch_norm(bn):
                module._modules[first] = fold_bn(layer, bn)
                module._modules[second] = nn.Identity()
    for child in module.children():
        _fold_in_place(child)
