"""The networks the experiments train: stacked MLPs, the MLP with a normalizer, the CNN, the RNN.

- ``bnguide.models.stacked`` (all re-exported here): :class:`MLPSpec`, its plain torch form
  :func:`build_mlp`, and :class:`StackedMLP`, many copies of one spec trained side by side by
  :mod:`bnguide.training`.
- :mod:`bnguide.models.norm_mlp`: :class:`~bnguide.models.norm_mlp.NormMLP`, an MLP with a
  normalizer chosen by name.
- :mod:`bnguide.models.small_cnn`: the three-stage CNN of the normalizer comparisons.
- :mod:`bnguide.models.rnn`: :class:`~bnguide.models.rnn.NormRNN`, the RNN with per-step BN or
  LayerNorm.

Used in :doc:`/book/practice/ioffe-mnist` and the other *BN in practice* chapters.

Examples
--------
>>> from bnguide.models import MLPSpec, build_mlp
>>> build_mlp(MLPSpec(hidden=(8,), activation="relu", placement="before"))
Sequential(
  (0): Linear(in_features=784, out_features=8, bias=False)
  (1): BatchNorm1d(8, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
  (2): ReLU()
  (3): Linear(in_features=8, out_features=10, bias=True)
)
"""

from bnguide.models.stacked import (
    ACTIVATIONS,
    NORM_PLACEMENTS,
    MLPSpec,
    StackedMLP,
    build_mlp,
    draw_weights,
    load_weights_,
)

__all__ = [
    "ACTIVATIONS",
    "NORM_PLACEMENTS",
    "MLPSpec",
    "StackedMLP",
    "build_mlp",
    "draw_weights",
    "load_weights_",
]
