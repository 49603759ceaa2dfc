"""Training loops: where every experiment that trains a network gets its SGD steps.

- ``bnguide.training.variants`` (all re-exported here): :func:`train_variants`, many small MLP
  variants and seeds side by side.
- ``bnguide.training.log`` (re-exported here): :class:`TrainLog`, what every loop records.
  :class:`Data` and :func:`load_data` come from :mod:`bnguide.data`.
- :mod:`bnguide.training.workers`: the worker processes that :func:`train_variants` deals
  (variant, seed) pairs to (started by :func:`bnguide.processes.run_children`).
- :mod:`bnguide.training.fit`: the one SGD loop, ``run_sgd`` (the loss of each step from a
  function; hooks before and after each update), and ``train`` / ``evaluate`` for one ordinary
  ``nn.Module`` on in-memory data, which go through it. The deep linear network of
  :mod:`bnguide.experiments.santurkar_deep_linear` trains through ``run_sgd`` directly.
- :mod:`bnguide.training.santurkar`: the Santurkar et al. (2018) MLP runs: ``fit.train`` with
  probes as its ``before_update`` hook.

Used in :doc:`/book/practice/ioffe-mnist` and the other *BN in practice* chapters.

Examples
--------
>>> from bnguide.training import evaluation_steps
>>> evaluation_steps(1000, 250).tolist()  # when train_variants evaluates
[0, 250, 500, 750, 1000]
"""

from bnguide.data import Data, load_data
from bnguide.training.log import TrainLog
from bnguide.training.variants import (
    BATCH_SEED_OFFSET,
    Trainer,
    Variant,
    evaluation_steps,
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
