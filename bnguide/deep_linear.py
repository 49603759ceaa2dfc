"""The deep linear network of Santurkar et al. (2018): 25 layers of 10x10 matrices, no biases.

The task is regression onto a random linear map: the loss is
:math:`\\sum_{n} \\lVert W_{25}\\cdots W_1 x_n - A x_n\\rVert^2` over 1000 Gaussian samples
:math:`x_n`, with a Gaussian matrix :math:`A`, trained by full-batch gradient descent from a
Glorot initialisation. Any function of the product is linear, so every difficulty of training
comes from depth alone: it is the cleanest place to look at how a normalization layer changes
the optimization. A normalization layer (BN or an Lp norm, all using full-batch statistics)
follows each linear layer except the last, so that the output can take any scale.

Used in chapters *Why BN works: internal covariate shift* and *Why BN works: a smoother
landscape*; :func:`unit_moment_sensitivity`, :func:`upstream_perturbation` and
:func:`first_order_spread_step` are the demos of *Why BN works: interdependency*.

Examples
--------
>>> from bnguide.deep_linear import DeepLinearNet, make_problem
>>> x, y, a = make_problem(n_samples=100)
>>> net = DeepLinearNet(norm="batch")
>>> net(x).shape
torch.Size([100, 10])
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from bnguide.norms.lp import LpNorm1d
from bnguide.norms.registry import LP_EXPONENTS, SANTURKAR_KINDS, check_kind

__all__ = [
    "DeepLinearNet",
    "StackedProblem",
    "first_order_spread_step",
    "layer_groups",
    "make_problem",
    "stacked_loss",
    "sum_squared_error",
    "unit_moment_sensitivity",
    "upstream_perturbation",
]


def make_problem(
    n_samples: int = 1000, dim: int = 10, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw the regression problem: inputs, targets and the target map.

    Parameters
    ----------
    n_samples, dim : int
        1000 samples of dimension 10 in the paper.
    seed : int
        Seeds a private generator (the global RNG is left alone).

    Returns
    -------
    x : Tensor
        ``(n_samples, dim)`` standard Gaussian inputs.
    target : Tensor
        ``(n_samples, dim)``, ``x @ A.T``.
    A : Tensor
        ``(dim, dim)`` standard Gaussian matrix.
    """
    if n_samples < 2 or dim < 1:
        raise ValueError(
            f"need n_samples >= 2 (batch statistics) and dim >= 1, got {n_samples}, {dim}."
        )
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(dim, dim, generator=gen, dtype=dtype)  # (d, d)
    x = torch.randn(n_samples, dim, generator=gen, dtype=dtype)  # (N, d)
    return x, x @ A.T, A


def _make_norm(norm: str, dim: int, eps: float) -> nn.Module:
    if norm == "batch":
        # full-batch statistics in both modes: nothing to track
        return nn.BatchNorm1d(dim, eps=eps, track_running_stats=False)
    return LpNorm1d(dim, p=LP_EXPONENTS[norm], eps=eps, track_running_stats=False)


class DeepLinearNet(nn.Module):
    """A product of ``depth`` square matrices, optionally with a normalization after each.

    Parameters
    ----------
    depth : int
        Number of linear layers (25 in the paper).
    dim : int
        Width of every layer (10 in the paper).
    norm : {"none", "batch", "l1", "l2", "linf"}
        The layer inserted after each linear layer but the last.
    eps : float
        The normalization layers' epsilon.
    seed : int
        Seeds the Glorot-uniform initialisation (a private generator).

    Shape
    -----
    input ``(N, dim)``, output ``(N, dim)``. Parameter names: ``layers.<i>.weight`` (each
    ``(dim, dim)``) and ``norms.<i>.weight`` / ``norms.<i>.bias`` (gamma, beta).
    """

    def __init__(
        self, depth: int = 25, dim: int = 10, norm: str = "none", *, eps: float = 1e-5, seed=0
    ) -> None:
        super().__init__()
        check_kind(norm, SANTURKAR_KINDS)
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}.")
        self.depth, self.dim, self.norm = depth, dim, norm
        self.layers = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(depth))
        n_norms = 0 if norm == "none" else depth - 1
        self.norms = nn.ModuleList(_make_norm(norm, dim, eps) for _ in range(n_norms))
        gen = torch.Generator().manual_seed(seed)
        bound = (6.0 / (dim + dim)) ** 0.5  # Glorot uniform
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.uniform_(-bound, bound, generator=gen)

    def forward(self, x: Tensor) -> Tensor:
        # Activations are kept as (d, N): on CPU, W @ h is several times faster than h @ W.T for
        # these skinny shapes, and the norms see a contiguous (1, d, N) tensor (one "sample" of
        # length N per channel: the statistics are exactly those over the N examples).
        h = x.T.contiguous()  # (d, N)
        for i, layer in enumerate(self.layers):
            h = layer.weight @ h  # (d, N)
            if i < len(self.norms):
                h = self.norms[i](h.unsqueeze(0)).squeeze(0)  # (1, d, N) -> (d, N)
        return h.T  # (N, d)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, dim={self.dim}, norm={self.norm!r}"


