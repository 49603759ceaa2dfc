"""One vocabulary of normalizer kinds: the layer each name builds, and "is this batch norm?".

Every model that takes a normalizer by name (:class:`bnguide.models.norm_mlp.NormMLP`,
:func:`bnguide.models.small_cnn.small_cnn`, :class:`bnguide.models.rnn.NormRNN`) spells it with
a key of :data:`KINDS` and builds it with :func:`make_norm`; :mod:`bnguide.fold`,
:mod:`bnguide.precise_bn` and :mod:`bnguide.norms.sync` ask :func:`is_batch_norm`. A new
normalizer is one module in ``bnguide/norms/`` plus one entry here. Used in
:doc:`/book/scale/normalizers`.

Examples
--------
>>> from bnguide.norms.registry import KINDS, is_batch_norm, make_norm
>>> KINDS["batch"]
'BatchNorm'
>>> make_norm("group", 8, groups=2)
GroupNorm(2, 8, eps=1e-05, affine=True, bias=True)
>>> is_batch_norm(make_norm("batch", 8)), is_batch_norm(make_norm("layer", 8))
(True, False)
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm as _TorchBatchNorm

from bnguide import nn as bnguide_nn
from bnguide.norms.batch_renorm import BatchRenorm1d, BatchRenorm2d, BatchRenorm3d
from bnguide.norms.ghost import GhostBatchNorm
from bnguide.norms.group_norm import GroupNorm
from bnguide.norms.instance_norm import InstanceNorm2d
from bnguide.norms.layer_norm import LayerNorm
from bnguide.norms.lp import LpNorm1d
from bnguide.norms.rms_norm import RMSNorm

__all__ = [
    "BATCH_KINDS",
    "KINDS",
    "LP_EXPONENTS",
    "PLAIN_BATCH_NORMS",
    "SANTURKAR_KINDS",
    "check_kind",
    "has_running_stats",
    "is_batch_norm",
    "make_norm",
]

#: Every normalizer kind the book trains, with the label its figures and tables use.
KINDS = {
    "none": "no normalization",
    "batch": "BatchNorm",
    "batch-renorm": "Batch Renorm",
    "group": "GroupNorm",
    "layer": "LayerNorm",
    "instance": "InstanceNorm",
    "rms": "RMSNorm",
    "l1": "L1 BN",
    "l2": "L2 BN",
    "linf": "L-infinity BN",
}
#: The kinds that normalize over the batch (their linear layer needs no bias).
BATCH_KINDS = ("batch", "batch-renorm")
#: The exponent p of each Lp batch normalization of Santurkar et al. (2018).
LP_EXPONENTS = {"l1": 1.0, "l2": 2.0, "linf": float("inf")}
#: The kinds Santurkar et al. (2018) compare: none, BN and the Lp batch normalizations.
SANTURKAR_KINDS = ("none", "batch", *LP_EXPONENTS)
#: Plain batch norm layers (torch's and :mod:`bnguide.nn`'s): what ``convert_sync_batchnorm``
#: converts.
PLAIN_BATCH_NORMS = (
    _TorchBatchNorm,
    bnguide_nn.BatchNorm1d,
    bnguide_nn.BatchNorm2d,
    bnguide_nn.BatchNorm3d,
)
# Every BN flavour of torch and bnguide: in eval mode each one is the same affine map. Torch's
# _BatchNorm covers bnguide's BatchNorm*d and SyncBatchNorm, which subclass it.
_BATCH_NORM_TYPES = (
    *PLAIN_BATCH_NORMS,
    GhostBatchNorm,
    BatchRenorm1d,
    BatchRenorm2d,
    BatchRenorm3d,
)


def check_kind(kind: str, allowed: Collection[str] | None = None) -> None:
    """Raise ``ValueError`` unless ``kind`` is in ``allowed`` (default: every key of :data:`KINDS`).

    Parameters
    ----------
    kind : str
        The name to check.
    allowed : collection of str, optional
        The kinds the caller supports, a subset of :data:`KINDS`.
    """
    allowed = tuple(KINDS) if allowed is None else tuple(allowed)
    if kind not in allowed:
        known = ", ".join(repr(n) for n in allowed)
        raise ValueError(f"Unknown normalizer {kind!r}. Use one of: {known}.")


def make_norm(
    kind: str,
    num_features: int,
    *,
    shape: tuple[int, ...] | None = None,
    groups: int = 4,
    momentum: float = 0.1,
    affine: bool = True,
) -> nn.Module:
    """The normalization layer ``kind`` for ``num_features`` features or channels.

    Parameters
    ----------
    kind : str
        A key of :data:`KINDS`.
    num_features : int
        Width of the layer (features of ``(N, F)`` inputs, channels of ``(N, C, H, W)`` maps).
    shape : tuple of int, optional
        ``(C, H, W)`` for feature maps: the layer is then the book's own 2-d one
        (:class:`bnguide.nn.BatchNorm2d`, :mod:`bnguide.norms`; LayerNorm and RMSNorm over
        ``(C, H, W)``). Left out: a layer for ``(N, F)`` features, torch's for ``"batch"``,
        ``"layer"`` and ``"group"``.
    groups : int
        Number of groups for ``"group"``; must divide ``num_features``.
    momentum : float
        Running-statistics momentum of the batch-wise normalizers on features (torch's
        convention: the weight of the new batch).
    affine : bool
        Learnable gamma and beta, for ``"batch"`` and the Lp kinds on features.

    Returns
    -------
    torch.nn.Module
    """
    check_kind(kind)
    if kind == "group" and (groups < 1 or num_features % groups):
        raise ValueError(
            f"GroupNorm needs groups dividing the width, got groups={groups} for "
            f"{num_features} features. Pick a divisor of {num_features}."
        )
    if kind == "none":
        return nn.Identity()
    if shape is not None:
        return _make_2d(kind, num_features, shape, groups)
    if kind == "batch":
        return nn.BatchNorm1d(num_features, momentum=momentum, affine=affine)
    if kind == "batch-renorm":
        return BatchRenorm1d(num_features, momentum=momentum)
    if kind == "layer":
        return nn.LayerNorm(num_features)
    if kind == "group":
        return nn.GroupNorm(groups, num_features)
    if kind == "rms":
        return RMSNorm(num_features)
    if kind in LP_EXPONENTS:
        return LpNorm1d(num_features, p=LP_EXPONENTS[kind], affine=affine)
    raise ValueError(f"make_norm: {kind!r} needs feature maps: pass shape=(C, H, W).")


def _make_2d(kind: str, channels: int, shape: tuple[int, ...], groups: int) -> nn.Module:
    if len(shape) != 3 or shape[0] != channels:
        raise ValueError(f"make_norm: shape must be (C, H, W) with C={channels}, got {shape}.")
    makers = {
        "batch": lambda: bnguide_nn.BatchNorm2d(channels),
        "batch-renorm": lambda: BatchRenorm2d(channels),
        "group": lambda: GroupNorm(groups, channels),
        "layer": lambda: LayerNorm(tuple(shape)),
        "instance": lambda: InstanceNorm2d(channels, affine=True),
        "rms": lambda: RMSNorm(tuple(shape)),
    }
    if kind not in makers:
        raise ValueError(f"make_norm: {kind!r} has no layer for feature maps.")
    return makers[kind]()


def is_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a batch norm layer, of torch or of bnguide.

    Parameters
    ----------
    module : nn.Module
        Any module.

    Returns
    -------
    bool
        True for torch's ``BatchNorm1d/2d/3d`` and ``SyncBatchNorm`` and for bnguide's
        ``BatchNorm*d``, ``SyncBatchNorm``, ``GhostBatchNorm``, ``BatchRenorm*d`` and
        ``NoisyBatchNorm*d``: in eval mode each is one affine map per channel.
    """
    return isinstance(module, _BATCH_NORM_TYPES)


def has_running_stats(module: nn.Module) -> bool:
    """Whether ``module`` is a batch norm layer that keeps running statistics.

    Parameters
    ----------
    module : nn.Module
        Any module.

    Returns
    -------
    bool
        :func:`is_batch_norm` and ``running_mean``/``running_var`` are tensors.
    """
    return (
        is_batch_norm(module)
        and isinstance(getattr(module, "running_mean", None), torch.Tensor)
        and isinstance(getattr(module, "running_var", None), torch.Tensor)
    )
