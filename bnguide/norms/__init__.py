"""The normalizers other than batch normalization, from scratch, checked against torch.

Each layer mirrors torch's constructor and parameter names where torch has it, so state_dicts
load both ways. Used in :doc:`/book/scale/normalizers`.

Examples
--------
>>> import torch
>>> from bnguide.norms import GroupNorm
>>> x = torch.randn(4, 6, 5, 5)
>>> torch.allclose(GroupNorm(2, 6)(x), torch.nn.GroupNorm(2, 6)(x), atol=1e-6)
True
"""

from bnguide.norms.batch_renorm import (
    BatchRenorm1d,
    BatchRenorm2d,
    BatchRenorm3d,
    batch_renorm,
    renorm_limits,
)
from bnguide.norms.group_norm import GroupNorm, group_norm, group_norm_unchecked
from bnguide.norms.instance_norm import (
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    instance_norm,
)
from bnguide.norms.layer_norm import LayerNorm, layer_norm, layer_norm_unchecked
from bnguide.norms.rms_norm import RMSNorm, machine_eps, rms_norm, rms_norm_unchecked

__all__ = [
    "BatchRenorm1d",
    "BatchRenorm2d",
    "BatchRenorm3d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "RMSNorm",
    "batch_renorm",
    "group_norm",
    "group_norm_unchecked",
    "instance_norm",
    "layer_norm",
    "layer_norm_unchecked",
    "machine_eps",
    "renorm_limits",
    "rms_norm",
    "rms_norm_unchecked",
]