def sum_squared_error(output: Tensor, target: Tensor) -> Tensor:
    """The paper's loss, :math:`\\sum_n \\lVert f(x_n) - A x_n\\rVert^2` (a sum, not a mean).

    Parameters
    ----------
    output : torch.Tensor
        ``(n, dim)`` outputs of the network.
    target : torch.Tensor
        ``(n, dim)`` targets.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    return (output - target).square().sum()


def layer_groups(net: DeepLinearNet) -> list[tuple[str, list[str]]]:
    """Per linear layer: the name of its weight and the names of all parameters of that layer.

    The normalization that follows linear layer ``i`` belongs to layer ``i``. This is the
    ``layers`` argument of :func:`bnguide.ics.gradient_shift`.

    Parameters
    ----------
    net : DeepLinearNet
        The network.

    Returns
    -------
    list of (str, list of str)
        One ``(weight name, parameter names)`` pair per linear layer.
    """
    groups = []
    for i in range(net.depth):
        names = [f"layers.{i}.weight"]
        if i < len(net.norms) and net.norms[i].weight is not None:
            names += [f"norms.{i}.weight", f"norms.{i}.bias"]
        groups.append((f"layers.{i}.weight", names))
    return groups


def unit_moment_sensitivity(net: DeepLinearNet, x: Tensor, layer: int, unit: int = 0) -> Tensor:
    """How much each layer's parameters move the mean and spread of one hidden unit.

    The unit is read after layer ``layer`` (after its normalization when there is one). For
    every layer ``i`` the result holds the norm of the gradient of the unit's batch mean plus
    the norm of the gradient of its batch standard deviation with respect to all parameters of
    layer ``i`` (weight, and gamma/beta when present). Without normalization every earlier
    layer moves the unit's distribution; with BN only the gamma and beta of ``layer`` itself do.

    Parameters
    ----------
    net : DeepLinearNet
    x : Tensor
        ``(N, dim)`` inputs.
    layer : int
        Index of the linear layer whose output unit is examined, ``0 <= layer < depth - 1``.
    unit : int
        Which of its ``dim`` units.

    Returns
    -------
    Tensor
        ``(depth,)``; entries after ``layer`` are zero.
    """
    if not 0 <= layer < net.depth:
        raise ValueError(f"layer must be in [0, {net.depth - 1}], got {layer}.")
    if not 0 <= unit < net.dim:
        raise ValueError(f"unit must be in [0, {net.dim - 1}], got {unit}.")
    h = x
    for i in range(layer + 1):
        h = net.layers[i](h)
        if i < len(net.norms):
            h = net.norms[i](h)
    values = h[:, unit]  # (N,)
    groups = layer_groups(net)
    params = dict(net.named_parameters())
    out = torch.zeros(net.depth, dtype=x.dtype)
    for stat in (values.mean(), values.std(unbiased=False)):
        flat = [params[n] for _, names in groups[: layer + 1] for n in names]
        grads = torch.autograd.grad(stat, flat, retain_graph=True, allow_unused=True)
        k = 0
        for i, (_, names) in enumerate(groups[: layer + 1]):
            sq = sum(float(g.square().sum()) for g in grads[k : k + len(names)] if g is not None)
            out[i] += sq**0.5
            k += len(names)
    return out


@torch.no_grad()
def upstream_perturbation(
    net: DeepLinearNet, x: Tensor, layer: int, *, source: int = 0, rel_size: float = 0.05, seed=0
) -> dict[str, Tensor]:
    """Nudge one early layer's weight and report how the units after ``layer`` change.

    The weight of linear layer ``source`` moves by a random direction of norm
    ``rel_size * ||W_source||``; the units are read after layer ``layer`` (after its norm).

    Parameters
    ----------
    net : DeepLinearNet
        The network.
    x : torch.Tensor
        ``(n, dim)`` input batch.
    layer : int
        The layer whose units are read.
    source : int, optional
        The linear layer whose weight is nudged.
    rel_size : float, optional
        Size of the nudge relative to the weight's norm.
    seed : int, optional
        Seed of the random direction.

    Returns
    -------
    dict of Tensor, each ``(dim,)``
        ``"mean"`` and ``"std"``: absolute change of each unit's batch mean and standard
        deviation; ``"values"``: root-mean-square change of the unit's value per example.
    """
    if not 0 <= source <= layer < net.depth:
        raise ValueError(f"need 0 <= source <= layer < {net.depth}, got {source} and {layer}.")

    def read() -> Tensor:
        h = x
        for i in range(layer + 1):
            h = h @ net.layers[i].weight.T  # (N, d)
            if i < len(net.norms):
                h = net.norms[i](h)
        return h

    before = read()  # (N, d)
    weight = net.layers[source].weight
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(weight.shape, generator=gen, dtype=weight.dtype)
    delta = direction * (rel_size * weight.norm() / direction.norm())
    weight.add_(delta)
    try:
        after = read()
    finally:
        weight.sub_(delta)
    return {
        "mean": (after.mean(0) - before.mean(0)).abs(),
        "std": (after.std(0, unbiased=False) - before.std(0, unbiased=False)).abs(),
        "values": (after - before).square().mean(0).sqrt(),
    }


def first_order_spread_step(
    net: DeepLinearNet, x: Tensor, layer: int, unit: int = 0, factor: float = 2.0
) -> dict[str, float]:
    """Try to scale one unit's spread by ``factor`` with one first-order step on all parameters.

    The step is the smallest change of all parameters of layers ``0..layer`` that, to first
    order, multiplies the unit's batch standard deviation by ``factor``:
    :math:`\\delta\\theta = (s^* - s)\\,\\nabla s / \\lVert\\nabla s\\rVert^2`. It is applied to
    a copy of ``net``.

    Parameters
    ----------
    net : DeepLinearNet
        The network.
    x : torch.Tensor
        ``(n, dim)`` input batch.
    layer : int
        The layer whose unit is read (after its normalization).
    unit : int, optional
        The unit.
    factor : float, optional
        The wanted ratio of new to old standard deviation.

    Returns
    -------
    dict
        ``"achieved"``: the achieved change of the unit's standard deviation over the intended
        one (1 when the first-order prediction is exact); ``"others"``: the largest relative
        change of the standard deviation of the other units of the same layer (side effects).
    """
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}.")
    if not 0 <= layer < net.depth or not 0 <= unit < net.dim:
        raise ValueError(f"need 0 <= layer < {net.depth} and 0 <= unit < {net.dim}.")
    net = copy.deepcopy(net)

    def read() -> Tensor:
        h = x
        for i in range(layer + 1):
            h = h @ net.layers[i].weight.T  # (N, d)
            if i < len(net.norms):
                h = net.norms[i](h)
        return h

    before = read()  # (N, d)
    spread = before[:, unit].std(unbiased=False)
    params = list(net.parameters())
    grads = torch.autograd.grad(spread, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
    squared = sum(float(g.square().sum()) for g in grads)
    s0 = float(spread.detach())
    step = (factor - 1.0) * s0 / squared
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            p.add_(g, alpha=step)
        after = read()
    std0, std1 = before.detach().std(0, unbiased=False), after.std(0, unbiased=False)  # (d,)
    others = torch.cat([std1[:unit] / std0[:unit], std1[unit + 1 :] / std0[unit + 1 :]]) - 1
    return {
        "achieved": (float(std1[unit]) - s0) / ((factor - 1.0) * s0),
        "others": float(others.abs().max()),
    }


# --- Many networks at once, from the data's moments -----------------------------------------
#
# Every layer of a DLN is affine in the input, and so is every normalization once its batch
# statistics are fixed. The output of layer i is therefore h = M_i (x - mu) + c_i for all samples
# at once, with M_i (d, d) and c_i (d,) (c_i is the batch mean of h). BN and L2 need only the
# variance of h, diag(M C M^T) with C the inputs' covariance, and the loss
# sum_n ||M (x_n - mu) + c - A x_n||^2 = N (tr((M - A) C (M - A)^T) + ||c - A mu||^2) needs
# only mu and C: no pass over the 1,000 samples. L1 and L-infinity need every sample's
# |M_i (x_n - mu)|, one (d, d) x (d, N) product per layer.


class StackedProblem:
    """The regression problems of several seeds, in the form :func:`stacked_loss` uses.

    Parameters
    ----------
    seeds : sequence of int
        One problem per seed (:func:`make_problem` with ``seed``).
    kinds : sequence of str
        The normalizer of each network (a kind of
        :data:`bnguide.norms.registry.SANTURKAR_KINDS`); ``len(kinds)`` networks per seed.
        Networks are ordered kind-major: all seeds of ``kinds[0]``, then ``kinds[1]``...
    n_samples, dim : int
        As in :func:`make_problem`.
    dtype : torch.dtype
        Of every tensor (float64 by default: the moments stand in for sums over samples).

    Attributes
    ----------
    mu : Tensor
        ``(B, d)`` input means, ``B = len(kinds) * len(seeds)``.
    cov : Tensor
        ``(B, d, d)`` input covariances (divided by ``N``).
    target_map : Tensor
        ``(B, d, d)`` the matrices ``A``.
    centered : dict of str to Tensor
        For ``"l1"`` and ``"linf"``: ``(S, d, N)`` centred inputs ``x - mu``, transposed.
    slices : dict of str to slice
        Where each kind's networks sit on the batch axis.
    """

    def __init__(self, seeds, kinds, n_samples: int = 1000, dim: int = 10, *, dtype=torch.float64):
        for kind in kinds:
            check_kind(kind, SANTURKAR_KINDS)
        if len(set(kinds)) != len(kinds) or not kinds or not len(seeds):
            raise ValueError(f"need distinct kinds and at least one seed, got {kinds}, {seeds}.")
        self.seeds, self.kinds = tuple(seeds), tuple(kinds)
        self.n_samples, self.dim = n_samples, dim
        xs, maps = [], []
        for s in self.seeds:
            x, _, a = make_problem(n_samples, dim, seed=int(s))
            xs.append(x.to(dtype))
            maps.append(a.to(dtype))
        x = torch.stack(xs)  # (S, N, d)
        mu = x.mean(1)  # (S, d)
        xc = x - mu[:, None]  # (S, N, d)
        cov = xc.transpose(1, 2) @ xc / n_samples  # (S, d, d)
        k = len(self.kinds)
        self.mu, self.cov = mu.repeat(k, 1), cov.repeat(k, 1, 1)  # (B, d), (B, d, d)
        self.target_map = torch.stack(maps).repeat(k, 1, 1)  # (B, d, d)
        s = len(self.seeds)
        self.slices = {kind: slice(i * s, (i + 1) * s) for i, kind in enumerate(self.kinds)}
        self.centered = {
            kind: xc.transpose(1, 2).contiguous() for kind in self.kinds if kind in ("l1", "linf")
        }  # (S, d, N)

    @property
    def size(self) -> int:
        """``B``, the number of networks."""
        return len(self.kinds) * len(self.seeds)


class _UnitScale(torch.autograd.Function):
    # s_j(M) for every unit j of M (E, S, d, d) and its Jacobian ds_j / dM_j, saved in the
    # forward pass: the backward pass is then one product, instead of autograd's walk back
    # through every (d, N) intermediate of the L1 / L-infinity norms.

    @staticmethod
    def forward(m, kind, cov, centered, n_samples, eps):
        if kind in ("batch", "l2"):
            mc = m @ cov  # (E, S, d, d)
            var = (mc * m).sum(-1)  # (E, S, d)
            root = (var + eps).sqrt() if kind == "batch" else var.sqrt()
            return (root if kind == "batch" else root + eps), mc / root[..., None]
        y = m @ centered  # (E, S, d, N): every sample's centred value
        xt = centered.transpose(-1, -2)  # (S, N, d)
        if kind == "l1":
            scale = y.abs().sum(-1) / n_samples + eps
            return scale, (y.sign() @ xt) / n_samples
        top, where = y.abs().max(-1)  # (E, S, d)
        sign = y.gather(-1, where[..., None]).sign()  # (E, S, d, 1)
        rows = xt.expand(*where.shape[:2], *xt.shape[1:])  # (E, S, N, d)
        return top + eps, sign * rows.gather(
            -2, where[..., None].expand(*where.shape, xt.shape[-1])
        )

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])

    @staticmethod
    def backward(ctx, grad_scale, _):
        (jacobian,) = ctx.saved_tensors
        return grad_scale[..., None] * jacobian, None, None, None, None, None


def stacked_loss(
    weights: Tensor, gamma: Tensor, beta: Tensor, problem: StackedProblem, eps: float = 1e-5
) -> Tensor:
    """The summed squared error of every stacked network, computed from the data's moments.

    Exactly the loss of :class:`DeepLinearNet` with :func:`sum_squared_error` on each
    network's samples (up to rounding), for ``E`` copies of ``B`` networks at once.

    Parameters
    ----------
    weights : Tensor
        ``(E, B, depth, d, d)`` the linear layers, ``B = problem.size``, networks ordered as in
        ``problem``; ``E`` copies (e.g. the points of a probe).
    gamma, beta : Tensor
        ``(E, B, depth - 1, d)``; unused (zero gradient) for the ``"none"`` networks.
    problem : StackedProblem
        The data of each network.
    eps : float
        The normalizations' epsilon (inside the square root for BN, added to the scale for Lp).

    Returns
    -------
    Tensor
        ``(E, B)`` losses.
    """
    e, _, depth, d, _ = weights.shape
    layers, gammas, betas = weights.unbind(2), gamma.unbind(2), beta.unbind(2)
    losses = []
    for kind in problem.kinds:
        sl = problem.slices[kind]
        n = sl.stop - sl.start
        mu = problem.mu[sl].expand(e, n, d)[..., None]  # (E, S, d, 1)
        cov = problem.cov[sl].expand(e, n, d, d)  # (E, S, d, d)
        a = problem.target_map[sl].expand(e, n, d, d)  # (E, S, d, d)
        if kind == "none":  # [M | c] through the plain product
            affine = torch.cat([torch.eye(d, dtype=weights.dtype).expand(e, n, d, d), mu], -1)
            for w in layers:
                affine = w[:, sl] @ affine  # (E, S, d, d + 1)
            m, c = affine[..., :d], affine[..., d:]
        else:  # after each norm the mean is beta: only M goes through the chain
            m = layers[0][:, sl]  # (E, S, d, d)
            for i in range(depth - 1):
                if i:
                    m = layers[i][:, sl] @ m
                scale, _ = _UnitScale.apply(
                    m, kind, cov, problem.centered.get(kind), problem.n_samples, eps
                )  # (E, S, d)
                m = (gammas[i][:, sl] / scale)[..., None] * m
            last = layers[depth - 1][:, sl]
            m, c = last @ m, last @ betas[depth - 2][:, sl, :, None]
        diff = m - a  # (E, S, d, d)
        offset = c - a @ mu  # (E, S, d, 1)
        spread = ((diff @ cov) * diff).sum((-1, -2))  # (E, S)
        losses.append(problem.n_samples * (spread + offset.square().sum((-1, -2))))
    return torch.cat(losses, 1)
