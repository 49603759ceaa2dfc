"""Training loops: where every experiment that trains a network gets its SGD steps.

- ``bnguide.training.variants`` (all re-exported here): :func:`train_variants`, many small MLP
  variants and seeds side by side, and its :class:`TrainLog`.
- :mod:`bnguide.training.workers`: the worker processes that :func:`train_variants` deals
  (variant, seed) pairs to (started by :func:`bnguide.processes.run_children`).
- :mod:`bnguide.training.fit`: the loop for one ordinary ``nn.Module`` (``train``, ``evaluate``).
- :mod:`bnguide.training.santurkar`: the loop of the Santurkar et al. (2018) replications, with
  probes before each update.

Used in :doc:`/book/practice/ioffe-mnist` and the other *BN in practice* chapters.

Examples
--------
>>> from bnguide.training import evaluation_steps
>>> evaluation_steps(1000, 250).tolist()  # when train_variants evaluates
[0, 250, 500, 750, 1000]
"""

from bnguide.training.variants import (
    BATCH_SEED_OFFSET,
    Data,
    Trainer,
    TrainLog,
    Variant,
    evaluation_steps,
    load_data,
    train_variants,
)

__all__ = [
    "BATCH_SEED_OFFSET",
    "Data",
    "TrainLog",
    "Trainer",
    "Variant",
    "evaluation_steps",
    "load_data",
    "train_variants",
]
