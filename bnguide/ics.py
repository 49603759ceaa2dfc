"""Internal covariate shift, measured two ways.

*Distributional* (Ioffe & Szegedy 2015): how the distribution of a layer's inputs moves during
training — :func:`wasserstein_1d` between snapshots of the same units on a fixed probe batch,
and :func:`distribution_shift` over a whole run.

*Optimization* (Santurkar et al. 2018, Definition 2.1): for layer ``i`` at step ``t``, compare
the gradient ``G`` of its weight with the gradient ``G'`` it would have, on the same batch,
after the layers before it took their step — :func:`gradient_shift`. If the layers below
shifting under layer ``i`` were a problem, ``G'`` would differ much from ``G``.

Used in chapter *Why BN works: internal covariate shift*.

Examples
--------
>>> import torch
>>> from bnguide.ics import wasserstein_1d
>>> a = torch.randn(1000, 3, dtype=torch.float64)  # (N, C): 1000 values of 3 units
>>> w1 = wasserstein_1d(a, a + 0.5)  # (C,): a shift by 0.5 moves every unit by 0.5
>>> torch.allclose(w1, torch.full((3,), 0.5, dtype=torch.float64))
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor
from torch.func import grad, vmap

__all__ = ["distribution_shift", "gradient_shift", "wasserstein_1d"]

LossFn = Callable[..., Tensor]  # loss_fn(params: dict[str, Tensor], *batch) -> scalar


def wasserstein_1d(a: Tensor, b: Tensor) -> Tensor:
    """The 1-Wasserstein distance between two equally sized samples, per column.

    Parameters
    ----------
    a, b : Tensor
        ``(N, C)``: N values of each of C units at two moments of training.

    Returns
    -------
    Tensor
        ``(C,)``: the mean absolute difference of the sorted samples (the area between the two
        empirical distribution functions).
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(
            f"wasserstein_1d needs two (N, C) samples of the same shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}. Record both snapshots on the same probe batch."
        )
    return (a.sort(dim=0).values - b.sort(dim=0).values).abs().mean(dim=0)


def distribution_shift(
    snapshots: Tensor, *, reference: str = "previous", relative: bool = False
) -> Tensor:
    """How far each snapshot of a layer's inputs is from another, averaged over units.

    Parameters
    ----------
    snapshots : Tensor
        ``(T, N, C)``: the inputs of C units on the same N probe examples at T checkpoints.
    reference : {"previous", "first"}
        Compare each snapshot with the one before it (how fast the distribution moves), or
        with the first (how far it has drifted since initialisation).
    relative : bool
        Divide each unit's distance by that unit's standard deviation in the later snapshot, so
        that layers of different scale can be compared.

    Returns
    -------
    Tensor
        ``(T - 1,)``: mean over units of :func:`wasserstein_1d` (relative or not).
    """
    if snapshots.dim() != 3 or snapshots.shape[0] < 2:
        raise ValueError(
            f"snapshots must have shape (T, N, C) with T >= 2, got {tuple(snapshots.shape)}."
        )
    if reference not in ("previous", "first"):
        raise ValueError(f"reference must be 'previous' or 'first', got {reference!r}.")
    later = snapshots[1:]  # (T-1, N, C)
    earlier = snapshots[:-1] if reference == "previous" else snapshots[:1].expand_as(later)
    out = []
    for a, b in zip(later, earlier, strict=True):
        w1 = wasserstein_1d(a, b)  # (C,)
        if relative:
            w1 = w1 / a.std(dim=0, unbiased=False).clamp_min(torch.finfo(a.dtype).tiny)
        out.append(w1.mean())
    return torch.stack(out)


def _check_layers(params: Mapping[str, Tensor], layers) -> None:
    for weight, names in layers:
        missing = [n for n in (weight, *names) if n not in params]
        if missing:
            raise KeyError(
                f"gradient_shift: parameter(s) {missing} of layer {weight!r} are not in params "
                f"(known: {sorted(params)[:6]}...). Build layers from the model's named_parameters."
            )


def gradient_shift(
    loss_fn: LossFn,
    params: Mapping[str, Tensor],
    new_params: Mapping[str, Tensor],
    layers: Sequence[tuple[str, Sequence[str]]],
    *batch: Tensor,
    grads: Mapping[str, Tensor] | None = None,
    vectorized: bool = True,
) -> tuple[Tensor, Tensor]:
    """Definition 2.1 of Santurkar et al.: ``||G - G'||`` and ``cos(G, G')`` for every layer.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params, *batch) -> scalar``, a pure function of a parameter dict (e.g. from
        :func:`bnguide.landscape.functional_loss`).
    params : dict
        Parameters at step ``t``.
    new_params : dict
        Parameters at step ``t + 1`` (after the optimizer step taken on ``batch``).
    layers : sequence of (weight_name, names)
        In forward order: the weight whose gradient is compared, and the names of all
        parameters belonging to that layer (they are the ones updated for the layers above).
    *batch : Tensor
        The batch of step ``t``; both gradients are taken on it.
    grads : dict, optional
        Gradients at ``params`` if already computed (saves one backward pass).
    vectorized : bool
        Evaluate all layers' ``G'`` in one :func:`torch.func.vmap` call (default) or one at a
        time in a loop (same numbers; the loop is the benchmark's baseline).

    Returns
    -------
    l2 : Tensor
        ``(len(layers),)``: :math:`\\lVert G - G'\\rVert_2`.
    cos : Tensor
        ``(len(layers),)``: :math:`\\langle G, G'\\rangle / (\\lVert G\\rVert \\lVert G'\\rVert)`.
    """
    _check_layers(params, layers)
    params = {k: v.detach() for k, v in params.items()}
    if grads is None:
        grads = grad(loss_fn)(params, *batch)
    # variant i: parameters of layers < i already updated, the rest as at step t
    updated: set[str] = set()
    variants = []
    for _, names in layers:
        variants.append(
            {k: (new_params[k].detach() if k in updated else v) for k, v in params.items()}
        )
        updated.update(names)
    if vectorized:
        stacked = {k: torch.stack([v[k] for v in variants]) for k in params}
        shifted = vmap(grad(loss_fn), in_dims=(0,) + (None,) * len(batch))(stacked, *batch)
        g_new = [shifted[w][i] for i, (w, _) in enumerate(layers)]
    else:
        g_new = [grad(loss_fn)(v, *batch)[w] for v, (w, _) in zip(variants, layers, strict=True)]
    g_old = [grads[w] for w, _ in layers]
    l2 = torch.stack([(a - b).norm() for a, b in zip(g_old, g_new, strict=True)])
    cos = torch.stack(
        [
            torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0, eps=1e-30)
            for a, b in zip(g_old, g_new, strict=True)
        ]
    )
    return l2.detach(), cos.detach()
