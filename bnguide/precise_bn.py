"""Which statistics a trained batch-norm network normalizes with when it is evaluated.

Two tools for BN's evaluation statistics:

- :func:`recompute_bn_stats` replaces every BN layer's running statistics by the exact averages of
  Algorithm 2 of Ioffe & Szegedy (2015): the mean of the mini-batch means and the mean of the
  unbiased mini-batch variances, measured with the final weights ("precise BN", Wu & Johnson
  2021). Run on unlabeled data from a new domain, it re-estimates the statistics for that domain.
- :func:`batch_statistics` is a context manager under which BN layers normalize with the current
  batch's statistics, as in training, while their running statistics stay untouched.

Used by the chapters *Normalization during evaluation* and *Stability issues*.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from bnguide.norms.registry import has_running_stats

__all__ = ["batch_statistics", "bn_layers", "recompute_bn_stats"]

_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def bn_layers(model: nn.Module) -> list[nn.Module]:
    """The batch-norm layers of ``model`` that keep running statistics.

    A layer qualifies when :func:`bnguide.norms.registry.is_batch_norm` says it is one and it
    has ``running_mean`` and ``running_var`` tensors (torch's and :mod:`bnguide.nn`'s
    ``BatchNorm1d/2d/3d``, Batch Renorm, ghost and synchronized BN).

    Parameters
    ----------
    model : torch.nn.Module
        Any network (or a single BN layer).

    Returns
    -------
    list of torch.nn.Module
        In the order of ``model.modules()``.
    """
    return [m for m in model.modules() if has_running_stats(m)]


def _require_bn(model: nn.Module, caller: str) -> list[nn.Module]:
    layers = bn_layers(model)
    if not layers:
        raise ValueError(
            f"{caller}: the model has no batch-norm layer with running statistics "
            "(track_running_stats=False layers always use batch statistics). "
            "Pass a network that contains BatchNorm layers."
        )
    return layers


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every BN layer's running statistics to their exact averages over ``batches``.

    The network runs forward in training mode on each batch (so every layer sees the inputs it
    saw during training, normalized with batch statistics). For each BN layer and channel,

    .. math::
        \\mathrm{E}[x] = \\frac{1}{K}\\sum_k \\mu_{B_k}, \\qquad
        \\mathrm{Var}[x] = \\frac{1}{K}\\sum_k \\frac{m_k}{m_k - 1}\\sigma^2_{B_k}

    over the K batches, where :math:`m_k` is the number of values per channel in batch k. With
    equal batches this is Algorithm 2 of Ioffe & Szegedy (2015). Parameters are not changed;
    each module's training flag is restored afterwards; ``num_batches_tracked`` becomes K.

    Parameters
    ----------
    model : torch.nn.Module
        A network with BN layers (``torch.nn.BatchNorm*d`` or :mod:`bnguide.nn`).
    batches : iterable of torch.Tensor
        Model inputs, e.g. training images (labels are not needed). Each needs at least two values
        per channel.

    Returns
    -------
    int
        The number of batches used.

    Raises
    ------
    ValueError
        If the model has no BN layer, ``batches`` is empty, or a batch has one value per channel.
    """
    layers = _require_bn(model, "recompute_bn_stats")
    sums: dict[nn.Module, list[torch.Tensor]] = {m: [0.0, 0.0] for m in layers}

    def record(module: nn.Module, args: tuple) -> None:
        x = args[0]
        dims = [d for d in range(x.dim()) if d != 1]  # all but channels
        m = x.numel() // x.shape[1]
        if m < 2:
            raise ValueError(
                f"recompute_bn_stats needs at least 2 values per channel in every batch, got a "
                f"batch of shape {tuple(x.shape)}. Use batches of 2 or more examples."
            )
        sums[module][0] = sums[module][0] + x.mean(dim=dims)  # (C,)
        sums[module][1] = sums[module][1] + x.var(dim=dims, correction=1)  # (C,) unbiased

    modes = {m: m.training for m in model.modules()}
    hooks = [m.register_forward_pre_hook(record) for m in layers]
    count = 0
    try:
        model.train()
        for batch in batches:
            model(batch)
            count += 1
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)
    if count == 0:
        raise ValueError("recompute_bn_stats got no batches: pass at least one batch of inputs.")
    # The forward passes also moved the layers' own running averages: overwrite them.
    for layer in layers:
        mean_sum, var_sum = sums[layer]
        layer.running_mean.copy_(mean_sum / count)
        layer.running_var.copy_(var_sum / count)
        if isinstance(getattr(layer, "num_batches_tracked", None), torch.Tensor):
            layer.num_batches_tracked.fill_(count)
    return count


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Make BN layers normalize with batch statistics, leaving their running statistics intact.

    Inside the ``with`` block every BN layer is in training mode; on exit each layer's buffers
    (running mean, variance, batch count) and training flag are restored exactly. Everything else
    in the model keeps its mode (dropout stays off in an evaluated model).

    Parameters
    ----------
    model : torch.nn.Module
        A network with BN layers, usually in eval mode.

    Yields
    ------
    torch.nn.Module
        The same model.

    Examples
    --------
    >>> with torch.no_grad(), batch_statistics(model):  # doctest: +SKIP
    ...     logits = model(test_batch)
    """
    layers = _require_bn(model, "batch_statistics")
    saved = []
    for layer in layers:
        buffers = {
            name: getattr(layer, name).clone()
            for name in _BUFFERS
            if isinstance(getattr(layer, name, None), torch.Tensor)
        }
        saved.append((layer, layer.training, buffers))
        layer.train()
    try:
        yield model
    finally:
        with torch.no_grad():
            for layer, mode, buffers in saved:
                for name, value in buffers.items():
                    getattr(layer, name).copy_(value)
                layer.train(mode)
