"""The networks the experiments train: stacked MLPs, the MLP with a normalizer, the CNN, the RNN.

- :mod:`bnguide.models.stacked` (re-exported here): :class:`MLPSpec`, its plain torch form
  :func:`build_mlp`, and :class:`StackedMLP`, many copies of one spec trained side by side by
  :mod:`bnguide.training`.
- :mod:`bnguide.models.norm_mlp`: :class:`~bnguide.models.norm_mlp.NormMLP`, an MLP with a
  normalizer chosen by name.
- :mod:`bnguide.models.small_cnn`: the three-stage CNN of the normalizer comparisons.
- :mod:`bnguide.models.rnn`: :class:`~bnguide.models.rnn.NormRNN`, the RNN with per-step BN or
  LayerNorm.

Used in :doc:`/book/practice/ioffe-mnist` and the other *BN in practice* chapters.
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
