"""Synchronized batch normalization on ``torch.distributed``, from scratch.

When data parallelism splits a batch over processes, plain BN normalizes each process's slice
with that slice's statistics. :class:`SyncBatchNorm` normalizes with the statistics of the
whole, concatenated batch, so N processes with batch b compute exactly what one process with
batch N*b would. Per BN layer and training step it adds one ``all_gather`` in the forward pass
(count, mean and sum of squared deviations per channel: a two-pass, cancellation-free form) and
one ``all_reduce`` in the backward pass (the two per-channel gradient sums). Works with any
backend (gloo on CPU, nccl on GPU). Used in :doc:`/book/scale/sync-bn`.

Examples
--------
In every process of an initialized process group (under ``torchrun``, or
:func:`bnguide.distributed.launch`), swap the BN layers of a model before wrapping it in
``DistributedDataParallel``:

>>> model = SyncBatchNorm.convert_sync_batchnorm(model)  # doctest: +SKIP
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm as _TorchBatchNorm

from bnguide.norms.registry import PLAIN_BATCH_NORMS

__all__ = ["SyncBatchNorm", "sync_batch_norm"]


def _view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(1, -1, *([1] * (ndim - 2)))  # (C,) -> (1, C, 1, ...)


def _gather_stats(input, problem, group):
    """All-gather each rank's (count, mean, M2) and combine them (Chan et al.'s parallel formula).

    Returns the global mean and biased variance ``(C,)`` in float64 and the global count. A
    rank whose input failed a local check sends count -1 so that every rank raises together.
    """
    c = input.shape[1] if problem is None else None
    if problem is None:
        dims = (0, *range(2, input.dim()))
        n = input.numel() // c
        if n > 0:
            mean = input.mean(dims)  # (C,)
            m2 = (input - _view(mean, input.dim())).square().sum(dims)  # (C,)
        else:
            mean = m2 = input.new_zeros(c)
        count = torch.tensor([n], dtype=torch.float64, device=input.device)
        local = torch.cat([count, mean.double(), m2.double()])  # (2C + 1,)
    else:
        c = problem[1]
        local = torch.zeros(2 * c + 1, dtype=torch.float64, device=input.device)
        local[0] = -1
    world = dist.get_world_size(group)
    gathered = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(gathered, local, group=group)
    stats = torch.stack(gathered)  # (world, 2C + 1)
    counts = stats[:, 0]  # (world,)
    _raise_on_bad_ranks(counts.tolist(), problem, input, group)
    means, m2s = stats[:, 1 : c + 1], stats[:, c + 1 :]  # (world, C) each
    total = counts.sum()
    mean = (counts[:, None] * means).sum(0) / total  # (C,)
    m2 = m2s.sum(0) + (counts[:, None] * (means - mean).square()).sum(0)  # (C,)
    return mean, m2 / total, int(total.item())


def _raise_on_bad_ranks(counts, problem, input, group) -> None:
    # Every rank sees the same counts, so every rank raises the same way: no rank is left
    # waiting in a collective that the others will never call.
    if problem is not None:
        raise ValueError(problem[0])
    bad = [r for r, n in enumerate(counts) if n < 0]
    if bad:
        raise RuntimeError(
            f"SyncBatchNorm: rank {bad[0]}'s input failed its shape check (see the error "
            "raised on that rank); every rank stopped with it."
        )
    empty = [r for r, n in enumerate(counts) if n == 0]
    if empty:
        raise RuntimeError(
            f"SyncBatchNorm: rank {empty[0]} has an empty batch (0 samples) while training; "
            f"values per channel on each rank: {[int(n) for n in counts]}. Give every rank at "
            "least one sample per step, e.g. drop the last incomplete batch (drop_last=True) "
            "or split the data evenly."
        )
    if sum(counts) <= 1:
        raise ValueError(
            "Expected more than 1 value per channel when training, got input size "
            f"{list(input.shape)} on rank {dist.get_rank(group)} and {int(sum(counts))} "
            "value(s) per channel over all ranks."
        )


class _SyncBatchNormFunction(torch.autograd.Function):
    """Forward: all-gather statistics and normalize. Backward: all-reduce two gradient sums."""

    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, eps, momentum, group, problem):
        mean64, var64, count = _gather_stats(input, problem, group)
        if running_mean is not None and running_var is not None:
            running_mean.mul_(1 - momentum).add_(momentum * mean64.to(running_mean.dtype))
            unbiased = var64 * count / (count - 1)  # running_var keeps the unbiased variance
            running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
        ndim = input.dim()
        mean = _view(mean64.to(input.dtype), ndim)  # (1, C, 1, ...)
        invstd = torch.rsqrt(var64 + eps).to(input.dtype)  # (C,)
        x_hat = (input - mean) * _view(invstd, ndim)  # (N, C, *)
        out = x_hat
        if weight is not None:
            out = out * _view(weight, ndim)
        if bias is not None:
            out = out + _view(bias, ndim)
        ctx.save_for_backward(x_hat, weight, invstd)
        ctx.count, ctx.group = count, group
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x_hat, weight, invstd = ctx.saved_tensors
        ndim = grad_out.dim()
        dims = (0, *range(2, ndim))
        sum_dy = grad_out.sum(dims)  # (C,) local
        sum_dy_xhat = (grad_out * x_hat).sum(dims)  # (C,) local
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            both = torch.cat([sum_dy, sum_dy_xhat])  # (2C,): one all_reduce for both sums
            dist.all_reduce(both, op=dist.ReduceOp.SUM, group=ctx.group)
            mean_dy, mean_dy_xhat = (both / ctx.count).chunk(2)  # global means, (C,) each
            scale = invstd if weight is None else invstd * weight  # (C,)
            grad_input = (
                grad_out - _view(mean_dy, ndim) - x_hat * _view(mean_dy_xhat, ndim)
            ) * _view(scale, ndim)
        # Parameter gradients stay local, as in torch.nn.SyncBatchNorm: summing (or, with
        # DDP, averaging) them over ranks is the data-parallel wrapper's job.
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = sum_dy_xhat
        if ctx.needs_input_grad[2]:
            grad_bias = sum_dy
        return grad_input, grad_weight, grad_bias, None, None, None, None, None, None


def sync_batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    momentum: float = 0.1,
    eps: float = 1e-5,
    process_group=None,
) -> torch.Tensor:
    """Training-mode batch norm with statistics over the batches of all ranks of a group.

    Every rank of ``process_group`` must call it (it communicates). Running statistics, when
    given, are updated in place with the global mean and unbiased variance, identically on
    every rank.

    Parameters
    ----------
    input : torch.Tensor
        This rank's slice of the batch, ``(N_rank, C, *)``; ``N_rank`` may differ across ranks.
    running_mean, running_var : torch.Tensor or None
        ``(C,)`` buffers to update, or None.
    weight, bias : torch.Tensor, optional
        ``(C,)`` affine parameters.
    momentum : float
        Weight of this step's statistics in the running averages.
    eps : float
        Added to the variance.
    process_group : optional
        The group to synchronize over (default: the whole world).

    Returns
    -------
    torch.Tensor
        ``(N_rank, C, *)``: this rank's slice of the normalized concatenated batch.
    """
    group = process_group if process_group is not None else dist.group.WORLD
    if input.dim() < 2:
        raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")
    return _SyncBatchNormFunction.apply(
        input, weight, bias, running_mean, running_var, eps, momentum, group, None
    )


class SyncBatchNorm(_TorchBatchNorm):
    """Batch norm synchronized across processes, mirroring ``torch.nn.SyncBatchNorm``.

    In training mode the statistics are those of the batches of all ranks together, so the
    forward output, the input and parameter gradients (summed over ranks) and the running
    statistics equal single-process BN on the concatenated batch. In eval mode it is plain BN
    with the running statistics and does not communicate. Needs an initialized process group
    in training mode; every rank must run the same model.

    Parameters
    ----------
    num_features : int
        Number of channels ``C``.
    eps : float
        Added to the variance.
    momentum : float or None
        Weight of the new batch in the running averages; None for a cumulative average.
    affine : bool
        Learn per-channel ``weight`` (init 1) and ``bias`` (init 0).
    track_running_stats : bool
        Keep ``running_mean``, ``running_var`` and ``num_batches_tracked`` buffers.
    process_group : optional
        Group to synchronize over (default: the whole world).
    bias : bool, keyword-only
        With ``affine``, whether to learn the shift (as torch's ``bias=False``).

    Parameters, buffers, reset and state_dict versioning are inherited from torch's
    ``_BatchNorm``, as ``torch.nn.SyncBatchNorm`` does, so ``isinstance`` filters find it.

    Shape
    -----
    Input ``(N, C, *)`` with at least 2 dimensions; output the same shape.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group=None,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        # parameters, buffers, reset and state_dict versioning: torch's _BatchNorm (as torch's
        # own SyncBatchNorm), so isinstance filters and old checkpoints work
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )
        self.process_group = process_group
        self._agreed_groups: set[int] = set()  # groups whose ranks agree on num_features

    def _local_problem(self, input: torch.Tensor) -> tuple[str, int] | None:
        # Checked locally but reported through the statistics all_gather (see _gather_stats).
        if input.dim() < 2:
            return f"expected at least 2D input (got {input.dim()}D input)", self.num_features
        if input.shape[1] != self.num_features:
            return (
                f"SyncBatchNorm: expected input with {self.num_features} channels, got input "
                f"of shape {list(input.shape)} on rank {dist.get_rank(self._group())}.",
                self.num_features,
            )
        return None

    def _group(self):
        return self.process_group if self.process_group is not None else dist.group.WORLD

    def _check_ranks_agree(self, device: torch.device) -> None:
        # Once per group: ranks built with different num_features would all_gather tensors of
        # different sizes, which no backend can be trusted to report, so compare sizes first.
        group = self._group()
        if id(group) in self._agreed_groups:
            return
        mine = torch.tensor([self.num_features], dtype=torch.long, device=device)
        sizes = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
        dist.all_gather(sizes, mine, group=group)
        sizes = [int(s) for s in sizes]
        if len(set(sizes)) > 1:
            raise RuntimeError(
                "SyncBatchNorm: ranks disagree on the number of channels: "
                + ", ".join(f"rank {r} has {s}" for r, s in enumerate(sizes))
                + ". Every rank must build the same model."
            )
        self._agreed_groups.add(id(group))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        use_batch_stats = self.training or not self.track_running_stats
        if not self.training:
            # Eval: no communication, as torch.nn.SyncBatchNorm (batch stats stay per-rank).
            if input.dim() < 2:
                raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")
            return nn.functional.batch_norm(
                input,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                use_batch_stats,
                0.0,
                self.eps,
            )
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "SyncBatchNorm needs an initialized process group in training mode: call "
                "torch.distributed.init_process_group(...) in every process first (e.g. run "
                "under torchrun, or use bnguide.distributed.launch), or use BatchNorm for "
                "single-process training."
            )
        self._check_ranks_agree(input.device)
        factor = 0.0
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
            else:
                factor = self.momentum
        return _SyncBatchNormFunction.apply(
            input,
            self.weight,
            self.bias,
            self.running_mean,
            self.running_var,
            self.eps,
            factor,
            self._group(),
            self._local_problem(input),
        )

    @classmethod
    def convert_sync_batchnorm(cls, module: nn.Module, process_group=None) -> nn.Module:
        """Return ``module`` with every BatchNorm layer replaced by a :class:`SyncBatchNorm`.

        Converts torch's and :mod:`bnguide.nn`'s BatchNorm1d/2d/3d, sharing their parameters
        and buffers and keeping the train/eval mode; mirrors
        ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``.
        """
        out = module
        if isinstance(module, PLAIN_BATCH_NORMS):
            out = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
            )
            if module.affine:
                with torch.no_grad():
                    out.weight = module.weight
                    out.bias = module.bias
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.train(module.training)
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
