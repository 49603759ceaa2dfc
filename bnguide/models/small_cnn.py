"""The small CNN and the Fashion-MNIST subset shared by the experiments of *BN at scale*.

Three 3x3 conv stages (14x14, 7x7 and 3x3 positions) each followed by a normalization layer
and ReLU, global average pooling and a linear classifier, on Fashion-MNIST downsampled to
14x14 so that hundreds of CPU runs fit in a book build. Used by the experiments behind
:doc:`/book/scale/sync-bn` and :doc:`/book/scale/normalizers`.

Examples
--------
>>> import torch
>>> from bnguide.models.small_cnn import small_cnn
>>> small_cnn("group")(torch.randn(4, 1, 14, 14)).shape  # (N, classes)
torch.Size([4, 10])
"""

from __future__ import annotations

from torch import nn

from bnguide import norms
from bnguide.data import load_downsampled
from bnguide.norms.registry import KINDS, make_norm

__all__ = ["NORMS", "SPATIAL", "load_subset", "set_renorm_limits", "small_cnn"]

#: The kinds of :data:`bnguide.norms.registry.KINDS` the CNN takes, with their labels.
NORMS = {
    kind: KINDS[kind]
    for kind in ("none", "batch", "batch-renorm", "group", "layer", "instance", "rms")
}
SPATIAL = (14, 7, 3)  # side of the feature maps each conv stage normalizes
GROUPS = 4  # GroupNorm groups per layer


def small_cnn(norm: str = "batch", widths: tuple[int, int, int] = (8, 16, 32)) -> nn.Sequential:
    """Conv-norm-ReLU x3 (max-pooling between stages), global average pooling, linear.

    Parameters
    ----------
    norm : str
        A key of :data:`NORMS`, built by :func:`bnguide.norms.registry.make_norm`.
    widths : tuple of int
        Channels of the three stages.

    Returns
    -------
    torch.nn.Sequential

    Shape
    -----
    Input ``(N, 1, 14, 14)``; output logits ``(N, 10)``.
    """
    layers: list[nn.Module] = []
    in_channels = 1
    for stage, (width, side) in enumerate(zip(widths, SPATIAL, strict=True)):
        if stage > 0:
            layers.append(nn.MaxPool2d(2))  # 14 -> 7 -> 3
        # A norm with a per-channel shift makes the conv bias redundant.
        layers += [
            nn.Conv2d(in_channels, width, 3, padding=1, bias=norm in ("none", "rms")),
            make_norm(norm, width, shape=(width, side, side), groups=GROUPS),
            nn.ReLU(),
        ]
        in_channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, 10)]
    return nn.Sequential(*layers)


def load_subset(train_size: int, test_size: int, dataset: str = "fashion-mnist"):
    """The first ``train_size`` training and ``test_size`` test images, standardized, 14x14.

    Parameters
    ----------
    train_size, test_size : int
        How many images of each split.
    dataset : str
        ``"fashion-mnist"`` or ``"mnist"``.

    Returns
    -------
    x_train, y_train, x_test, y_test : torch.Tensor
        Images ``(N, 1, 14, 14)`` (2x2 average-pooled) and int64 labels ``(N,)``.
    """
    x, y = load_downsampled(dataset, "train", side=14, limit=train_size)  # (N, 1, 14, 14)
    xt, yt = load_downsampled(dataset, "test", side=14, limit=test_size)
    return x, y, xt, yt


def set_renorm_limits(model: nn.Module, step: int, steps: int) -> None:
    """Batch Renorm's schedule scaled to ``steps``: plain BN for the first tenth, then
    ``r_max`` reaches 3 at 80% and ``d_max`` reaches 5 at 50% of training
    (the paper: 5k, 40k and 25k steps).

    Parameters
    ----------
    model : torch.nn.Module
        Its :class:`bnguide.norms.BatchRenorm2d` layers get the limits.
    step, steps : int
        The current step and the length of training.
    """
    r_max, d_max = norms.renorm_limits(step, steps // 10, steps * 8 // 10, steps // 2)
    for module in model.modules():
        if isinstance(module, norms.BatchRenorm2d):
            module.r_max, module.d_max = r_max, d_max
