"""What a training loop records: one :class:`bnguide.training.TrainLog` of NumPy arrays.

Whichever loop wrote it, the log has the same fields.

:func:`bnguide.training.train_variants` fills it for many variants and seeds at once;
:func:`bnguide.training.santurkar.train` for one network (one variant, one seed). Every per-run
array has the axes ``(V, S, E, ...)``: variants, seeds, evaluations. A loop leaves the fields it
does not record at ``None``. Used in :doc:`/book/practice/ioffe-mnist` and the *Why BN works*
chapters.

Examples
--------
>>> import numpy as np
>>> from bnguide.training.log import TrainLog
>>> log = TrainLog(names=("bn",), seeds=(0,), steps=np.array([0, 100]),
...                train_loss=np.array([[[np.nan, 0.5]]]), diverged_at=np.array([[-1]]),
...                seconds=1.0, test_accuracy=np.array([[[0.1, 0.9]]]))
>>> log.accuracy("bn")  # (S, E)
array([[0.1, 0.9]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

__all__ = ["TrainLog"]


@dataclass
class TrainLog:
    """What a training loop records, as NumPy arrays.

    Axes: ``V`` variants (in the order given), ``S`` seeds, ``E`` evaluations, ``Q`` quantiles.

    Attributes
    ----------
    names : tuple of str
        Variant names, ``(V,)``.
    seeds : tuple of int
        ``(S,)``.
    steps : numpy.ndarray
        ``(E,)`` training steps at which the evaluations happened (0 = before training).
    train_loss : numpy.ndarray
        ``(V, S, E)``, mean mini-batch loss over the steps since the previous evaluation
        (NaN at step 0).
    diverged_at : numpy.ndarray
        ``(V, S)``, the step at which the training loss was first not finite (for
        :func:`~bnguide.training.train_variants`: the first evaluation step after it), or -1.
    seconds : float
        Wall-clock time of training and evaluation.
    test_accuracy : numpy.ndarray, optional
        ``(V, S, E)``, fraction of the test images classified correctly (eval mode).
    train_accuracy : numpy.ndarray, optional
        ``(V, S, E)``, the same on a fixed subset of the training images (eval mode).
    batch_accuracy : numpy.ndarray, optional
        ``(V, S, E)``, mean accuracy on the mini-batches trained on since the previous
        evaluation, in training mode (NaN at step 0).
    probe_unit : numpy.ndarray, optional
        ``(V, S, E, Q)``, quantiles over the test set of the input to one activation
        (``probe_unit`` of hidden layer ``probe_layer``).
    probe_all : numpy.ndarray, optional
        ``(V, S, E, Q)``, the same quantiles pooled over all units of that layer and the
        first ``probe_examples`` test images.
    probe_units : numpy.ndarray, optional
        ``(V, S, E, H, Q)``, the same quantiles for every unit of that layer, over the first
        ``probe_examples`` test images.
    quantiles : tuple of float
        ``(Q,)``.
    settings : dict
        The loop's settings (steps, batch size, ...).
    """

    names: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: np.ndarray
    train_loss: np.ndarray
    diverged_at: np.ndarray
    seconds: float
    test_accuracy: np.ndarray | None = None
    train_accuracy: np.ndarray | None = None
    batch_accuracy: np.ndarray | None = None
    probe_unit: np.ndarray | None = None
    probe_all: np.ndarray | None = None
    probe_units: np.ndarray | None = None
    quantiles: tuple[float, ...] = ()
    settings: dict = field(default_factory=dict)

    @classmethod
    def merge(
        cls, per_worker: Sequence, variants: Sequence, seeds: Sequence[int], seconds: float
    ) -> TrainLog:
        """One log over all variants and seeds from the per-job logs of worker processes.

        Parameters
        ----------
        per_worker : sequence
            For each worker, its ``(variant_ids, seeds, log)`` jobs
            (:func:`bnguide.training.workers.train_in_processes`).
        variants : sequence of bnguide.training.Variant
            All of them, in the order of the merged log.
        seeds : sequence of int
            All of them, in the order of the merged log.
        seconds : float
            Wall-clock time of the whole parallel run.

        Returns
        -------
        TrainLog
            Every ``(V, S, ...)`` array field put together (NaN, or -1 for integers, where no
            job filled it); the other fields from the first job.
        """
        pieces = [piece for jobs in per_worker for piece in jobs]
        first = pieces[0][2]
        seeds = [int(s) for s in seeds]
        per_pair = [
            f.name
            for f in fields(cls)
            if isinstance(getattr(first, f.name), np.ndarray) and getattr(first, f.name).ndim >= 2
        ]
        out = {}
        for name in per_pair:
            value = getattr(first, name)
            integer = np.issubdtype(value.dtype, np.integer)
            shape = (len(variants), len(seeds), *value.shape[2:])
            out[name] = np.full(shape, -1, dtype=np.int64) if integer else np.full(shape, np.nan)
        for variant_ids, job_seeds, log in pieces:
            for a, v in enumerate(variant_ids):
                for b, s in enumerate(job_seeds):
                    i = seeds.index(s)
                    for name in per_pair:
                        out[name][v, i] = getattr(log, name)[a, b]
        rest = {f.name: getattr(first, f.name) for f in fields(cls) if f.name not in per_pair}
        rest.update(
            names=tuple(v.name for v in variants),
            seeds=tuple(seeds),
            seconds=seconds,
            settings=dict(
                first.settings,
                processes=len(per_worker),
                # each worker's training and evaluation time, in the order they finished
                worker_seconds=[sum(log.seconds for *_, log in jobs) for jobs in per_worker],
            ),
        )
        return cls(**rest, **out)

    def index(self, name: str) -> int:
        """Position of variant ``name`` along the first axis."""
        if name not in self.names:
            raise KeyError(f"No variant {name!r}; variants are {', '.join(self.names)}.")
        return self.names.index(name)

    def accuracy(self, name: str) -> np.ndarray:
        """Test accuracy of variant ``name``, ``(S, E)``."""
        return self.test_accuracy[self.index(name)]

    def steps_to_reach(self, name: str, target: float) -> np.ndarray:
        """First evaluated step at which each seed's test accuracy is at least ``target``.

        Returns
        -------
        numpy.ndarray of float
            ``(S,)``; NaN for a seed that never reaches it.
        """
        hit = self.accuracy(name) >= target  # (S, E)
        first = self.steps[hit.argmax(1)].astype(float)
        return np.where(hit.any(1), first, np.nan)
