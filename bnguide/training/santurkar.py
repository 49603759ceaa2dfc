"""Shared by the Santurkar et al. (2018) experiments: the MNIST net and an instrumented SGD loop.

The paper trains a VGG network on CIFAR-10; here a ReLU MLP on (Fashion-)MNIST stands in for it,
with the paper's other choices kept: Glorot initialisation, plain SGD, batch 128, the same
learning rate with and without normalization. The loop calls ``probes`` at chosen steps with the
step's parameters, gradients and batch, *before* the update, so measurements never change the
training run. Used by the ``santurkar-*`` experiments of :doc:`/book/why/ics` and
:doc:`/book/why/smoothness`.

Examples
--------
>>> from bnguide.training.santurkar import build_mlp, layer_groups
>>> net = build_mlp("bn", hidden=(8, 8))
>>> [weight for weight, _ in layer_groups(net)]
['0.weight', '3.weight', '6.weight']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from bnguide import data
from bnguide.landscape import stateless_copy
from bnguide.norms.lp import LpNorm1d
from bnguide.norms.noisy import CovariateShiftNoise
from bnguide.norms.registry import LP_EXPONENTS
from bnguide.training import fit

__all__ = [
    "NORMS",
    "TrainLog",
    "build_mlp",
    "layer_groups",
    "layer_inputs",
    "load_data",
    "load_test",
    "train",
]

NORMS = ("none", "bn", "l1", "l2", "linf")


def _norm_layer(norm: str, width: int, affine: bool) -> nn.Module:
    if norm == "bn":
        return nn.BatchNorm1d(width, affine=affine)
    return LpNorm1d(width, p=LP_EXPONENTS[norm], affine=affine)


def build_mlp(
    norm: str = "none",
    *,
    noise: bool = False,
    hidden: Sequence[int] = (256, 256, 256, 256),
    in_features: int = 784,
    classes: int = 10,
    affine: bool = True,
    seed: int = 0,
) -> nn.Sequential:
    """``Linear -> [norm] -> [noise] -> ReLU`` per hidden layer, then a linear classifier.

    Parameters
    ----------
    norm : {"none", "bn", "l1", "l2", "linf"}
        The normalization after every hidden linear layer (its bias is dropped: beta replaces it).
    noise : bool
        Add :class:`bnguide.norms.noisy.CovariateShiftNoise` after the normalization (noisy BN), or
        after the linear layer when ``norm="none"``.
    hidden : sequence of int
        Hidden widths.
    affine : bool
        Give the norms a trainable gamma and beta (set False to study their role).
    seed : int
        Seeds the Glorot-uniform weights (a private generator); biases start at zero.

    Returns
    -------
    torch.nn.Sequential
        Input ``(N, in_features)``, output logits ``(N, classes)``.
    """
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}. Use one of: {', '.join(map(repr, NORMS))}.")
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    sizes = (in_features, *hidden, classes)
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        linear = nn.Linear(n_in, n_out, bias=last or norm == "none")
        bound = (6.0 / (n_in + n_out)) ** 0.5
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=gen)
            if linear.bias is not None:
                linear.bias.zero_()
        layers.append(linear)
        if last:
            break
        if norm != "none":
            layers.append(_norm_layer(norm, n_out, affine))
        if noise:
            layers.append(CovariateShiftNoise())
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def layer_groups(net: nn.Sequential) -> list[tuple[str, list[str]]]:
    """Per linear layer: its weight's name and the names of its and its norm's parameters.

    Parameters
    ----------
    net : torch.nn.Sequential
        A net of :func:`build_mlp`.

    Returns
    -------
    list of (str, list of str)
        ``(weight name, [the weight, its bias, the gamma and beta of the norm after it])``.
    """
    groups: list[tuple[str, list[str]]] = []
    for name, _ in net.named_parameters():
        index, kind = name.split(".", 1)
        if isinstance(net[int(index)], nn.Linear) and kind == "weight":
            groups.append((name, [name]))
        else:  # a linear bias, or gamma/beta of the norm that follows the linear layer
            groups[-1][1].append(name)
    return groups


def load_data(dataset: str, n_train: int | None, n_eval: int) -> tuple[Tensor, ...]:
    """Flattened, standardized training images and labels, and a fixed evaluation subset.

    Parameters
    ----------
    dataset : str
        ``"mnist"`` or ``"fashion-mnist"``.
    n_train : int or None
        The first ``n_train`` training images (None: all).
    n_eval : int
        Size of the evaluation subset (the first images of the training set).

    Returns
    -------
    x, y, x_eval, y_eval : torch.Tensor
        ``(N, 784)``, ``(N,)``, ``(n_eval, 784)``, ``(n_eval,)``.
    """
    x, y = data.load(dataset, "train", flatten=True, standardize=True, limit=n_train)
    return x, y, x[:n_eval], y[:n_eval]


def load_test(dataset: str, n_test: int) -> tuple[Tensor, Tensor]:
    """The first ``n_test`` test images, standardized with the training set's statistics.

    Parameters
    ----------
    dataset : str
        ``"mnist"`` or ``"fashion-mnist"``.
    n_test : int
        How many test images.

    Returns
    -------
    x, y : torch.Tensor
        ``(n_test, 784)`` and ``(n_test,)``.
    """
    return data.load(dataset, "test", flatten=True, standardize=True, limit=n_test)


@dataclass
class TrainLog:
    """What :func:`train` records: evaluation steps, accuracies and losses."""

    steps: list[int] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)  # eval mode, fixed subset
    train_loss: list[float] = field(default_factory=list)  # mean mini-batch loss since last eval
    batch_accuracy: list[float] = field(default_factory=list)  # training mode, since last eval
    test_accuracy: list[float] = field(default_factory=list)  # eval mode, when test data given
    diverged_at: int | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "steps": np.asarray(self.steps),
            "train_accuracy": np.asarray(self.train_accuracy),
            "train_loss": np.asarray(self.train_loss),
            "batch_accuracy": np.asarray(self.batch_accuracy),
            "test_accuracy": np.asarray(self.test_accuracy),
        }


@torch.no_grad()
def _accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    was_training = net.training
    net.eval()
    correct = sum(
        int((net(xb).argmax(1) == yb).sum())
        for xb, yb in zip(x.split(2000), y.split(2000), strict=True)
    )
    net.train(was_training)
    return correct / len(y)


Probe = Callable[[int, nn.Module, dict, dict, Tensor, Tensor], None]


def train(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int = 128,
    seed: int = 0,
    eval_every: int = 100,
    eval_data: tuple[Tensor, Tensor] | None = None,
    test_data: tuple[Tensor, Tensor] | None = None,
    probe_steps: Sequence[int] = (),
    probe: Probe | None = None,
) -> TrainLog:
    """Plain SGD on cross-entropy, with measurements at ``probe_steps``.

    Every ``eval_every`` steps the accuracy on ``eval_data`` (and ``test_data``) is recorded in
    eval mode, and beside it the mean accuracy on the mini-batches trained on since the last
    evaluation, in training mode (batch statistics, noise layers on: what the paper plots).

    ``probe(step, net, params, grads, xb, yb)`` is called before the update of ``step`` with
    detached copies of the parameters and their gradients on the step's batch. Training stops
    early (``diverged_at`` set) if the loss becomes non-finite.

    Parameters
    ----------
    net : torch.nn.Module
        The classifier, trained in place.
    x, y : torch.Tensor
        Training inputs ``(N, 784)`` and labels ``(N,)``; each epoch is a fresh permutation.
    steps, lr, batch_size : int, float, int
        SGD steps, step size and examples per step.
    seed : int
        Seeds the batch order only.
    eval_every : int
        Steps between evaluations.
    eval_data, test_data : (Tensor, Tensor), optional
        Evaluated in eval mode every ``eval_every`` steps.
    probe_steps : sequence of int
        The steps at which ``probe`` is called.
    probe : callable, optional
        As above.

    Returns
    -------
    TrainLog
    """
    log = TrainLog()
    probe_at = set(probe_steps)
    running: list[float] = []
    hits: list[float] = []  # accuracy of each mini-batch, in training mode (noise on)

    def evaluate_at(step: int, model: nn.Module) -> None:  # before the update of ``step``
        if step % eval_every == 0 and eval_data is not None:
            log.steps.append(step)
            log.train_accuracy.append(_accuracy(model, *eval_data))
            log.train_loss.append(float(np.mean(running)) if running else float("nan"))
            log.batch_accuracy.append(float(np.mean(hits)) if hits else float("nan"))
            if test_data is not None:
                log.test_accuracy.append(_accuracy(model, *test_data))
            running.clear()
            hits.clear()

    def before_update(
        step: int, model: nn.Module, loss: Tensor, idx: Tensor, logits: Tensor
    ) -> bool:
        if not torch.isfinite(loss):
            log.diverged_at = step
            return True  # stop: no update from a non-finite loss
        running.append(float(loss.detach()))
        hits.append(float((logits.detach().argmax(1) == y[idx]).float().mean()))
        if probe is not None and step in probe_at:
            params = {k: v.detach().clone() for k, v in model.named_parameters()}
            grads = {k: v.grad.detach().clone() for k, v in model.named_parameters()}
            probe(step, model, params, grads, x[idx], y[idx])  # (B, 784), (B,)
        return False

    net.train()
    evaluate_at(0, net)
    if steps > 0:  # plain SGD: the one loop of bnguide.training.fit without momentum
        fit.train(
            net, x, y, batch_size=batch_size, steps=steps, lr=lr, momentum=0.0, seed=seed,
            on_step=evaluate_at, before_update=before_update,
        )  # fmt: skip
    return log


@torch.no_grad()
def layer_inputs(net: nn.Sequential, x: Tensor, layer: int) -> Tensor:
    """What the activation of hidden layer ``layer`` receives, in training mode, on batch ``x``.

    That is the output of the linear layer after its normalization and noise, as the next layer
    sees it during training (batch statistics of ``x``). Runs on a
    :func:`~bnguide.landscape.stateless_copy` under a forked RNG, so running statistics and the
    training run's random stream are left untouched.

    Parameters
    ----------
    net : torch.nn.Sequential
        A net of :func:`build_mlp`.
    x : torch.Tensor
        A batch ``(N, 784)``.
    layer : int
        Hidden layer, from 0.

    Returns
    -------
    Tensor
        ``(N, width)``.
    """
    relus = [m for m in net if isinstance(m, nn.ReLU)]
    if not 0 <= layer < len(relus):
        raise ValueError(f"layer must be in [0, {len(relus) - 1}], got {layer}.")
    clone = stateless_copy(net).train()
    target = [m for m in clone if isinstance(m, nn.ReLU)][layer]
    seen: list[Tensor] = []
    handle = target.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    with torch.random.fork_rng(devices=[]):
        clone(x)
    handle.remove()
    return seen[0]
