"""The command line: ``python -m bnguide list | run NAME [options] | plot DIR | cache clear``.

``run`` maps ``--steps``, ``--seeds`` and ``--device`` onto the experiment's ``Config`` fields
(an experiment without such a field says so), trains with a progress bar, and writes to
``--out`` (default ``artifacts/NAME``): ``result.pkl`` (the pickled Result, which ``plot``
reads back without retraining), ``config.txt`` and the figures. Used in chapter *BN in
practice* (page *Reproducing Ioffe & Szegedy on MNIST*) and by CI.

Examples
--------
>>> from bnguide.cli import build_parser
>>> args = build_parser().parse_args(["run", "ghost-batch", "--seeds", "1"])
>>> args.command, args.name, args.seeds
('run', 'ghost-batch', 1)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from bnguide import experiments
from bnguide.cache import cache_dir, clear_cache

__all__ = ["CLIError", "build_parser", "load_result", "main", "make_config", "plotter"]

RESULT_FILE = "result.pkl"


class CLIError(Exception):
    """A problem with the command line's arguments; its message is shown to the user."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m bnguide``.

    Returns
    -------
    argparse.ArgumentParser
        The parser, with the subcommands ``list``, ``run``, ``plot`` and ``cache``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bnguide", description="Run the experiments of the bnguide book."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", help="run one experiment and write its results and figures")
    run.add_argument("name", help="experiment name (see `list`)")
    run.add_argument("--steps", type=_positive_int, help="training steps per net")
    run.add_argument("--seeds", type=_positive_int, metavar="K", help="number of seeds (0..K-1)")
    run.add_argument("--device", help="torch device, e.g. cpu or cuda")
    run.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    run.add_argument("--out", type=Path, help="output folder (default: artifacts/NAME)")
    plot = sub.add_parser("plot", help="redraw the figures of a finished run from its folder")
    plot.add_argument("folder", type=Path, help=f"a folder written by `run` (holds {RESULT_FILE})")
    cache = sub.add_parser("cache", help="manage the experiment cache")
    cache.add_argument("action", choices=["clear", "path"], help="clear it, or print its folder")
    return parser


def _check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise CLIError(
            f"invalid device {device!r}: not a torch device name. Use cpu or cuda."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(
            f"device {device!r} is not available: this PyTorch sees no CUDA GPU "
            "(torch.cuda.is_available() is False). Use --device cpu."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CLIError(f"device {device!r} does not exist: {torch.cuda.device_count()} GPU(s).")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"device {device!r} is not available on this machine. Use --device cpu.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise CLIError(f"device type {dev.type!r} is not supported. Use cpu or cuda.")


def make_config(module: ModuleType, overrides: dict[str, Any]):
    """The experiment's default ``Config`` with the given fields replaced.

    ``seeds=K`` becomes ``(0, ..., K-1)`` when the field holds a tuple of seeds.

    Parameters
    ----------
    module : module
        An experiment module.
    overrides : dict of str to object
        Field name -> new value; ``None`` values are ignored.

    Raises
    ------
    CLIError
        If the experiment has no such field, or its Config rejects the value.
    """
    fields = {f.name: f for f in dataclasses.fields(module.Config)}
    default = module.Config()
    changes = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in fields:
            known = ", ".join(fields)
            raise CLIError(
                f"experiment {module.NAME!r} has no setting {key!r} (--{key}); "
                f"its settings are: {known}."
            )
        if key == "seeds" and isinstance(getattr(default, key), tuple):
            value = tuple(range(value))
        changes[key] = value
    try:
        return dataclasses.replace(default, **changes)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"invalid settings for {module.NAME!r}: {exc}") from None


def plotter(module: ModuleType) -> Callable[[Any, Path], Any] | None:
    """The ``plot_result(result, outdir)`` of an experiment, if it has one.

    Looked up in the experiment module, then in the module named by its ``PLOTS`` attribute,
    then in ``bnguide.plots.<module name>``.

    Parameters
    ----------
    module : module
        An experiment module.

    Returns
    -------
    callable or None
        ``plot_result(result, outdir)``, or None when the experiment has no plots.
    """
    if hasattr(module, "plot_result"):
        return module.plot_result
    candidates = [
        getattr(module, "PLOTS", None),
        f"bnguide.plots.{module.__name__.rsplit('.', 1)[-1]}",
    ]
    for name in filter(None, candidates):
        try:
            plots = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        if hasattr(plots, "plot_result"):
            return plots.plot_result
    return None


def load_result(folder: str | Path):
    """The Result that ``run`` wrote to ``folder``; returns ``(experiment module, result)``.

    Parameters
    ----------
    folder : str or pathlib.Path
        A folder written by ``python -m bnguide run``.
    """
    path = Path(folder) / RESULT_FILE
    if not path.is_file():
        raise CLIError(f"{str(path)!r} does not exist: pass a folder written by `run`.")
    with open(path, "rb") as f:
        saved = pickle.load(f)
    return experiments.get(saved["experiment"]), saved["result"]


def _write_figures(module, result, out: Path) -> list[Path]:
    plot = plotter(module)
    if plot is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    from bnguide import style

    style.use()
    return list(plot(result, out) or [])


def _run(args) -> int:
    try:
        module = experiments.get(args.name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.device is not None:
        _check_device(args.device)
    config = make_config(module, {"steps": args.steps, "seeds": args.seeds, "device": args.device})
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path("artifacts") / module.NAME
    out.mkdir(parents=True, exist_ok=True)
    print(f"{module.NAME}: {config}", flush=True)
    start = time.perf_counter()
    result = module.run(config, progress=True)
    seconds = time.perf_counter() - start
    with open(out / RESULT_FILE, "wb") as f:
        pickle.dump({"experiment": module.NAME, "result": result}, f)
    (out / "config.txt").write_text(f"{config!r}\n")
    figures = _write_figures(module, result, out)
    print(f"done in {seconds:.1f} s; wrote {out / RESULT_FILE}")
    for path in figures:
        print(f"figure: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bnguide``; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The command-line arguments, without the program name; by default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on a usage error.
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            for name, module in experiments.available().items():
                print(f"{name:24s} {getattr(module, 'DESCRIPTION', '')}")
            return 0
        if args.command == "run":
            return _run(args)
        if args.command == "plot":
            module, result = load_result(args.folder)
            for path in _write_figures(module, result, args.folder):
                print(f"figure: {path}")
            return 0
        if args.action == "clear":
            print(f"removed {clear_cache()} cached result(s) from {cache_dir()}")
        else:
            print(cache_dir())
        return 0
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
