"""The small multilayer perceptrons of the *BN in practice* chapters, in two forms.

:class:`bnguide.models.MLPSpec` describes one architecture: layer sizes, the activation, and
where batch normalization sits (``"none"``, ``"before"`` or ``"after"`` the activation of every
hidden layer). :func:`bnguide.models.build_mlp` turns it into a plain ``torch.nn.Sequential`` of
``nn.Linear``, ``nn.BatchNorm1d`` and an activation module: the reference that tests and the
speed benchmark compare against. :class:`bnguide.models.StackedMLP` holds many copies of one spec
with stacked weights, so that :mod:`bnguide.training` trains them all with batched matrix
products.
Used in :doc:`/book/practice/ioffe-mnist`, :doc:`/book/practice/learning-rate-and-sigmoid` and
:doc:`/book/practice/bn-placement`.

Examples
--------
>>> import torch
>>> from bnguide.models import MLPSpec, StackedMLP, build_mlp
>>> spec = MLPSpec(activation="sigmoid", placement="before")  # 784-100x3-10, BN before sigmoid
>>> build_mlp(spec)[:3]
Sequential(
  (0): Linear(in_features=784, out_features=100, bias=False)
  (1): BatchNorm1d(100, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
  (2): Sigmoid()
)
>>> nets = StackedMLP(spec, members=3)  # three independent copies
>>> nets(torch.rand(3, 60, 784)).shape  # one batch of 60 images per member
torch.Size([3, 60, 10])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "NORM_PLACEMENTS",
    "StackedMLP",
    "MLPSpec",
    "build_mlp",
    "draw_weights",
    "load_weights_",
]

ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity")
NORM_PLACEMENTS = ("none", "before", "after")
_ACTIVATION_MODULES = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


@dataclass(frozen=True)
class MLPSpec:
    """One fully connected classifier: ``in -> hidden... -> out``.

    Parameters
    ----------
    in_features : int
        Input size (784 for flattened MNIST).
    hidden : tuple of int
        Width of each hidden layer; Ioffe & Szegedy's MNIST net has ``(100, 100, 100)``.
    out_features : int
        Number of classes.
    activation : {"sigmoid", "relu", "tanh", "identity"}
        Nonlinearity of every hidden layer.
    placement : {"none", "before", "after"}
        Where ``BatchNorm1d`` sits in every hidden layer: ``"before"`` is the paper's
        ``act(BN(W u))`` (the linear layer then has no bias, BN's ``beta`` replaces it),
        ``"after"`` is ``BN(act(W u + b))``. The output layer is never normalized.
    eps, momentum : float
        ``BatchNorm1d``'s ``eps`` and ``momentum`` (PyTorch's convention: the weight of the new
        batch in the running statistics).
    """

    in_features: int = 784
    hidden: tuple[int, ...] = (100, 100, 100)
    out_features: int = 10
    activation: str = "sigmoid"
    placement: str = "none"
    eps: float = 1e-5
    momentum: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        sizes = (self.in_features, *self.hidden, self.out_features)
        if not self.hidden:
            raise ValueError("MLPSpec needs at least one hidden layer, got hidden=().")
        if any(int(n) != n or n < 1 for n in sizes):
            raise ValueError(f"Layer sizes must be positive integers, got {sizes}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {self.activation!r}. Use one of: "
                + ", ".join(map(repr, ACTIVATIONS))
                + "."
            )
        if self.placement not in NORM_PLACEMENTS:
            raise ValueError(
                f"Unknown norm placement {self.placement!r}. Use one of: "
                + ", ".join(map(repr, NORM_PLACEMENTS))
                + " (where BatchNorm1d sits relative to the activation)."
            )
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}.")
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum}.")

    @property
    def sizes(self) -> tuple[int, ...]:
        """All layer widths, input first: ``(784, 100, 100, 100, 10)``."""
        return (self.in_features, *self.hidden, self.out_features)

    def has_bias(self, layer: int) -> bool:
        """Whether linear layer ``layer`` (0-based) has a bias: not when BN follows it."""
        return not (self.placement == "before" and layer < len(self.hidden))


def build_mlp(
    spec: MLPSpec, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> nn.Sequential:
    """A ``torch.nn.Sequential`` of standard PyTorch layers for ``spec``.

    Parameters
    ----------
    spec : MLPSpec
        The architecture.
    device, dtype
        Where the parameters live.

    Returns
    -------
    torch.nn.Sequential
        Per hidden layer ``Linear, BatchNorm1d, act`` (``placement="before"``), ``Linear, act,
        BatchNorm1d`` (``"after"``) or ``Linear, act`` (``"none"``); then the output ``Linear``.
        PyTorch's default initialization; use :func:`load_weights_` to set the weights.

    Shape
    -----
    Input ``(N, in_features)``, output ``(N, out_features)`` (logits).
    """
    layers: list[nn.Module] = []
    sizes = spec.sizes
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=spec.has_bias(i)))
        if i == len(sizes) - 2:
            break
        bn = nn.BatchNorm1d(sizes[i + 1], eps=spec.eps, momentum=spec.momentum)
        act = _ACTIVATION_MODULES[spec.activation]()
        layers += {"before": [bn, act], "after": [act, bn], "none": [act]}[spec.placement]
    return nn.Sequential(*layers).to(device=device, dtype=dtype)


def draw_weights(
    sizes: Sequence[int], std: float, seed: int, *, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """Gaussian weight matrices ``N(0, std^2)`` for every linear layer, from one seed.

    The same ``(sizes, std, seed)`` gives the same numbers on every device: they are drawn on
    the CPU with a generator seeded with ``seed``, in float64, then cast.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first (``MLPSpec.sizes``).
    std : float
        Standard deviation of every weight.
    seed : int
        Seed of the generator.

    Returns
    -------
    list of torch.Tensor
        One ``(in, out)`` matrix per linear layer (the transpose of ``nn.Linear.weight``).
    """
    if not std > 0:
        raise ValueError(f"The initial weight std must be positive, got {std}.")
    gen = torch.Generator().manual_seed(int(seed))
    return [
        (torch.randn(n_in, n_out, generator=gen, dtype=torch.float64) * std).to(dtype)
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def load_weights_(model: nn.Sequential, weights: Sequence[torch.Tensor]) -> nn.Sequential:
    """Copy ``(in, out)`` weight matrices into a :func:`~bnguide.models.build_mlp` model.

    Its biases are set to zero.

    Batch-norm layers are reset to ``weight=1, bias=0`` and fresh running statistics, so the
    model starts exactly like the stacked nets of :mod:`bnguide.training`.

    Parameters
    ----------
    model : torch.nn.Sequential
        A model made by :func:`bnguide.models.build_mlp`.
    weights : sequence of torch.Tensor
        One ``(in, out)`` matrix per linear layer, input layer first (for example from
        :func:`draw_weights`).

    Returns
    -------
    torch.nn.Sequential
        The same model, modified in place.
    """
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if len(linears) != len(weights):
        raise ValueError(
            f"The model has {len(linears)} linear layers but got {len(weights)} weights."
        )
    with torch.no_grad():
        for layer, w in zip(linears, weights, strict=True):
            if tuple(layer.weight.shape) != tuple(w.shape[::-1]):
                raise ValueError(
                    f"Weight of shape {tuple(w.shape)} does not fit nn.Linear({layer.in_features}, "
                    f"{layer.out_features}); pass (in, out) matrices."
                )
            layer.weight.copy_(w.T)
            if layer.bias is not None:
                layer.bias.zero_()
        for m in model:
            if isinstance(m, nn.BatchNorm1d):
                m.reset_parameters()
    return model


# --- many nets of one spec, trained at once -------------------------------------------------
# Each member is an independent net; tensors carry a leading member axis M and every reduction
# is per member, so members never mix. Hidden activations are stored batch-major (memory laid
# out as (B, M, n), seen as (M, B, n) views), so that all members' units form the channels of
# one (B, M * n) matrix: PyTorch's native batch-norm kernels then normalize every unit of every
# member in one call. The backward pass is written out by hand (tests compare it with autograd).

_ACT_FORWARD = {
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "identity": lambda z: z,
}
_ACT_BACKWARD = {  # (grad of the output, the output) -> grad of the input
    "sigmoid": torch.ops.aten.sigmoid_backward,
    "relu": lambda g, s: torch.ops.aten.threshold_backward(g, s, 0.0),
    "tanh": torch.ops.aten.tanh_backward,
    "identity": lambda g, s: g,
}


@dataclass(frozen=True)
class _Layer:
    """One linear layer of a StackedMLP and the BN that follows it, if any (views, not copies)."""

    weight: torch.Tensor  # (M, in, out)
    bias: torch.Tensor | None  # (M, 1, out); None when BN follows
    bn_weight: torch.Tensor | None  # (M, 1, out); None without BN
    bn_bias: torch.Tensor | None
    bn: tuple[torch.Tensor, ...] | None  # (M * out,) views: bn_weight, bn_bias, running mean, var


def _batch_major(members: int, batch: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """An empty ``(M, B, n)`` view of ``(B, M, n)`` memory."""
    return torch.empty(batch, members, n, dtype=like.dtype, device=like.device).transpose(0, 1)


def _channels(t: torch.Tensor) -> torch.Tensor:
    """``(M, B, n)`` as the ``(B, M * n)`` matrix batch norm sees (a view when batch-major)."""
    return t.transpose(0, 1).reshape(t.shape[1], -1)


class StackedMLP(nn.Module):
    """``members`` independent copies of one :class:`~bnguide.models.MLPSpec`, stacked parameters.

    Parameters
    ----------
    spec : MLPSpec
        The architecture every member shares.
    members : int
        Number of nets ``M``.
    device, dtype
        Where the parameters live (build it there: the training step relies on their layout).

    Notes
    -----
    Parameters (in this order, per linear layer ``l``): ``weight{l}`` ``(M, in, out)``,
    ``bias{l}`` ``(M, 1, out)`` unless BN follows the layer, and for normalized hidden layers
    ``bn_weight{l}``, ``bn_bias{l}`` ``(M, 1, out)``; buffers ``running_mean{l}``,
    ``running_var{l}``. Member ``i`` equals ``build_mlp(spec)`` loaded with :meth:`member`.
    Initially weights are zero: set them with :meth:`load_weights_`. The mode (batch or running
    statistics) follows ``self.training``, as in ``torch.nn.BatchNorm1d``, whose kernels
    (``native_batch_norm`` and its backward) normalize here too.

    Shape
    -----
    Input ``(M, B, in)`` (one batch per member) or ``(B, in)`` (one batch for all); output
    ``(M, B, out)``.
    """

    def __init__(
        self,
        spec: MLPSpec,
        members: int,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if int(members) != members or members < 1:
            raise ValueError(f"members must be a positive integer, got {members}.")
        self.spec, self.members = spec, int(members)
        self._layer_cache = None  # (storage key, list of _Layer); see _layers
        sizes, hidden = spec.sizes, len(spec.hidden)
        kw = {"device": device, "dtype": dtype}
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            shape = (members, 1, n_out)
            self.register_parameter(
                f"weight{l}", nn.Parameter(torch.zeros(members, n_in, n_out, **kw))
            )
            if spec.has_bias(l):
                self.register_parameter(f"bias{l}", nn.Parameter(torch.zeros(shape, **kw)))
            if l < hidden and spec.placement != "none":
                self.register_parameter(f"bn_weight{l}", nn.Parameter(torch.ones(shape, **kw)))
                self.register_parameter(f"bn_bias{l}", nn.Parameter(torch.zeros(shape, **kw)))
                self.register_buffer(f"running_mean{l}", torch.zeros(shape, **kw))
                self.register_buffer(f"running_var{l}", torch.ones(shape, **kw))

    def _get(self, name: str, l: int):
        return getattr(self, f"{name}{l}", None)

    def _layers(self) -> list[_Layer]:
        """Every layer's tensors, as the forward and backward passes use them.

        Outside autograd the views are built once and reused while the parameters keep their
        storage (an in-place update keeps it; ``.to()``, ``.double()`` or a copy do not):
        looking them up on every step costs as much as a small layer's arithmetic.
        """
        if torch.is_grad_enabled():  # fresh views, so that gradients reach the parameters
            return self._build_layers()
        key = tuple(t.data_ptr() for t in (*self._parameters.values(), *self._buffers.values()))
        if self._layer_cache is None or self._layer_cache[0] != key:
            self._layer_cache = (key, self._build_layers())
        return self._layer_cache[1]

    def _build_layers(self) -> list[_Layer]:
        layers = []
        for l in range(len(self.spec.sizes) - 1):
            bn = None
            if self._get("bn_weight", l) is not None:
                names = ("bn_weight", "bn_bias", "running_mean", "running_var")
                bn = tuple(self._get(name, l).view(-1) for name in names)
            tensors = [self._get(name, l) for name in ("weight", "bias", "bn_weight", "bn_bias")]
            layers.append(_Layer(*tensors, bn))
        return layers

    def load_weights_(self, weights: Sequence[torch.Tensor]) -> StackedMLP:
        """Set every linear weight from ``(M, in, out)`` tensors; reset all other state.

        Biases and BN shifts become 0, BN scales 1, running statistics ``mean 0, var 1``.
        """
        sizes = self.spec.sizes
        if len(weights) != len(sizes) - 1:
            raise ValueError(f"Expected {len(sizes) - 1} weight tensors, got {len(weights)}.")
        with torch.no_grad():
            for l, w in enumerate(weights):
                target = self._get("weight", l)
                if tuple(w.shape) != tuple(target.shape):
                    raise ValueError(
                        f"weight{l} must have shape {tuple(target.shape)} (members, in, out), "
                        f"got {tuple(w.shape)}."
                    )
                target.copy_(w)
            for name, p in self.named_parameters():
                if not name.startswith("weight"):
                    p.fill_(1.0 if name.startswith("bn_weight") else 0.0)
            for name, b in self.named_buffers():
                b.fill_(1.0 if name.startswith("running_var") else 0.0)
        return self

    def forward(self, x: torch.Tensor, *, probe: bool = False):
        """Logits of every member (differentiable by autograd).

        Parameters
        ----------
        x : torch.Tensor
            ``(M, B, in)`` or ``(B, in)``.
        probe : bool
            Also return the input to every hidden layer's activation.

        Returns
        -------
        logits : torch.Tensor
            ``(M, B, out)``.
        probes : list of torch.Tensor, only when ``probe``
            ``(M, B, hidden[l])`` per hidden layer.
        """
        logits, caches = self._forward(x, keep=probe)
        return (logits, [c["act_in"] for c in caches[:-1]]) if probe else logits

    # -- forward ------------------------------------------------------------------------------

    def _linear(self, h, layer):
        w, b = layer.weight, layer.bias
        if h.dim() == 2:  # one batch shared by all members: one wide matrix product
            n_in, n_out = w.shape[1:]
            wide = w.transpose(0, 1).reshape(n_in, -1)  # (in, M * out)
            a = (h @ wide).view(len(h), self.members, n_out).transpose(0, 1)  # (M, B, out)
            return a if b is None else a + b
        if b is not None:
            return torch.baddbmm(b, h, w)  # (M, B, out)
        if torch.is_grad_enabled():  # autograd path: no out= arguments
            return torch.bmm(h, w)
        # BN follows: write the product batch-major, ready for the batch-norm kernel
        return torch.bmm(h, w, out=_batch_major(self.members, h.shape[1], w.shape[2], h))

    def _bn(self, a, layer, cache):
        members, n, width = a.shape
        a2 = _channels(a)  # (B, M * n)
        if not self.training:
            y2 = torch.batch_norm(a2, *layer.bn, False, 0.0, self.spec.eps, False)
        else:
            if n < 2:
                raise ValueError("Expected more than 1 value per channel when training")
            # Algorithm 1 per channel; running stats: (1 - m) old + m batch, unbiased variance
            y2, mean, invstd = torch.ops.aten.native_batch_norm(
                a2, *layer.bn, True, self.spec.momentum, self.spec.eps
            )
            cache.update(bn_in=a2, bn_mean=mean, bn_invstd=invstd)
        return y2.view(n, members, width).transpose(0, 1)  # (M, B, n), batch-major

    def _forward(self, x, keep):
        spec = self.spec
        act = _ACT_FORWARD[spec.activation]
        if x.dim() not in (2, 3) or x.shape[-1] != spec.in_features:
            raise ValueError(
                f"Expected input of shape (B, {spec.in_features}) or (members, B, "
                f"{spec.in_features}), got {tuple(x.shape)}."
            )
        if x.dim() == 3 and x.shape[0] != self.members:
            raise ValueError(f"Input has {x.shape[0]} batches for {self.members} members.")
        layers = self._layers()
        caches, h = [], x
        for layer in layers[:-1]:
            cache = {"h": h}
            a = self._linear(h, layer)  # (M, B, n)
            if spec.placement == "before":
                a = self._bn(a, layer, cache)
            h = act(a)
            if spec.placement == "after":
                cache["s"] = h
                h = self._bn(h, layer, cache)
            cache.update(act_in=a, out=h)
            caches.append(cache if keep else {"act_in": a})
        caches.append({"h": h})
        return self._linear(h, layers[-1]), caches

    # -- backward -----------------------------------------------------------------------------

    def _bn_backward(self, d, layer, cache):
        members, n, width = d.shape
        weight, _, mean, var = layer.bn
        dx2, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
            _channels(d), cache["bn_in"], weight, mean, var, cache["bn_mean"], cache["bn_invstd"],
            True, self.spec.eps, [True, True, True],
        )  # fmt: skip
        shape = (members, 1, width)
        return dx2.view(n, members, width).transpose(0, 1), dgamma.view(shape), dbeta.view(shape)

    def _backward(self, layers, caches, d, weight_grad, grad):
        """Walk back from ``d`` (grad of the logits), reporting each parameter's gradient.

        ``weight_grad(weight, h, d)`` receives a linear layer's weight, input and output
        gradient (the weight gradient is ``h^T d``); ``grad(parameter, g)`` receives every other
        gradient. Each weight is used for the layer below before ``weight_grad`` is called, so
        it may update it.
        """
        spec = self.spec
        act_grad = _ACT_BACKWARD[spec.activation]
        for l in range(len(layers) - 1, -1, -1):
            layer, c = layers[l], caches[l]
            if l < len(spec.hidden):  # d: the gradient w.r.t. this hidden layer's output
                if spec.placement == "after":
                    d, g_weight, g_bias = self._bn_backward(d, layer, c)
                    grad(layer.bn_weight, g_weight)
                    grad(layer.bn_bias, g_bias)
                    d = act_grad(d, c["s"])
                else:
                    d = act_grad(d, c["out"])
                if spec.placement == "before":
                    d, g_weight, g_bias = self._bn_backward(d, layer, c)
                    grad(layer.bn_weight, g_weight)
                    grad(layer.bn_bias, g_bias)
            if layer.bias is not None:
                grad(layer.bias, d.sum(1, keepdim=True))  # (M, 1, out)
            w, d_below = layer.weight, None
            if l > 0:  # (M, B, in), batch-major
                d_below = _batch_major(self.members, d.shape[1], w.shape[1], d)
                torch.bmm(d, w.transpose(1, 2), out=d_below)
            weight_grad(w, c["h"], d)
            d = d_below

    def _loss(self, x, y):
        logits, caches = self._forward(x, keep=True)  # (M, B, C)
        n = logits.shape[1]
        logp = torch.log_softmax(logits, dim=-1)  # (M, B, C)
        index = y.expand(self.members, n).unsqueeze(-1)  # (M, B, 1)
        loss = -logp.gather(2, index).squeeze(-1).mean(1)  # (M,)
        # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / B
        d = logp.exp_().scatter_add_(2, index, torch.full_like(logp[..., :1], -1.0)).div_(n)
        return loss, caches, d

    def _weight_gradient(self, h, d):
        if h.dim() == 2:  # shared input: one wide product, then split per member
            n_out = d.shape[-1]
            wide = h.T @ d.transpose(0, 1).reshape(len(h), -1)  # (in, M * out)
            return wide.view(-1, self.members, n_out).transpose(0, 1)
        return torch.bmm(h.transpose(1, 2), d)  # (M, in, out)

    @torch.no_grad()
    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor):
        """Cross-entropy of every member and its gradient, by a hand-written backward pass.

        Runs one forward pass in the current mode (updating BN's running statistics when
        training), then the backward pass, without autograd.

        Parameters
        ----------
        x : torch.Tensor
            ``(M, B, in)`` or ``(B, in)``.
        y : torch.Tensor
            Integer labels ``(M, B)`` or ``(B,)``.

        Returns
        -------
        loss : torch.Tensor
            ``(M,)``, each member's mean cross-entropy over its batch.
        grads : list of torch.Tensor
            The gradient of each member's loss, in the order of ``self.parameters()``.
        """
        loss, caches, d = self._loss(x, y)
        grads = {}  # id(parameter) -> its gradient

        def weight_grad(w, h, d):
            grads[id(w)] = self._weight_gradient(h, d)

        def grad(p, g):
            grads[id(p)] = g

        self._backward(self._layers(), caches, d, weight_grad, grad)
        return loss, [grads[id(p)] for p in self.parameters()]

    @torch.no_grad()
    def sgd_step_(self, x: torch.Tensor, y: torch.Tensor, lr: float | torch.Tensor) -> torch.Tensor:
        """One plain SGD step of every member, fused with the backward pass.

        Same result as ``p -= lr * g`` with the gradients of :meth:`loss_and_grads`, but each
        weight gradient is accumulated straight into the weight (``baddbmm_``) without being
        stored.

        Parameters
        ----------
        x, y : torch.Tensor
            As for :meth:`loss_and_grads`; ``x`` must be ``(M, B, in)``.
        lr : float or torch.Tensor
            One learning rate, or one per member ``(M,)``.

        Returns
        -------
        torch.Tensor
            ``(M,)``, each member's loss before the step.
        """
        if x.dim() != 3:
            raise ValueError("sgd_step_ needs one batch per member: x of shape (M, B, in).")
        loss, caches, d = self._loss(x, y)
        per_member = torch.is_tensor(lr)
        neg_lr = -lr.view(-1, 1, 1).to(d) if per_member else -float(lr)

        def weight_grad(w, h, d):
            if per_member:
                w.baddbmm_(h.transpose(1, 2), d * neg_lr)
            else:
                w.baddbmm_(h.transpose(1, 2), d, alpha=neg_lr)

        def grad(p, g):
            p.addcmul_(g, neg_lr) if per_member else p.add_(g, alpha=neg_lr)

        self._backward(self._layers(), caches, d, weight_grad, grad)
        return loss

    def member(self, i: int) -> nn.Sequential:
        """Member ``i`` as a standard :func:`bnguide.models.build_mlp` model (a copy, same mode)."""
        if not 0 <= i < self.members:
            raise IndexError(f"member {i} out of range for {self.members} members.")
        ref = self.weight0
        model = build_mlp(self.spec, device=ref.device, dtype=ref.dtype)
        linears = [m for m in model if isinstance(m, nn.Linear)]
        bns = iter(m for m in model if isinstance(m, nn.BatchNorm1d))
        with torch.no_grad():
            for l, lin in enumerate(linears):
                lin.weight.copy_(self._get("weight", l)[i].T)
                if lin.bias is not None:
                    lin.bias.copy_(self._get("bias", l)[i, 0])
                if l < len(self.spec.hidden) and self.spec.placement != "none":
                    bn = next(bns)
                    bn.weight.copy_(self._get("bn_weight", l)[i, 0])
                    bn.bias.copy_(self._get("bn_bias", l)[i, 0])
                    bn.running_mean.copy_(self._get("running_mean", l)[i, 0])
                    bn.running_var.copy_(self._get("running_var", l)[i, 0])
        return model.train(self.training)
