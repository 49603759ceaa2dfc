"""A fast loop that trains many small MLP variants and seeds side by side on in-memory data.

The data stay on the device as tensors; every seed draws its own ``randperm`` each epoch; there
is no DataLoader. Variants that share an :class:`~bnguide.models.MLPSpec` (for example one
architecture at three learning rates, over three seeds) form one
:class:`~bnguide.models.StackedMLP`, so each layer of all of them is one batched matrix product
and the backward pass is written out by hand. All variants of one seed start from the same
weights and see the same batches, so they differ only in what the variant changes.

On a CPU, long runs go to worker processes (:mod:`bnguide.training.workers`). For one ordinary
``nn.Module`` at a time, :mod:`bnguide.training.fit` is the simpler loop. Used in
:doc:`/book/practice/ioffe-mnist`, :doc:`/book/practice/learning-rate-and-sigmoid` and
:doc:`/book/practice/bn-placement`.

Examples
--------
>>> from bnguide.models import MLPSpec
>>> from bnguide.training import Variant, load_data, train_variants
>>> data = load_data("mnist")  # doctest: +SKIP
>>> variants = [Variant("plain", MLPSpec(placement="none"), lr=0.1),
...             Variant("bn", MLPSpec(placement="before"), lr=0.1)]
>>> log = train_variants(variants, data, seeds=(0, 1), steps=1000)  # doctest: +SKIP
>>> log.test_accuracy.shape  # (variants, seeds, evaluations)  # doctest: +SKIP
(2, 2, 51)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from bnguide.data import Data
from bnguide.models import MLPSpec, StackedMLP, draw_weights
from bnguide.training.fit import single_thread
from bnguide.training.log import TrainLog
from bnguide.training.workers import train_in_processes

__all__ = [
    "BATCH_SEED_OFFSET",
    "Trainer",
    "Variant",
    "evaluation_steps",
    "train_variants",
]

#: The batch order of seed ``s`` comes from a generator seeded with ``s + BATCH_SEED_OFFSET``.
BATCH_SEED_OFFSET = 2**32


@dataclass(frozen=True)
class Variant:
    """One thing to train: an architecture and its optimizer settings.

    Parameters
    ----------
    name : str
        Label used in results and figures.
    spec : MLPSpec
        The architecture.
    lr : float
        SGD learning rate.
    momentum : float
        SGD momentum (PyTorch's convention: ``buf = momentum * buf + grad``); 0 is plain SGD.
    """

    name: str
    spec: MLPSpec
    lr: float
    momentum: float = 0.0

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"Variant {self.name!r}: lr must be positive, got {self.lr}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(
                f"Variant {self.name!r}: momentum must be in [0, 1), got {self.momentum}."
            )


def evaluation_steps(
    steps: int, every: int, *, dense_every: int | None = None, dense_until: int = 0
) -> np.ndarray:
    """Steps after which to evaluate: 0, every ``every`` steps, and ``steps`` itself.

    With ``dense_every``, evaluations before ``dense_until`` come every ``dense_every`` steps
    instead (early training changes fastest).

    Parameters
    ----------
    steps : int
        Length of the run.
    every : int
        Distance between evaluations.
    dense_every : int, optional
        Distance between evaluations before ``dense_until``.
    dense_until : int
        Where the dense part ends.

    Returns
    -------
    numpy.ndarray of int
        Sorted, unique, from 0 to ``steps``.
    """
    if steps < 1 or every < 1 or (dense_every is not None and dense_every < 1):
        raise ValueError(
            f"steps, every and dense_every must be positive, got {steps}, {every}, {dense_every}."
        )
    points = set(range(0, steps + 1, every)) | {steps}
    if dense_every is not None:
        points |= set(range(0, min(dense_until, steps) + 1, dense_every))
    return np.array(sorted(points), dtype=np.int64)


class _Block:
    """The variants that share one spec: a StackedMLP with members ordered (variant, seed)."""

    def __init__(self, spec, variant_ids, variants, n_seeds, device, dtype):
        self.variant_ids = variant_ids
        self.net = StackedMLP(spec, len(variant_ids) * n_seeds, device=device, dtype=dtype)
        # member m = (variant k, seed s) with m = k * n_seeds + s; it reads stream s.
        self.stream = torch.arange(n_seeds, device=device).repeat(len(variant_ids))
        lrs = [variants[v].lr for v in variant_ids for _ in range(n_seeds)]
        moms = [variants[v].momentum for v in variant_ids for _ in range(n_seeds)]
        self.params = list(self.net.parameters())
        shape = (-1, 1, 1)
        self.neg_lr = torch.tensor(lrs, device=device, dtype=dtype).neg().view(shape)
        # one Python float when all members share it (no per-step device sync)
        self.lr = lrs[0] if len(set(lrs)) == 1 else -self.neg_lr.view(-1)
        self.momentum = torch.tensor(moms, device=device, dtype=dtype).view(shape)
        self.use_momentum = any(m > 0 for m in moms)
        self.velocity = [torch.zeros_like(p) for p in self.params] if self.use_momentum else []
        self.loss_sum = torch.zeros(self.net.members, device=device, dtype=dtype)

    @torch.no_grad()
    def step(self, xb, yb):
        n_seeds = xb.shape[0]
        if self.net.members != n_seeds:  # several variants read each seed's batch
            xb, yb = xb.index_select(0, self.stream), yb.index_select(0, self.stream)
        if not self.use_momentum:  # plain SGD, fused with the backward pass
            self.loss_sum += self.net.sgd_step_(xb, yb, self.lr)
            return
        loss, grads = self.net.loss_and_grads(xb, yb)
        self.loss_sum += loss
        # buf = momentum * buf + grad; p -= lr * buf (torch.optim.SGD, dampening 0)
        for buf in self.velocity:
            buf.mul_(self.momentum)
        torch._foreach_add_(self.velocity, grads)
        torch._foreach_addcmul_(self.params, self.velocity, [self.neg_lr] * len(grads))


def _checked(variants, data, seeds, batch_size) -> tuple[list, list[int], tuple[int, ...]]:
    """The variants and seeds as lists and the shared layer sizes, or ValueError saying why not."""
    variants = list(variants)
    if not variants:
        raise ValueError("Give at least one Variant to train.")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"Variant names must be unique, got {names}.")
    sizes = {v.spec.sizes for v in variants}
    if len(sizes) != 1:
        raise ValueError(
            "All variants must share their layer sizes so that each seed starts them from "
            f"the same weights; got {sorted(sizes)}."
        )
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}.")
    n = len(data.x_train)
    if int(batch_size) != batch_size or not 2 <= batch_size <= n:
        raise ValueError(
            f"batch_size must be an integer between 2 and the {n} training examples, "
            f"got {batch_size} (batch statistics need at least 2 examples)."
        )
    (sizes,) = sizes
    if data.x_train.shape[1] != sizes[0]:
        raise ValueError(
            f"The data have {data.x_train.shape[1]} features but the nets expect {sizes[0]}."
        )
    return variants, seeds, sizes


class Trainer:
    """Trains several :class:`Variant` s over several seeds in lockstep.

    Parameters
    ----------
    variants : sequence of Variant
        What to train; names must be unique and all specs must share their layer sizes (so
        that every variant of a seed starts from the same weights).
    data : bnguide.data.Data
        Training and test tensors (their device is where training runs).
    seeds : sequence of int
        Each seed fixes the initial weights (:func:`bnguide.models.draw_weights`) and the batch
        order; every variant sees the same weights and batches for a given seed.
    batch_size : int
        Examples per step; each epoch is one permutation, the last partial batch is dropped.
    init_std : float
        Standard deviation of the Gaussian initial weights.
    dtype : torch.dtype, optional
        Parameter type; by default that of ``data``.

    Notes
    -----
    On a CPU, each step runs on one torch thread: a step is many small operations, which
    several threads slow down (the cores are better spent on worker processes, see
    :func:`train_variants`), and results do not depend on the machine's core count. Drive it
    with :meth:`step` and :meth:`evaluate`, or use :func:`train_variants`. :meth:`nets` gives
    the trained :class:`~bnguide.models.StackedMLP` of a variant.
    """

    def __init__(
        self,
        variants: Sequence[Variant],
        data: Data,
        *,
        seeds: Sequence[int] = (0, 1, 2),
        batch_size: int = 60,
        init_std: float = 0.1,
        dtype: torch.dtype | None = None,
    ):
        variants, seeds, sizes = _checked(variants, data, seeds, batch_size)
        self.variants, self.data, self.seeds = variants, data, seeds
        self.batch_size = int(batch_size)
        device, dtype = data.device, dtype or data.x_train.dtype
        specs: dict[MLPSpec, list[int]] = {}
        for i, v in enumerate(variants):
            specs.setdefault(v.spec, []).append(i)
        self.blocks = [
            _Block(spec, ids, variants, len(seeds), device, dtype) for spec, ids in specs.items()
        ]
        drawn = [draw_weights(sizes, init_std, s, dtype=dtype) for s in seeds]
        for block in self.blocks:
            per_layer = [torch.stack([d[l] for d in drawn]) for l in range(len(sizes) - 1)]
            k = len(block.variant_ids)
            block.net.load_weights_([w.repeat(k, 1, 1).to(device) for w in per_layer])
            block.net.train()
        self._gens = [torch.Generator().manual_seed(s + BATCH_SEED_OFFSET) for s in seeds]
        self._per_epoch = len(data.x_train) // self.batch_size
        self._order = None
        self.step_count = 0
        self._last_eval = 0
        on_cpu = torch.device(device).type == "cpu"
        self._threads = single_thread if on_cpu else contextlib.nullcontext

    def nets(self, name: str) -> tuple[StackedMLP, slice]:
        """The StackedMLP holding variant ``name`` and the slice of its members (one per seed)."""
        for block in self.blocks:
            for k, v in enumerate(block.variant_ids):
                if self.variants[v].name == name:
                    s = len(self.seeds)
                    return block.net, slice(k * s, (k + 1) * s)
        raise KeyError(f"No variant {name!r}.")

    def _batch_indices(self) -> torch.Tensor:
        j = self.step_count % self._per_epoch
        if j == 0:  # new epoch: a fresh permutation per seed
            perms = [torch.randperm(len(self.data.x_train), generator=g) for g in self._gens]
            self._order = torch.stack(perms).to(self.data.device)  # (S, N)
        b = self.batch_size
        return self._order[:, j * b : (j + 1) * b]  # (S, B)

    def step(self) -> None:
        """One SGD step of every member on its seed's next batch (on a CPU, on one thread)."""
        with self._threads():
            xb, yb = self._next_batch()
            for block in self.blocks:
                block.step(xb, yb)
        self.step_count += 1

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._batch_indices().reshape(-1)  # (S * B,)
        shape = (len(self.seeds), self.batch_size)
        xb = self.data.x_train.index_select(0, idx).view(*shape, -1)  # (S, B, D)
        yb = self.data.y_train.index_select(0, idx).view(shape)  # (S, B)
        return xb, yb

    @torch.no_grad()
    def evaluate(
        self,
        *,
        probe_layer: int = -1,
        probe_unit: int = 0,
        quantiles: Sequence[float] = (0.15, 0.5, 0.85),
        probe_examples: int = 1000,
        chunk: int = 5000,
    ) -> dict[str, np.ndarray]:
        """Test accuracy and quantiles of one hidden layer's activation inputs, per member.

        BN layers use their running statistics. Returns arrays shaped ``(V, S)`` for
        ``"test_accuracy"``, ``(V, S, Q)`` for ``"probe_unit"`` and ``"probe_all"``,
        ``(V, S, H, Q)`` for ``"probe_units"`` (every unit of the layer, over the first
        ``probe_examples`` test images) and ``(V, S)`` for ``"train_loss"`` (mean over the
        steps since the last call; the accumulator is reset).
        """
        x, y = self.data.x_test, self.data.y_test
        q = torch.tensor(quantiles, device=x.device, dtype=x.dtype)
        n_var, n_seeds = len(self.variants), len(self.seeds)
        out = {
            "test_accuracy": np.zeros((n_var, n_seeds)),
            "train_loss": np.zeros((n_var, n_seeds)),
            "probe_unit": np.zeros((n_var, n_seeds, len(q))),
            "probe_all": np.zeros((n_var, n_seeds, len(q))),
            "probe_units": None,
        }
        steps_since = self.step_count - self._last_eval
        self._last_eval = self.step_count
        for block in self.blocks:
            net = block.net
            net.eval()
            correct, unit, first = 0, [], []
            for start in range(0, len(x), chunk):
                logits, probes = net(x[start : start + chunk], probe=True)  # (M, b, C)
                correct = correct + (logits.argmax(-1) == y[start : start + chunk]).sum(1)
                z = probes[probe_layer]  # (M, b, H)
                unit.append(z[:, :, probe_unit])
                if start < probe_examples:
                    first.append(z[:, : probe_examples - start])
            net.train()
            acc = (correct / len(x)).cpu().numpy()  # (M,)
            p_unit = torch.quantile(torch.cat(unit, 1), q, dim=1).T.cpu().numpy()  # (M, Q)
            first = torch.cat(first, 1)  # (M, probe_examples, H)
            p_units = torch.quantile(first, q, dim=1).permute(1, 2, 0).cpu().numpy()  # (M, H, Q)
            p_all = torch.quantile(first.reshape(net.members, -1), q, dim=1).T.cpu().numpy()
            if out["probe_units"] is None:
                out["probe_units"] = np.zeros((n_var, n_seeds, *p_units.shape[1:]))
            loss = block.loss_sum / steps_since if steps_since else block.loss_sum * np.nan
            loss = loss.cpu().numpy()
            block.loss_sum.zero_()
            for k, v in enumerate(block.variant_ids):
                rows = slice(k * n_seeds, (k + 1) * n_seeds)
                out["test_accuracy"][v] = acc[rows]
                out["train_loss"][v] = loss[rows]
                out["probe_unit"][v] = p_unit[rows]
                out["probe_units"][v] = p_units[rows]
                out["probe_all"][v] = p_all[rows]
        return out


_MIN_PARALLEL_WORK = 20_000  # steps x (variant, seed) pairs worth starting processes for


def _choose_processes(processes, data, pairs, steps) -> int:
    on_cpu = data.device.type == "cpu"
    if processes is None:
        enough = pairs * steps >= _MIN_PARALLEL_WORK
        return min(torch.get_num_threads(), pairs) if on_cpu and enough else 1
    if int(processes) != processes or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes}.")
    if processes > 1 and not on_cpu:
        raise ValueError(
            f"processes={processes} trains on the CPU only; the data are on {data.device}. "
            "Pass processes=1 to train there in one process."
        )
    return min(int(processes), pairs)


