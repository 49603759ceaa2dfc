"""Shared by the Santurkar et al. (2018) experiments: the MNIST net and an instrumented SGD loop.

The paper trains a VGG network on CIFAR-10; here a ReLU MLP on (Fashion-)MNIST stands in for it,
with the paper's other choices kept: Glorot initialisation, plain SGD, batch 128, the same
learning rate with and without normalization. The loop calls ``probes`` at chosen steps with the
step's parameters, gradients and batch, *before* the update, so measurements never change the
training run. Used by the ``santurkar-*`` experiments of :doc:`/book/why/ics` and
:doc:`/book/why/smoothness`.

Examples
--------
>>> from bnguide.training.santurkar import glorot_mlp, layer_groups
>>> net = glorot_mlp("batch", hidden=(8, 8))
>>> [weight for weight, _ in layer_groups(net)]
['0.weight', '3.weight', '6.weight']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from bnguide.data import Data
from bnguide.landscape import stateless_copy
from bnguide.norms.noisy import CovariateShiftNoise
from bnguide.norms.registry import SANTURKAR_KINDS, check_kind, make_norm
from bnguide.training import fit
from bnguide.training.log import TrainLog

__all__ = [
    "glorot_mlp",
    "layer_groups",
    "layer_inputs",
    "train",
    "train_mlp",
]


def glorot_mlp(
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

    Glorot-uniform weights drawn from ``seed``, as in Santurkar et al. (2018).

    Parameters
    ----------
    norm : str
        A kind of :data:`bnguide.norms.registry.SANTURKAR_KINDS` (``"none"``, ``"batch"``,
        ``"l1"``, ``"l2"``, ``"linf"``), after every hidden linear layer (its bias is dropped:
        beta replaces it).
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
    check_kind(norm, SANTURKAR_KINDS)
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
            layers.append(make_norm(norm, n_out, affine=affine))
        if noise:
            layers.append(CovariateShiftNoise())
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def layer_groups(net: nn.Sequential) -> list[tuple[str, list[str]]]:
    """Per linear layer: its weight's name and the names of its and its norm's parameters.

    Parameters
    ----------
    net : torch.nn.Sequential
        A net of :func:`glorot_mlp`.

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
    name: str = "net",
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
    name : str
        The log's one variant name.

    Returns
    -------
    TrainLog
        One variant and one seed: ``train_accuracy``, ``batch_accuracy``, ``train_loss`` and
        (with ``test_data``) ``test_accuracy`` shaped ``(1, 1, E)``, ``diverged_at`` ``(1, 1)``.
    """
    rec: dict[str, list[float]] = {k: [] for k in ("train", "batch", "loss", "test")}
    steps_done: list[int] = []
    diverged = [-1]
    probe_at = set(probe_steps)
    running: list[float] = []
    hits: list[float] = []  # accuracy of each mini-batch, in training mode (noise on)

    def evaluate_at(step: int, model: nn.Module) -> None:  # before the update of ``step``
        if step % eval_every == 0 and eval_data is not None:
            steps_done.append(step)
            rec["train"].append(_accuracy(model, *eval_data))
            rec["loss"].append(float(np.mean(running)) if running else float("nan"))
            rec["batch"].append(float(np.mean(hits)) if hits else float("nan"))
            if test_data is not None:
                rec["test"].append(_accuracy(model, *test_data))
            running.clear()
            hits.clear()

    def before_update(
        step: int, model: nn.Module, loss: Tensor, idx: Tensor, logits: Tensor
    ) -> bool:
        if not torch.isfinite(loss):
            diverged[0] = step
            return True  # stop: no update from a non-finite loss
        running.append(float(loss.detach()))
        hits.append(float((logits.detach().argmax(1) == y[idx]).float().mean()))
        if probe is not None and step in probe_at:
            params = {k: v.detach().clone() for k, v in model.named_parameters()}
            grads = {k: v.grad.detach().clone() for k, v in model.named_parameters()}
            probe(step, model, params, grads, x[idx], y[idx])  # (B, 784), (B,)
        return False

    start = time.perf_counter()
    net.train()
    evaluate_at(0, net)
    if steps > 0:  # plain SGD: the one loop of bnguide.training.fit without momentum
        fit.train(
            net, x, y, batch_size=batch_size, steps=steps, lr=lr, momentum=0.0, seed=seed,
            on_step=evaluate_at, before_update=before_update,
        )  # fmt: skip

    def one_run(values):  # (1, 1, E): one variant, one seed
        return np.asarray(values, dtype=np.float64).reshape(1, 1, -1)

    return TrainLog(
        names=(name,),
        seeds=(int(seed),),
        steps=np.asarray(steps_done, dtype=np.int64),
        train_loss=one_run(rec["loss"]),
        diverged_at=np.array([[diverged[0]]], dtype=np.int64),
        seconds=time.perf_counter() - start,
        test_accuracy=one_run(rec["test"]) if test_data is not None else None,
        train_accuracy=one_run(rec["train"]),
        batch_accuracy=one_run(rec["batch"]),
        settings={"steps": int(steps), "batch_size": batch_size, "lr": lr},
    )


def train_mlp(
    norm: str,
    data: Data,
    *,
    seed: int,
    lr: float,
    steps: int,
    hidden: Sequence[int],
    batch_size: int,
    eval_every: int,
    n_eval: int,
    noise: bool = False,
    affine: bool = True,
    test: bool = False,
    probe_steps: Sequence[int] = (),
    make_probe: Callable[[nn.Module], Probe] | None = None,
    name: str | None = None,
) -> tuple[nn.Sequential, TrainLog]:
    """The setup every ``santurkar-*`` MLP run shares: seed, build a :func:`glorot_mlp`, train it.

    Parameters
    ----------
    norm : str
        As for :func:`glorot_mlp`.
    data : bnguide.data.Data
        Standardized images (:func:`bnguide.data.load_data` with ``standardize=True``).
    seed : int
        Seeds the weights, the batch order and the global generator (the noise draws).
    lr, steps, batch_size, eval_every : float, int, int, int
        As for :func:`train`.
    hidden : sequence of int
        Hidden widths.
    n_eval : int
        The training accuracy is measured on the first ``n_eval`` training images.
    noise, affine : bool
        As for :func:`glorot_mlp`.
    test : bool
        Also measure the accuracy on ``data``'s test images.
    probe_steps : sequence of int
        As for :func:`train`.
    make_probe : callable, optional
        ``make_probe(net)`` returns the probe of :func:`train` for the freshly built net.
    name : str, optional
        The log's variant name (by default ``norm``).

    Returns
    -------
    net : torch.nn.Sequential
        The trained net.
    log : TrainLog
        What :func:`train` recorded.
    """
    torch.manual_seed(seed)  # the noise draws come from the global generator
    net = glorot_mlp(norm, noise=noise, hidden=hidden, affine=affine, seed=seed)
    log = train(
        net,
        data.x_train,
        data.y_train,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        eval_every=eval_every,
        eval_data=(data.x_train[:n_eval], data.y_train[:n_eval]),
        test_data=(data.x_test, data.y_test) if test else None,
        probe_steps=probe_steps,
        probe=make_probe(net) if make_probe is not None else None,
        name=norm if name is None else name,
    )
    return net, log


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
        A net of :func:`glorot_mlp`.
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
