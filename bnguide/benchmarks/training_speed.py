"""How fast is the full Ioffe & Szegedy reproduction next to a plain PyTorch training loop?

Times, in one run, the ``ioffe-mnist`` experiment (2 nets x 3 seeds x 50,000 steps with the
paper's evaluation schedule) trained by :mod:`bnguide.training`, and the same work done by the
loop most tutorials write: one ``nn.Sequential`` per net and seed, ``torch.optim.SGD``, and
per step ``model(x[idx])``, ``F.cross_entropy``, ``zero_grad``, ``backward``, ``step``. Both
start from the same weights, see the same batches and evaluate at the same steps (test accuracy
and the sigmoid-input percentiles), so their final accuracies agree up to float32 rounding;
the script prints both, the times and the ratio.

Run ``python -m bnguide.benchmarks.training_speed`` (about 10-20 minutes on a 2-core CPU,
mostly the plain loop); ``--quick`` for a 1,000-step run, ``--plain-steps N`` to time the plain
loop on the first N steps only and extrapolate linearly (reported as such), ``--device cuda``
on a GPU. Used in chapter *BN in practice* (page *Reproducing Ioffe & Szegedy on MNIST*).

Examples
--------
>>> from bnguide.benchmarks import training_speed
>>> training_speed.main(["--quick"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bnguide.data import load_data
from bnguide.experiments import ioffe_mnist
from bnguide.models import build_mlp, draw_weights, load_weights_
from bnguide.training.variants import BATCH_SEED_OFFSET, evaluation_steps

__all__ = ["main", "plain_loop", "time_fast", "time_plain"]


def time_fast(config: ioffe_mnist.Config) -> tuple[float, np.ndarray, list[float]]:
    """Seconds for ``ioffe_mnist.run(config)``, its final accuracies and each worker's time.

    Parameters
    ----------
    config : bnguide.experiments.ioffe_mnist.Config
        The experiment's settings.

    Returns
    -------
    seconds : float
        Wall-clock time of the run.
    accuracies : numpy.ndarray
        ``(2, seeds)`` final test accuracies, without and with BN.
    worker_seconds : list of float
        Time each worker process spent training and evaluating (empty when the run used one
        process): the slowest worker sets the pace.
    """
    load_data(config.dataset, device=config.device)  # parse the files outside the timing
    start = time.perf_counter()
    result = ioffe_mnist.run(config)
    _sync(config.device)
    seconds = time.perf_counter() - start
    return (
        seconds,
        result.log.test_accuracy[:, :, -1],
        result.log.settings.get("worker_seconds", []),
    )


@torch.no_grad()
def _evaluate(model: nn.Sequential, data, probe_unit: int) -> tuple[float, np.ndarray]:
    model.eval()
    seen = []
    hook = model[-2].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    logits = model(data.x_test)  # (N_test, 10)
    hook.remove()
    model.train()
    accuracy = (logits.argmax(1) == data.y_test).float().mean().item()
    z = seen[0]  # (N_test, 100): the input of the last hidden sigmoid
    q = torch.tensor([0.15, 0.5, 0.85], device=z.device)
    unit = torch.quantile(z[:, probe_unit], q)
    pooled = torch.quantile(z[:1000].reshape(-1), q)
    return accuracy, torch.stack([unit, pooled]).cpu().numpy()


def plain_loop(
    variant, seed: int, data, config: ioffe_mnist.Config, steps: int, eval_clock=None
) -> float:
    """Train one net the plain way for ``steps`` steps; return its last test accuracy.

    Parameters
    ----------
    variant : Variant
        The network to train (its layer spec and learning rate), from the Ioffe MNIST experiment.
    seed : int
        Seed of the initial weights and of the batch order.
    data : bnguide.data.Data
        The MNIST tensors, already on the device.
    config : bnguide.experiments.ioffe_mnist.Config
        The experiment's settings (batch size, evaluation steps, initial weights).
    steps : int
        Number of training steps.
    eval_clock : list of float, optional
        When given, the seconds spent in each evaluation are appended to it.

    Returns
    -------
    float
        Test accuracy after the last evaluation, as a fraction.
    """
    model = build_mlp(variant.spec, device=data.device)
    load_weights_(
        model, [w.to(data.device) for w in draw_weights(variant.spec.sizes, config.init_std, seed)]
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=variant.lr)
    evals = set(evaluation_steps(config.steps, config.eval_every, dense_every=config.dense_every,
                                 dense_until=config.dense_until).tolist())  # fmt: skip
    gen = torch.Generator().manual_seed(seed + BATCH_SEED_OFFSET)
    n, b = len(data.x_train), config.batch_size

    def evaluate():
        start = time.perf_counter()
        accuracy = _evaluate(model, data, config.probe_unit)[0]
        if eval_clock is not None:
            eval_clock.append(time.perf_counter() - start)
        return accuracy

    accuracy = evaluate()
    for step in range(steps):
        if step % (n // b) == 0:
            order = torch.randperm(n, generator=gen).to(data.device)  # (N,)
        idx = order[(step % (n // b)) * b : (step % (n // b) + 1) * b]  # (B,)
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step + 1 in evals:
            accuracy = evaluate()
    return accuracy


def time_plain(config: ioffe_mnist.Config, steps: int) -> tuple[float, np.ndarray]:
    """Seconds for the plain loops of every net and seed, and their final accuracies.

    With ``steps`` below ``config.steps`` the time is extrapolated to the full run: training
    time in proportion to the steps, evaluation time in proportion to the number of
    evaluations of the full schedule (the early part of the schedule is denser).

    Parameters
    ----------
    config : bnguide.experiments.ioffe_mnist.Config
        The experiment's settings.
    steps : int
        Number of training steps per network.

    Returns
    -------
    seconds : float
        Wall-clock time of all the plain loops (extrapolated when ``steps < config.steps``).
    accuracies : numpy.ndarray
        ``(2, seeds)`` final test accuracies, without and with BN.
    """
    data = load_data(config.dataset, device=config.device)
    warm = build_mlp(config.variants()[0].spec, device=data.device)  # first-call costs (optim)
    torch.optim.SGD(warm.parameters(), lr=0.1).step()
    clock: list[float] = []
    start = time.perf_counter()
    final = np.array([[plain_loop(v, s, data, config, steps, clock) for s in config.seeds]
                      for v in config.variants()])  # fmt: skip
    _sync(config.device)
    seconds = time.perf_counter() - start
    if steps < config.steps:
        schedule = evaluation_steps(
            config.steps,
            config.eval_every,
            dense_every=config.dense_every,
            dense_until=config.dense_until,
        )
        nets = len(config.variants()) * len(config.seeds)
        training = (seconds - sum(clock)) * config.steps / steps
        seconds = training + np.mean(clock) * len(schedule) * nets
    return seconds, final


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: time both loops and print the ratio.

    Parameters
    ----------
    argv : sequence of str, optional
        The command-line arguments, without the program name; by default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 steps instead of 50,000")
    parser.add_argument("--steps", type=int, help="steps per net (default 50,000)")
    parser.add_argument("--plain-steps", type=int, help="time the plain loop on fewer steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (1_000 if args.quick else ioffe_mnist.Config.steps)
    if steps < 1 or (args.plain_steps is not None and not 1 <= args.plain_steps <= steps):
        parser.error("--steps must be positive and --plain-steps between 1 and --steps")
    config = dataclasses.replace(ioffe_mnist.Config(), steps=steps, device=args.device)
    plain_steps = args.plain_steps or steps
    nets = len(config.variants()) * len(config.seeds)
    print(
        f"Ioffe & Szegedy MNIST reproduction: {len(config.variants())} nets x "
        f"{len(config.seeds)} seeds x {steps:,} steps, batches of {config.batch_size}; "
        f"device {args.device}, {torch.get_num_threads()} CPU thread(s)",
        flush=True,
    )
    fast_s, fast_acc, worker_s = time_fast(config)
    busy = f" (workers busy {', '.join(f'{t:.1f}' for t in worker_s)} s)" if worker_s else ""
    print(f"  bnguide.training (stacked nets, worker processes):{fast_s:8.1f} s{busy}", flush=True)
    plain_s, plain_acc = time_plain(config, plain_steps)
    scaled = plain_s
    note = (
        f" (measured on {plain_steps:,} steps; training time scaled x{steps / plain_steps:g}, "
        "evaluations to the full schedule)"
        if plain_steps < steps
        else ""
    )
    print(f"  plain PyTorch loop ({nets} x nn.Sequential + optim.SGD): {scaled:8.1f} s{note}")
    print(f"  speed-up: {scaled / fast_s:.2f}x")
    for k, v in enumerate(config.variants()):
        print(f"  final test accuracy, {v.name:8s}: stacked {np.round(fast_acc[k], 4)}", end="")
        print(f"  plain {np.round(plain_acc[k], 4)}" if plain_steps == steps else "")


if __name__ == "__main__":
    main()