def train_variants(
    variants: Sequence[Variant],
    data: Data,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 50_000,
    batch_size: int = 60,
    init_std: float = 0.1,
    eval_steps: Sequence[int] | None = None,
    probe_layer: int = -1,
    probe_unit: int = 0,
    quantiles: Sequence[float] = (0.15, 0.5, 0.85),
    probe_examples: int = 1000,
    progress: bool = False,
    dtype: torch.dtype | None = None,
    processes: int | None = None,
    report: Callable[[int], None] | None = None,
) -> TrainLog:
    """Train every variant for every seed and evaluate along the way.

    Parameters
    ----------
    variants, data, seeds, batch_size, init_std, dtype
        As for :class:`Trainer`.
    steps : int
        SGD steps per net.
    eval_steps : sequence of int, optional
        When to evaluate (0 = before training); by default
        ``evaluation_steps(steps, max(steps // 50, 1))``.
    probe_layer, probe_unit, quantiles, probe_examples
        Which activation inputs to summarize, as for :meth:`Trainer.evaluate`.
    progress : bool
        Show a progress bar.
    processes : int, optional
        Train in this many worker processes (CPU only), each with one torch thread and a share
        of the (variant, seed) pairs; see :mod:`bnguide.training.workers`. The result is the
        same up to float rounding. By default, on a CPU, as many as there are torch threads
        when the run is long enough to repay starting them (at least 20,000 steps over all
        pairs), else 1.
    report : callable, optional
        Called as ``report(n)`` each time ``n`` more steps are done (how worker processes
        count their progress).

    Returns
    -------
    TrainLog
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}.")
    if eval_steps is None:
        eval_steps = evaluation_steps(steps, max(steps // 50, 1))
    eval_steps = np.unique(np.asarray(eval_steps, dtype=np.int64))
    if len(eval_steps) == 0 or eval_steps[0] < 0 or eval_steps[-1] > steps:
        raise ValueError(f"eval_steps must lie between 0 and steps={steps}, got {eval_steps}.")
    variants, seeds, _ = _checked(variants, data, seeds, batch_size)
    n_hidden = len(variants[0].spec.hidden)
    if not -n_hidden <= probe_layer < n_hidden:
        raise ValueError(f"probe_layer {probe_layer} out of range for {n_hidden} hidden layers.")
    width = variants[0].spec.hidden[probe_layer]
    if not 0 <= probe_unit < width:
        raise ValueError(f"probe_unit {probe_unit} out of range for a layer of {width} units.")
    probe = {
        "probe_layer": probe_layer,
        "probe_unit": probe_unit,
        "quantiles": tuple(quantiles),
        "probe_examples": probe_examples,
    }
    processes = _choose_processes(processes, data, len(variants) * len(seeds), steps)
    if processes > 1:
        per_worker, seconds = train_in_processes(
            train_variants, variants, data, seeds=seeds, processes=processes,
            progress=progress, steps=int(steps), batch_size=batch_size, init_std=init_std,
            eval_steps=eval_steps, dtype=dtype, **probe,
        )  # fmt: skip
        return TrainLog.merge(per_worker, variants, seeds, seconds)
    trainer = Trainer(
        variants, data, seeds=seeds, batch_size=batch_size, init_std=init_std, dtype=dtype
    )
    records = []
    start = time.perf_counter()
    bar = tqdm(total=int(steps), disable=not progress, unit="step", mininterval=0.5)
    try:
        for target in eval_steps:
            while trainer.step_count < target:
                trainer.step()
                if trainer.step_count % 100 == 0:
                    bar.update(100)
                    if report is not None:
                        report(100)
            records.append(trainer.evaluate(**probe))
        while trainer.step_count < steps:
            trainer.step()
        if report is not None:
            report(int(steps) - 100 * (int(steps) // 100))
        bar.update(int(steps) - bar.n)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    stacked = {k: np.stack([r[k] for r in records], axis=2) for k in records[0]}
    bad = ~np.isfinite(stacked["train_loss"]) & (eval_steps > 0)  # (V, S, E)
    diverged_at = np.where(bad.any(2), eval_steps[bad.argmax(2)], -1)
    return TrainLog(
        names=tuple(v.name for v in variants),
        seeds=tuple(int(s) for s in seeds),
        steps=eval_steps,
        test_accuracy=stacked["test_accuracy"],
        train_loss=stacked["train_loss"],
        probe_unit=stacked["probe_unit"],
        probe_units=stacked["probe_units"],
        probe_all=stacked["probe_all"],
        quantiles=tuple(quantiles),
        diverged_at=diverged_at,
        seconds=seconds,
        settings={"steps": int(steps), "batch_size": batch_size, "init_std": init_std},
    )
