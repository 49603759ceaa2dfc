"""The one SGD loop, and training on in-memory classification data with it.

:func:`run_sgd` is the loop every experiment that trains one set of parameters goes through:
the loss of each step comes from a function, and hooks probe the gradients before each update
and the model after it. :func:`train` feeds it mini-batches of in-memory data with
cross-entropy: the whole dataset stays in tensors; each epoch is one ``randperm`` and the last
incomplete batch is dropped (so no batch of one example ever reaches a batch-norm layer). Used
by the experiments of the part *BN in practice*, the Santurkar et al. MLPs
(:mod:`bnguide.training.santurkar`) and the deep linear network
(:mod:`bnguide.experiments.santurkar_deep_linear`).

Examples
--------
>>> import torch
>>> from bnguide.training.fit import evaluate, train
>>> from bnguide.models.norm_mlp import NormMLP
>>> x, y = torch.randn(256, 20), torch.randint(0, 2, (256,))
>>> model = NormMLP(20, (32,), 2, norm="batch")
>>> losses = train(model, x, y, batch_size=32, steps=50, lr=0.1)
>>> losses.shape  # one training loss per step
torch.Size([50])
>>> loss, accuracy = evaluate(model, x, y)
>>> 0 <= accuracy <= 1
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from bnguide.precise_bn import batch_statistics, bn_layers

__all__ = [
    "check_batch_size",
    "evaluate",
    "minibatches",
    "run_sgd",
    "single_thread",
    "torch_threads",
    "train",
]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` CPU threads inside the block, restoring the thread count after.

    Parameters
    ----------
    n : int
        Threads for torch's CPU operations.

    Yields
    ------
    None
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_thread() -> contextlib.AbstractContextManager[None]:
    """Run torch on one CPU thread inside the block, restoring the thread count after.

    The small networks of the book gain nothing from several threads, lose much when the cores
    are shared; on one thread, results also do not depend on how many cores the machine has.

    Returns
    -------
    context manager
        ``with single_thread(): ...``; the same as ``torch_threads(1)``.
    """
    return torch_threads(1)


def check_batch_size(batch_size: int, model: nn.Module | None = None, where: str = "train") -> None:
    """Raise ``ValueError`` for a training batch size that batch statistics cannot use.

    Every batch-wise normalizer needs two examples to have a variance; without one in ``model``,
    one example per batch is allowed.

    Parameters
    ----------
    batch_size : int
        The batch size to check.
    model : torch.nn.Module, optional
        The model; batch size 1 is allowed when it has no batch-wise normalizer.
    where : str, optional
        Where the batch size is used, for the error message.
    """
    needs_two = model is None or bool(bn_layers(model))
    minimum = 2 if needs_two else 1
    if int(batch_size) != batch_size or batch_size < minimum:
        raise ValueError(
            f"{where}: batch_size must be an integer >= {minimum}, got {batch_size}. "
            + (
                "Batch normalization estimates a variance from each batch and needs at least "
                "2 examples per batch in training."
                if needs_two
                else ""
            )
        )


def minibatches(
    n: int, batch_size: int, generator: torch.Generator, device: str | torch.device = "cpu"
) -> Iterator[torch.Tensor]:
    """Endless index batches: a fresh permutation of ``range(n)`` each epoch, no short batch.

    Parameters
    ----------
    n : int
        Number of examples.
    batch_size : int
        Examples per batch.
    generator : torch.Generator
        Source of the random permutations.
    device : str or torch.device, optional
        Where the index tensors live.

    Yields
    ------
    torch.Tensor
        ``(batch_size,)`` int64 indices into the data.

    Raises
    ------
    ValueError
        If ``batch_size`` exceeds ``n`` (no full batch exists).
    """
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the {n} training examples.")
    while True:
        order = torch.randperm(n, generator=generator).to(device)  # (n,)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]  # (batch_size,)


def run_sgd(
    parameters: Iterable[torch.Tensor],
    loss_at: Callable[[int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    momentum: float = 0.0,
    clip_grad_norm: float | None = None,
    before_update: Callable[[int, torch.Tensor], bool | None] | None = None,
    after_update: Callable[[int], None] | None = None,
    progress: str | None = None,
) -> torch.Tensor:
    """The one SGD loop: ``steps`` updates of ``parameters`` by ``torch.optim.SGD``.

    Each step computes ``loss = loss_at(step)``, back-propagates ``loss.sum()`` (a tensor of
    losses, e.g. one per stacked network, is minimized as their sum), clips, calls
    ``before_update``, updates, records the summed loss and calls ``after_update``.

    Parameters
    ----------
    parameters : iterable of torch.Tensor
        Leaf tensors with ``requires_grad``.
    loss_at : callable
        ``loss_at(step)`` returns the loss tensor of step ``step`` (counting from 0), with its
        autograd graph.
    steps : int
        Number of updates.
    lr, momentum : float
        SGD settings.
    clip_grad_norm : float, optional
        Rescale the gradient to at most this norm before each update.
    before_update : callable, optional
        ``before_update(step, loss)`` after the backward pass, before the update: the
        parameters' ``.grad`` hold the gradients the update is about to use. Returning True
        stops training there, without that update.
    after_update : callable, optional
        ``after_update(step)`` after each update, ``step`` counting from 1.
    progress : str, optional
        Show a progress bar with this label.

    Returns
    -------
    torch.Tensor
        ``(steps,)`` summed loss of each step (before its update); shorter when
        ``before_update`` stopped training.
    """
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"run_sgd: steps must be a positive integer, got {steps!r}.")
    params = list(parameters)
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum)
    losses = torch.empty(steps)
    for step in tqdm(range(steps), disable=progress is None, desc=progress):
        loss = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(params, clip_grad_norm)
        if before_update is not None and before_update(step, loss):
            return losses[:step]
        optimizer.step()
        losses[step] = loss.detach().sum()
        if after_update is not None:
            after_update(step + 1)
    return losses


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    steps: int,
    lr: float,
    momentum: float = 0.9,
    seed: int = 0,
    clip_grad_norm: float | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
    before_update: Callable[..., bool | None] | None = None,
    shard: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Train ``model`` with SGD (cross-entropy) for ``steps`` mini-batches; return the losses.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``x[idx]`` to logits; left in training mode.
    x, y : torch.Tensor
        Inputs ``(N, *)`` and int64 labels ``(N,)``, on the model's device.
    batch_size, steps : int
        Examples per step and number of steps.
    lr, momentum : float
        SGD settings (``torch.optim.SGD``).
    seed : int
        Seeds the shuffling only (seed the model's initialization and dropout separately).
    clip_grad_norm : float, optional
        Rescale the gradient to at most this norm before each update (recurrent nets).
    on_step : callable, optional
        Called as ``on_step(step, model)`` after each update, ``step`` counting from 1. It may
        switch the model to eval mode; training mode is restored after it.
    before_update : callable, optional
        Called as ``before_update(step, model, loss, idx, logits)`` after the backward pass of
        each step and before its update (``step`` counting from 0, ``idx`` the batch's indices
        ``(B,)``, ``logits`` the model's output on that batch ``(B, classes)``): a probe of the
        parameters and gradients the update is about to use. Returning True stops training
        there, without that update (a diverged run).
    shard : (rank, world_size), optional
        Data-parallel training: draw global batches of ``batch_size * world_size`` examples
        (the same ones on every rank, from ``seed``) and train on this rank's slice of
        ``batch_size``. Average the gradients over the ranks in ``before_update``.

    Returns
    -------
    torch.Tensor
        ``(steps,)`` training loss of each mini-batch (before its update); shorter when
        ``before_update`` stopped training.
    """
    check_batch_size(batch_size, model)
    if steps < 1:
        raise ValueError(f"train: steps must be a positive integer, got {steps}.")
    rank, world_size = (0, 1) if shard is None else shard
    if not 0 <= rank < world_size:
        raise ValueError(
            f"train: shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}."
        )
    generator = torch.Generator().manual_seed(seed)
    batches = minibatches(len(x), batch_size * world_size, generator, x.device)
    batch: dict = {}  # this step's indices and logits, for before_update

    def loss_at(step: int) -> torch.Tensor:
        batch["idx"] = next(batches)[rank * batch_size : (rank + 1) * batch_size]  # (B,)
        batch["logits"] = model(x[batch["idx"]])  # (B, classes)
        return F.cross_entropy(batch["logits"], y[batch["idx"]])

    def probe(step: int, loss: torch.Tensor) -> bool | None:
        return before_update(step, model, loss, batch["idx"], batch["logits"])

    def report(step: int) -> None:
        on_step(step, model)
        model.train()

    model.train()
    return run_sgd(
        model.parameters(),
        loss_at,
        steps=steps,
        lr=lr,
        momentum=momentum,
        clip_grad_norm=clip_grad_norm,
        before_update=None if before_update is None else probe,
        after_update=None if on_step is None else report,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 2000,
    batch_stats: bool = False,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode; its mode is restored after.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier.
    x, y : torch.Tensor
        Inputs ``(N, *)`` and labels ``(N,)``.
    batch_size : int
        Examples per forward pass. With ``batch_stats`` it is also the batch whose statistics
        normalize it.
    batch_stats : bool
        Normalize BN layers with each evaluation batch's own statistics
        (:func:`bnguide.precise_bn.batch_statistics`) instead of the running statistics.

    Returns
    -------
    (loss, accuracy) : tuple of float
    """
    if batch_stats and len(x) % batch_size == 1:
        raise ValueError(
            f"evaluate: {len(x)} examples in batches of {batch_size} leave a last batch of one "
            "example, which has no batch statistics. Pick a batch_size that does not leave one."
        )
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with batch_statistics(model) if batch_stats else contextlib.nullcontext():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size])  # (B, classes)
            target = y[start : start + batch_size]
            total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    return total_loss / len(x), correct / len(x)
