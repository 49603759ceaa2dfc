"""A fully connected classifier whose hidden layers use a normalizer chosen by name.

``Linear -> normalizer -> ReLU [-> Dropout]`` per hidden layer, then a linear read-out. The
normalizer is picked by name, so experiments can sweep over it and a typo fails loudly. Layers
normalizing over the batch (``"batch"``, ``"batch-renorm"``) make the preceding layer's bias
redundant, so it is left out. Used in the chapters of the part *BN in practice*.

Examples
--------
>>> import torch
>>> from bnguide.models.norm_mlp import NormMLP
>>> model = NormMLP(784, (100, 100), 10, norm="layer")
>>> model(torch.rand(64, 784)).shape  # (N, classes)
torch.Size([64, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from bnguide.norms.registry import BATCH_KINDS, check_kind, make_norm

__all__ = ["NORMS", "NormMLP"]

#: The kinds of :data:`bnguide.norms.registry.KINDS` that :class:`NormMLP` takes.
NORMS = ("none", "batch", "batch-renorm", "layer", "group")


class NormMLP(nn.Sequential):
    """``in -> [Linear -> norm -> ReLU -> Dropout] x len(hidden) -> Linear -> logits``.

    Parameters
    ----------
    in_features : int
        Input width (784 for flattened MNIST).
    hidden : sequence of int
        Widths of the hidden layers.
    num_classes : int
        Number of outputs.
    norm : str
        Normalizer of every hidden layer, see :func:`bnguide.norms.registry.make_norm`.
    dropout : float
        Dropout probability after each hidden activation (0 for none).
    groups, momentum
        Passed to :func:`bnguide.norms.registry.make_norm`.

    Shape
    -----
    Input ``(N, in_features)``; output ``(N, num_classes)``.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (100, 100),
        num_classes: int = 10,
        *,
        norm: str = "batch",
        dropout: float = 0.0,
        groups: int = 4,
        momentum: float = 0.1,
    ) -> None:
        check_kind(norm, NORMS)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}.")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h, bias=norm not in BATCH_KINDS))
            layers.append(make_norm(norm, h, groups=groups, momentum=momentum))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
        self.norm = norm
        self.hidden = tuple(hidden)
