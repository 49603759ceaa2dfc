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

from bnguide.norms import BatchRenorm1d

__all__ = ["NORMS", "NormMLP", "check_norm", "make_norm"]

NORMS = ("none", "batch", "batch-renorm", "layer", "group")
_BATCH_NORMS = ("batch", "batch-renorm")


def check_norm(norm: str) -> None:
    """Raise ``ValueError`` unless ``norm`` is one of :data:`NORMS`.

    Parameters
    ----------
    norm : str
        The name to check.
    """
    if norm not in NORMS:
        known = ", ".join(repr(n) for n in NORMS)
        raise ValueError(f"Unknown normalizer {norm!r}. Use one of: {known}.")


def make_norm(norm: str, num_features: int, *, groups: int = 4, momentum: float = 0.1) -> nn.Module:
    """The normalization layer called ``norm`` for ``(N, num_features)`` activations.

    Parameters
    ----------
    norm : {"none", "batch", "batch-renorm", "layer", "group"}
        ``"batch"`` is ``torch.nn.BatchNorm1d``; ``"batch-renorm"`` is
        :class:`bnguide.norms.BatchRenorm1d` (Ioffe 2017); ``"layer"`` is ``torch.nn.LayerNorm``
        (per example, over all features); ``"group"`` is ``torch.nn.GroupNorm`` with ``groups``
        groups of features (per example); ``"none"`` is the identity.
    num_features : int
        Width of the layer.
    groups : int
        Number of feature groups for ``"group"``; must divide ``num_features``.
    momentum : float
        Running-statistics momentum of the batch-wise normalizers (torch's convention: the
        weight of the new batch).

    Returns
    -------
    torch.nn.Module
    """
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm1d(num_features, momentum=momentum)
    if norm == "batch-renorm":
        return BatchRenorm1d(num_features, momentum=momentum)
    if norm == "layer":
        return nn.LayerNorm(num_features)
    if norm == "group":
        if groups < 1 or num_features % groups:
            raise ValueError(
                f"GroupNorm needs groups dividing the width, got groups={groups} for "
                f"{num_features} features. Pick a divisor of {num_features}."
            )
        return nn.GroupNorm(groups, num_features)
    return nn.Identity()


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
        Normalizer of every hidden layer, see :func:`make_norm`.
    dropout : float
        Dropout probability after each hidden activation (0 for none).
    groups, momentum
        Passed to :func:`make_norm`.

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
        check_norm(norm)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}.")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h, bias=norm not in _BATCH_NORMS))
            layers.append(make_norm(norm, h, groups=groups, momentum=momentum))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
        self.norm = norm
        self.hidden = tuple(hidden)
