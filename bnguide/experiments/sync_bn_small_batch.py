"""Data parallelism with tiny per-process batches: per-process BN, synchronized BN, one process.

``world_size`` CPU processes (gloo on 127.0.0.1, :func:`bnguide.distributed.launch`) train the
small CNN on a Fashion-MNIST subset, each on its slice of every global batch, gradients averaged
with one ``all_reduce`` per step. With plain BN every process normalizes with the statistics of
its own few examples; with :class:`bnguide.norms.sync.SyncBatchNorm` with those of the
global batch. A single process training on the same global batches is the reference. The same
runs time each step, and a micro-benchmark times one BN layer's forward and backward alone with
and without synchronization. Used in :doc:`/book/scale/sync-bn`.

Examples
--------
>>> comm_per_step((8, 16, 32), world_size=4)  # what SyncBatchNorm adds per step
(6, 4128)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

import bnguide.nn as bnn
from bnguide.distributed import launch
from bnguide.models.small_cnn import load_subset, small_cnn
from bnguide.norms.sync import SyncBatchNorm
from bnguide.training.fit import evaluate, train

__all__ = [
    "NAME",
    "DESCRIPTION",
    "VARIANTS",
    "Config",
    "Result",
    "check_equivalence",
    "comm_per_step",
    "run",
]

NAME = "sync-bn-small-batch"
DESCRIPTION = "4 processes with 2 or 8 examples each: per-process BN, SyncBatchNorm, one process"
VARIANTS = ("local", "sync", "single")  # per-process BN, synchronized BN, one process


@dataclass(frozen=True)
class Config:
    """Settings; the defaults are the scale the book shows."""

    world_size: int = 4
    per_rank_batches: tuple[int, ...] = (2, 8)
    steps: int = 200
    lr: float = 0.02
    sgd_momentum: float = 0.9
    train_size: int = 4096
    test_size: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)
    timing_repeats: int = 20  # micro-benchmark repetitions per batch size
    timeout_s: float = 540.0  # for the whole multi-process part
    dataset: str = "fashion-mnist"

    def __post_init__(self) -> None:
        if self.world_size < 2:
            raise ValueError(f"world_size must be at least 2, got {self.world_size}.")
        if not self.per_rank_batches or min(self.per_rank_batches) < 1:
            raise ValueError(
                f"per_rank_batches must be positive integers, got {self.per_rank_batches}."
            )
        if not self.seeds:
            raise ValueError("seeds must not be empty.")


@dataclass
class Result:
    """Per variant (``"local"``, ``"sync"``, ``"single"``):

    ``loss[v]``: ``(seeds, batches, steps)`` training loss of the global batch;
    ``test_acc[v]``: ``(seeds, batches)`` test accuracy in eval mode (rank 0's model);
    ``step_ms[v]``: ``(seeds, batches)`` wall-clock milliseconds per training step.
    ``layer_ms``: ``{"local": ..., "sync": ...}`` median ms of one BN layer's forward and
    backward, ``(batches,)``. ``collectives`` and ``bytes``: what synchronized BN adds per
    training step (see :func:`comm_per_step`)."""

    config: Config
    per_rank_batches: np.ndarray
    loss: dict[str, np.ndarray]
    test_acc: dict[str, np.ndarray]
    step_ms: dict[str, np.ndarray]
    layer_ms: dict[str, np.ndarray]
    collectives: int
    bytes: int


def comm_per_step(
    channels: tuple[int, ...], world_size: int, grad_bytes: int = 4
) -> tuple[int, int]:
    """Collectives and bytes received per rank that SyncBatchNorm adds to one training step.

    Per BN layer with ``C`` channels: one ``all_gather`` of ``2C + 1`` float64 numbers per rank
    (count, means, sums of squared deviations) in the forward pass and one ``all_reduce`` of
    ``2C`` gradient sums in the backward pass. Bytes count the gathered tensors and one copy of
    the reduced one (what any all_reduce algorithm must deliver).

    Parameters
    ----------
    channels : tuple of int
        Channels of each BN layer.
    world_size : int
        Number of processes.
    grad_bytes : int
        Bytes per gradient number (4 for float32).

    Returns
    -------
    (collectives, bytes) : tuple of int
    """
    collectives = 2 * len(channels)
    gathered = sum(world_size * (2 * c + 1) * 8 for c in channels)
    reduced = sum(2 * c * grad_bytes for c in channels)
    return collectives, gathered + reduced


def _average_gradients(model, world_size: int) -> None:
    # What DistributedDataParallel does, in one all_reduce over all gradients.
    grads = [p.grad for p in model.parameters()]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _train(model, data, batch, config, seed, rank=0, world_size=1, distributed=False):
    """Train on slices ``[rank*batch, (rank+1)*batch)`` of global batches of ``batch*world``."""
    x, y, xt, yt = data
    if distributed:
        dist.barrier()
    start = time.perf_counter()
    losses = train(
        model,
        x,
        y,
        batch_size=batch,
        steps=config.steps,
        lr=config.lr,
        momentum=config.sgd_momentum,
        seed=seed,
        shard=(rank, world_size),
        before_update=(lambda *_: _average_gradients(model, world_size)) if distributed else None,
    )
    if distributed:
        dist.barrier()
    step_ms = (time.perf_counter() - start) / config.steps * 1e3
    accuracy = evaluate(model, xt, yt)[1] if rank == 0 else float("nan")
    return losses.numpy(), accuracy, step_ms


def _layer_ms(layer, batch, channels, repeats) -> float:
    # Median time of one forward + backward through a BN layer (a conv stage's shape).
    x = torch.randn(batch, channels, 7, 7, requires_grad=True)
    upstream = torch.randn(batch, channels, 7, 7)
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        layer(x).backward(upstream)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def _rank_main(rank, world_size, config, data):
    """Runs in every process: all distributed runs, then the micro-benchmark."""
    out = {"local": [], "sync": [], "layer": []}
    for seed in config.seeds:
        for batch in config.per_rank_batches:
            for variant in ("local", "sync"):
                torch.manual_seed(seed)  # the same initial weights on every rank
                model = small_cnn("batch")
                if variant == "sync":
                    model = SyncBatchNorm.convert_sync_batchnorm(model)
                out[variant].append(
                    _train(model, data, batch, config, seed, rank, world_size, distributed=True)
                )
    for batch in config.per_rank_batches:
        local = _layer_ms(bnn.BatchNorm2d(16), batch, 16, config.timing_repeats)
        synced = _layer_ms(SyncBatchNorm(16), batch, 16, config.timing_repeats)
        out["layer"].append((local, synced))
    return out


def run(config: Config = Config(), progress: bool = False) -> Result:
    """Run the distributed and single-process trainings.

    Parameters
    ----------
    config : Config
        The settings; the defaults are the scale the book shows.
    progress : bool
        Report progress while running.

    Returns
    -------
    Result
        See :class:`Result`.
    """
    data = load_subset(config.train_size, config.test_size, config.dataset)
    if progress:
        print(f"{NAME}: {config.world_size} processes training ...", flush=True)
    ranks = launch(_rank_main, config.world_size, config, data, timeout=config.timeout_s)
    shape = (len(config.seeds), len(config.per_rank_batches))
    loss = {v: np.zeros((*shape, config.steps)) for v in VARIANTS}
    acc = {v: np.zeros(shape) for v in VARIANTS}
    ms = {v: np.zeros(shape) for v in VARIANTS}
    for v in ("local", "sync"):
        for k in range(shape[0] * shape[1]):
            i, j = divmod(k, shape[1])
            # equal slices: the global batch's loss is the mean of the ranks' losses
            loss[v][i, j] = np.mean([r[v][k][0] for r in ranks], axis=0)
            acc[v][i, j] = ranks[0][v][k][1]
            ms[v][i, j] = ranks[0][v][k][2]
    for i, seed in enumerate(config.seeds):
        for j, batch in enumerate(config.per_rank_batches):
            torch.manual_seed(seed)
            model = small_cnn("batch")
            loss["single"][i, j], acc["single"][i, j], ms["single"][i, j] = _train(
                model, data, batch * config.world_size, config, seed
            )
    layer = np.array(ranks[0]["layer"])  # (batches, 2)
    channels = tuple(
        m.num_features for m in small_cnn("batch").modules() if isinstance(m, bnn.BatchNorm2d)
    )
    collectives, nbytes = comm_per_step(channels, config.world_size)
    return Result(
        config,
        np.array(config.per_rank_batches),
        loss,
        acc,
        ms,
        {"local": layer[:, 0], "sync": layer[:, 1]},
        collectives,
        nbytes,
    )


def _equivalence_rank(rank, world_size, sizes, channels, seed):
    # Every rank draws the same global batch; rank r takes rows [sum(sizes[:r]), ...).
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), channels, 5, 5, generator=g) * 3 + 2  # (N, C, 5, 5)
    upstream = torch.randn(x.shape, generator=g)
    weight, bias = torch.randn(channels, generator=g), torch.randn(channels, generator=g)
    start, stop = sum(sizes[:rank]), sum(sizes[: rank + 1])

    ours = SyncBatchNorm(channels)
    reference = torch.nn.BatchNorm2d(channels)  # one process, the concatenated batch
    for layer in (ours, reference):
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
    x_ref = x.clone().requires_grad_(True)
    out_ref = reference(x_ref)
    out_ref.backward(upstream)
    x_mine = x[start:stop].clone().requires_grad_(True)
    out = ours(x_mine)
    out.backward(upstream[start:stop])
    grad_weight = ours.weight.grad.clone()
    dist.all_reduce(grad_weight)  # parameter gradients are summed over ranks

    def diff(a, b):  # relative to the reference's scale when that exceeds 1
        a, b = a.detach(), b.detach()
        return ((a - b).abs().max() / b.abs().max().clamp(min=1)).item()

    return {
        "output": diff(out, out_ref[start:stop]),
        "input gradient": diff(x_mine.grad, x_ref.grad[start:stop]),
        "weight gradient (summed over ranks)": diff(grad_weight, reference.weight.grad),
        "running_mean": diff(ours.running_mean, reference.running_mean),
        "running_var": diff(ours.running_var, reference.running_var),
    }


def check_equivalence(
    sizes: tuple[int, ...] = (3, 5), channels: int = 4, seed: int = 0
) -> dict[str, float]:
    """Largest float32 differences between SyncBatchNorm over ``len(sizes)`` processes (rank
    ``r`` holding ``sizes[r]`` examples) and torch's BatchNorm2d on the concatenated batch,
    over all ranks, for one training step; relative to the reference's largest magnitude
    where that exceeds 1 (float32 rounding grows with the size of the numbers).

    Parameters
    ----------
    sizes : tuple of int
        Examples held by each rank (one process per entry).
    channels : int
        Channels of the random ``(N, C, 5, 5)`` batch.
    seed : int
        Seeds the batch, the upstream gradient and the affine parameters.

    Returns
    -------
    dict of str to float
        The largest difference over all ranks for the output, the input gradient, the weight
        gradient (summed over ranks) and the two running statistics.
    """
    ranks = launch(_equivalence_rank, len(sizes), tuple(sizes), channels, seed, timeout=120)
    return {key: max(r[key] for r in ranks) for key in ranks[0]}
