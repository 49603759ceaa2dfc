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
import dataclasses

import torch
from torch import Tensor, nn

from bnguide.norms.lp import LpNorm1d
from bnguide.norms.registry import LP_EXPONENTS, SANTURKAR_KINDS, check_kind

__all__ = [
    "DeepLinearNet",
    "StackedProblem",
    "fast_stacked_loss",
    "first_order_spread_step",
    "layer_groups",
    "make_problem",
    "stacked_loss",
    "stacked_loss_and_grads",
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
        self._plans: dict = {}  # stacked_loss_and_grads' tensors and buffers, per dtype

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


def stacked_loss_and_grads(
    weights: Tensor, gamma: Tensor, beta: Tensor, problem: StackedProblem, eps: float = 1e-5
) -> tuple[Tensor, list[Tensor]]:
    """:func:`stacked_loss` and its gradients, by a hand-written backward pass.

    The same losses as :func:`stacked_loss` (up to rounding) and the gradients autograd would
    give for each network's own loss, in about a tenth of the time: every operation acts on all
    ``E * B`` networks at once (one batched product per layer instead of one per normalizer
    kind), and nothing is recorded for autograd. This is what makes the paper's 10,000 steps
    affordable.

    Each normalized layer is :math:`m_i = \\mathrm{diag}(\\gamma_i / s_i)\\, p_i` with
    :math:`p_i = W_i m_{i-1}` and :math:`s_i` the scale of each row of :math:`p_i` (BN:
    :math:`\\sqrt{\\mathrm{diag}(p C p^\\top) + \\epsilon}`, Lp: the p-norm of the centred
    samples plus :math:`\\epsilon`). Going back, with :math:`r = \\gamma / s`:
    :math:`\\partial r_j = \\sum_k \\partial m_{jk}\\, p_{jk}`,
    :math:`\\partial \\gamma = \\partial r / s`, :math:`\\partial s = -\\partial r\\, r / s`
    and :math:`\\partial p = r\\, \\partial m + \\partial s\\, \\partial s / \\partial p`.
    ``tests/test_deep_linear.py`` compares it with autograd on :func:`stacked_loss`.

    Parameters
    ----------
    weights, gamma, beta : Tensor
        As in :func:`stacked_loss`: ``(E, B, depth, d, d)`` and ``(E, B, depth - 1, d)``.
    problem : StackedProblem
    eps : float

    Returns
    -------
    loss : Tensor
        ``(E, B)``.
    grads : list of Tensor
        The gradients of each network's loss for ``weights``, ``gamma`` and ``beta``; zero for
        what a network does not use (gamma and beta without norms, every beta but the last).
    """
    e, b, depth, d, _ = weights.shape
    n = problem.n_samples
    plan = _plan(problem, weights.dtype)
    layers = weights.movedim(2, 0).contiguous()  # (depth, E, B, d, d)
    gammas = gamma.movedim(2, 0)  # (depth - 1, E, B, d)
    # forward: p_i = W_i m_{i-1}, m_i = r_i p_i with r_i = gamma_i / s_i (1 without norms)
    ps, ms, rs, ss, jacobians = [], [], [], [], []
    m = None
    for i in range(depth - 1):
        p = layers[0] if i == 0 else layers[i] @ m  # (E, B, d, d)
        s, jac = _row_scales(p, plan, eps)  # (E, B, d), (E, B, d, d)
        r = torch.where(plan.normalized[:, None], gammas[i] / s, 1.0)  # (E, B, d)
        m = r[..., None] * p
        ps.append(p), ms.append(m), rs.append(r), ss.append(s), jacobians.append(jac)
    last, beta_last = layers[depth - 1], beta[:, :, depth - 2, :, None]  # (E, B, d, 1)
    big_m = last @ m if depth > 1 else last  # (E, B, d, d)
    diff = big_m - plan.target_map  # (E, B, d, d)
    diff_k = diff @ plan.second_moment  # (E, B, d, d)
    # without norms the mean goes through the product (second_moment = C + mu mu^T); with them
    # the output's mean is W_last beta_last, matched against A mu
    offset = (last @ beta_last - plan.target_mean) * plan.normalized[:, None, None]  # (E,B,d,1)
    loss = n * ((diff_k * diff).sum((-1, -2)) + offset.square().sum((-1, -2)))  # (E, B)
    # backward
    grad_m = 2 * n * diff_k  # (E, B, d, d)
    grad_offset = 2 * n * offset  # (E, B, d, 1)
    grad_w = [None] * depth
    grad_gamma = [torch.zeros_like(gammas[0])] * (depth - 1)
    if depth == 1:
        grad_w[0] = grad_m
        return loss, [torch.stack(grad_w, 2), torch.zeros_like(gamma), torch.zeros_like(beta)]
    grad_w[depth - 1] = grad_m @ m.transpose(-1, -2) + grad_offset @ beta_last.transpose(-1, -2)
    grad_beta_last = (last.transpose(-1, -2) @ grad_offset).squeeze(-1)  # (E, B, d)
    grad_m = last.transpose(-1, -2) @ grad_m
    for i in range(depth - 2, -1, -1):
        p, r, s = ps[i], rs[i], ss[i]
        grad_r = (grad_m * p).sum(-1)  # (E, B, d)
        grad_gamma[i] = grad_r / s * plan.normalized[:, None]
        grad_p = r[..., None] * grad_m - (grad_r * r / s)[..., None] * jacobians[i]
        if i == 0:
            grad_w[0] = grad_p
        else:
            grad_w[i] = grad_p @ ms[i - 1].transpose(-1, -2)
            grad_m = layers[i].transpose(-1, -2) @ grad_p
    grad_beta = torch.zeros_like(beta)
    grad_beta[:, :, depth - 2] = grad_beta_last
    return loss, [torch.stack(grad_w, 2), torch.stack(grad_gamma, 2), grad_beta]


class _HandWrittenLoss(torch.autograd.Function):
    # stacked_loss_and_grads as one autograd node: the forward pass computes the gradients too,
    # the backward pass scales them by the upstream gradient of each network's loss

    @staticmethod
    def forward(weights, gamma, beta, problem, eps):
        loss, grads = stacked_loss_and_grads(weights, gamma, beta, problem, eps)
        return loss, *grads

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(*output[1:])

    @staticmethod
    def backward(ctx, grad_loss, *_):
        scaled = [
            grad_loss.view(*grad_loss.shape, *[1] * (g.dim() - 2)) * g for g in ctx.saved_tensors
        ]
        return (*scaled, None, None)


def fast_stacked_loss(
    weights: Tensor, gamma: Tensor, beta: Tensor, problem: StackedProblem, eps: float = 1e-5
) -> Tensor:
    """:func:`stacked_loss` with the backward pass of :func:`stacked_loss_and_grads`.

    For training with any autograd-based loop (:func:`bnguide.training.fit.run_sgd`): one
    autograd node whose backward pass is the hand-written one, so a step costs what
    :func:`stacked_loss_and_grads` costs. Only first derivatives are available.

    Parameters
    ----------
    weights, gamma, beta : Tensor
        As in :func:`stacked_loss`.
    problem : StackedProblem
    eps : float

    Returns
    -------
    Tensor
        ``(E, B)`` losses.
    """
    return _HandWrittenLoss.apply(weights, gamma, beta, problem, eps)[0]


@dataclasses.dataclass
class _Plan:
    # per network (B,): the problem's tensors in the form stacked_loss_and_grads uses
    normalized: Tensor  # (B,) bool: has norms
    eps_inside: Tensor  # (B,) eps inside the square root (BN), else 0
    eps_outside: Tensor  # (B,) eps added to the scale (Lp), else 0
    second_moment: Tensor  # (B, d, d) C, or C + mu mu^T without norms
    target_map: Tensor  # (B, d, d)
    target_mean: Tensor  # (B, d, 1) A mu
    cov: Tensor  # (B, d, d)
    sample_kinds: tuple  # ((kind, slice, centred (S, d, N), rows (S, N, d)), ...) for L1 / Linf
    scratch: dict = dataclasses.field(default_factory=dict)

    def buffers(self, kind: str, shape: tuple, dtype: torch.dtype) -> tuple[Tensor, ...]:
        # two (E, S, d, N) scratch tensors and a tensor of ones per kind and shape, made once
        key = (kind, shape, dtype)
        if key not in self.scratch:
            self.scratch[key] = (
                torch.empty(shape, dtype=dtype),
                torch.empty(shape, dtype=dtype),
                torch.ones(shape, dtype=dtype),
            )
        return self.scratch[key]


def _plan(problem: StackedProblem, dtype: torch.dtype) -> _Plan:
    # built once per problem and dtype, kept on the problem with its scratch buffers
    if dtype not in problem._plans:
        problem._plans[dtype] = _make_plan(problem, dtype)
    return problem._plans[dtype]


def _make_plan(problem: StackedProblem, dtype: torch.dtype) -> _Plan:
    kind_of = [k for k in problem.kinds for _ in problem.seeds]  # kind-major, as the slices
    normalized = torch.tensor([k != "none" for k in kind_of])
    eps_inside = torch.tensor([1.0 if k == "batch" else 0.0 for k in kind_of], dtype=dtype)
    mu = problem.mu.to(dtype)[..., None]  # (B, d, 1)
    cov = problem.cov.to(dtype)
    a = problem.target_map.to(dtype)
    second = torch.where(normalized[:, None, None], cov, cov + mu @ mu.transpose(-1, -2))
    samples = tuple(
        (k, problem.slices[k], c.to(dtype), c.to(dtype).transpose(-1, -2).contiguous())
        for k, c in problem.centered.items()
    )
    return _Plan(
        normalized=normalized,
        eps_inside=eps_inside,
        eps_outside=torch.tensor([k in ("l1", "l2", "linf") for k in kind_of], dtype=dtype),
        second_moment=second,
        target_map=a,
        target_mean=a @ mu,
        cov=cov,
        sample_kinds=samples,
    )


def _row_scales(p: Tensor, plan: _Plan, eps: float) -> tuple[Tensor, Tensor]:
    # s_j of every row j of p (E, B, d, d) and ds_j / dp_j; s = 1, ds/dp = 0 without norms
    pc = p @ plan.cov  # (E, B, d, d)
    root = ((pc * p).sum(-1) + eps * plan.eps_inside[:, None]).sqrt()  # (E, B, d)
    scale = root + eps * plan.eps_outside[:, None]
    jac = pc / root[..., None]
    for kind, sl, centred, rows in plan.sample_kinds:
        # the (E, S, d, N) products go to buffers reused across layers and calls: a fresh
        # allocation of that size costs more than the product itself (page faults)
        shape = (p.shape[0], sl.stop - sl.start, *centred.shape[1:])
        y, magnitude, ones = plan.buffers(kind, shape, p.dtype)
        torch.matmul(p[:, sl], centred, out=y)  # every sample's centred value
        torch.abs(y, out=magnitude)
        n = y.shape[-1]
        if kind == "l1":
            scale[:, sl] = magnitude.sum(-1) / n + eps
            # the sign of y (copysign: torch.sign is 20x slower under the portable kernels)
            jac[:, sl] = (torch.copysign(ones, y, out=magnitude) @ rows) / n
        else:  # linf
            top, where = magnitude.max(-1)  # (E, S, d)
            sign = y.gather(-1, where[..., None]).sign()  # (E, S, d, 1)
            picked = rows.expand(y.shape[0], *rows.shape).gather(
                -2, where[..., None].expand(*where.shape, rows.shape[-1])
            )  # (E, S, d, d): the sample at the max of each row
            scale[:, sl] = top + eps
            jac[:, sl] = sign * picked
    normalized = plan.normalized[:, None]
    return torch.where(normalized, scale, 1.0), torch.where(normalized[..., None], jac, 0.0)
