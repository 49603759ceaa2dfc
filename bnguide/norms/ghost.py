"""Ghost batch normalization (Hoffer, Hubara & Soudry 2017): BN statistics over virtual batches.

A large batch is cut into "ghost" batches of ``virtual_batch_size`` examples and each is
normalized with its own statistics, bringing back the noise of small-batch BN while the
gradient step still averages over the whole batch. Running statistics are updated once per
ghost batch, in order. In eval mode it is plain BN with the running statistics.
Used in :doc:`/book/scale/ghost-bn`.

Examples
--------
>>> import torch
>>> layer = GhostBatchNorm(16, virtual_batch_size=8)
>>> y = layer(torch.randn(32, 16))  # four ghost batches, each normalized on its own
>>> y.reshape(4, 8, 16).mean(1).abs().max() < 1e-5
tensor(True)
"""

from __future__ import annotations

import math

import torch

from bnguide.functional import batch_norm
from bnguide.nn import NormBase

__all__ = ["GhostBatchNorm", "ghost_batch_norm"]


def _view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(1, -1, *([1] * (ndim - 2)))  # (C,) -> (1, C, 1, ...)


def _normalize(x: torch.Tensor, dims: tuple[int, ...], eps: float):
    mean = x.mean(dims, keepdim=True)
    var = (x - mean).square().mean(dims, keepdim=True)  # biased, two-pass
    return (x - mean) * torch.rsqrt(var + eps), mean, var


def ghost_batch_norm(
    input: torch.Tensor,
    virtual_batch_size: int,
    running_mean: torch.Tensor | None = None,
    running_var: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = True,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    num_batches_tracked: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batch norm with statistics per ghost batch of ``virtual_batch_size`` examples.

    Examples ``[0, m)``, ``[m, 2m)``, ... form the ghost batches; a shorter last one keeps what
    is left. In training, each ghost batch updates the running statistics in turn, exactly as
    if BN had seen the ghost batches one after another.

    Parameters
    ----------
    input : torch.Tensor
        ``(N, C, *)``.
    virtual_batch_size : int
        Examples per ghost batch, ``m >= 1``; ``m >= N`` is plain BN.
    running_mean, running_var : torch.Tensor, optional
        ``(C,)`` buffers, updated in training (unbiased variance, momentum weights the new
        batch) and used for normalization otherwise.
    weight, bias : torch.Tensor, optional
        ``(C,)`` affine parameters.
    training : bool
        Ghost-batch statistics (True) or the running statistics (False).
    momentum : float or None
        Weight of each ghost batch in the running averages; None is a cumulative average,
        which needs ``num_batches_tracked``.
    eps : float
        Added to the variance.
    num_batches_tracked : torch.Tensor, optional
        Counter incremented in place once per ghost batch.

    Returns
    -------
    torch.Tensor
        Same shape as ``input``.
    """
    if not training:
        return batch_norm(input, running_mean, running_var, weight, bias, False, 0.0, eps)
    if input.dim() < 2:
        raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")
    if virtual_batch_size < 1:
        raise ValueError(
            f"virtual_batch_size must be a positive integer, got {virtual_batch_size}."
        )
    n, c, spatial = input.shape[0], input.shape[1], input.shape[2:]
    m = min(virtual_batch_size, n)
    full, tail = divmod(n, m) if m else (0, 0)
    per_sample = math.prod(spatial)
    if m * per_sample <= 1 or 0 < tail * per_sample <= 1:
        raise ValueError(
            "Expected more than 1 value per channel in every ghost batch when training, got "
            f"input size {list(input.shape)} with virtual_batch_size={virtual_batch_size}: "
            f"the ghost batches hold {m} and {tail} example(s). Pick a batch size whose "
            "remainder after dividing by virtual_batch_size is not 1."
        )
    pieces, stats = [], []
    ghosts = input[: full * m].reshape(full, m, c, *spatial)  # (G, m, C, *)
    x_hat, mean, var = _normalize(ghosts, (1, *range(3, ghosts.dim())), eps)  # (G, 1, C, 1..)
    pieces.append(x_hat.reshape(full * m, c, *spatial))
    stats += [(mean[g].flatten(), var[g].flatten(), m * per_sample) for g in range(full)]
    if tail:
        x_hat, mean, var = _normalize(input[full * m :], (0, *range(2, input.dim())), eps)
        pieces.append(x_hat)
        stats.append((mean.flatten(), var.flatten(), tail * per_sample))
    out = torch.cat(pieces) if len(pieces) > 1 else pieces[0]  # (N, C, *)
    if running_mean is not None and running_var is not None:
        _update_running_stats(stats, running_mean, running_var, momentum, num_batches_tracked)
    if weight is not None:
        out = out * _view(weight, input.dim())
    if bias is not None:
        out = out + _view(bias, input.dim())
    return out


@torch.no_grad()
def _update_running_stats(stats, running_mean, running_var, momentum, num_batches_tracked):
    # One exponential-average step per ghost batch, in batch order.
    for mean, var, count in stats:
        if num_batches_tracked is not None:
            num_batches_tracked.add_(1)
        if momentum is None:
            if num_batches_tracked is None:
                raise ValueError("momentum=None (cumulative average) needs num_batches_tracked.")
            factor = 1.0 / float(num_batches_tracked)
        else:
            factor = momentum
        running_mean.mul_(1 - factor).add_(factor * mean)
        running_var.mul_(1 - factor).add_(factor * var * count / (count - 1))


class GhostBatchNorm(NormBase):
    """Ghost batch normalization; parameters and buffers named as in ``torch.nn.BatchNorm2d``.

    Parameters
    ----------
    num_features : int
        Number of channels ``C``.
    virtual_batch_size : int
        Examples per ghost batch.
    eps, momentum, affine, track_running_stats
        As in ``torch.nn.BatchNorm2d``; the running statistics move once per ghost batch.

    Shape
    -----
    Input ``(N, C, *)``; output the same shape. A state_dict loads into ``torch.nn.BatchNorm*d``
    (they compute the same function in eval mode).
    """

    _version = 2  # num_batches_tracked: version-1 checkpoints load, as torch's batch norm
    _repr_positional = ("num_features",)
    _repr_keywords = ("virtual_batch_size", "eps", "momentum", "affine", "track_running_stats")

    def __init__(
        self,
        num_features: int,
        virtual_batch_size: int = 32,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        if virtual_batch_size < 1:
            raise ValueError(
                f"virtual_batch_size must be a positive integer, got {virtual_batch_size}."
            )
        self.num_features = num_features
        self.virtual_batch_size = virtual_batch_size
        self.eps = eps
        self.momentum = momentum
        stats = {"running_mean": 0.0, "running_var": 1.0}
        super().__init__(num_features, affine, True, stats, track_running_stats, device, dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() < 2 or input.shape[1] != self.num_features:
            raise ValueError(
                f"GhostBatchNorm({self.num_features}) expects input of shape "
                f"(N, {self.num_features}, *), got {list(input.shape)}."
            )
        use_batch_stats = self.training or not self.track_running_stats
        track = self.training and self.track_running_stats
        return ghost_batch_norm(
            input,
            self.virtual_batch_size,
            self.running_mean if track or not use_batch_stats else None,
            self.running_var if track or not use_batch_stats else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=self.momentum,
            eps=self.eps,
            num_batches_tracked=self.num_batches_tracked if track else None,
        )
