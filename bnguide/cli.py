"""The command line: ``python -m bnguide list | run NAME [options] | plot DIR | cache ACTION``.

``run`` maps ``--steps``, ``--seeds`` and ``--device`` onto the experiment's ``Config`` fields
(an experiment without such a field says so), trains with a progress bar, and writes to
``--out`` (default ``artifacts/NAME``): ``result.npz`` (the Result as arrays plus JSON with a
checksum, :mod:`bnguide.results`; ``plot`` reads it back without retraining and never
unpickles anything), ``config.txt``, ``cache-key.txt`` (the run's
:func:`bnguide.cache.cache_key`: experiment, config and the code it runs) and the figures.
``cache list`` shows the key, experiment and size of every cached result (``cache clear``,
``cache path``). Used in chapter *BN in practice* (page *Reproducing Ioffe & Szegedy on
MNIST*) and by CI.

Faults: ``--out`` is created and test-written before any training; when it fails afterwards,
the result goes to a fresh temporary folder (one warning line says where). Every user mistake
is one line ``error: ...`` with exit status 2 (``--debug`` or ``BNGUIDE_DEBUG=1`` shows the
traceback). SIGTERM or SIGHUP stops the run and its worker processes, exit status 128 + signal.

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
import os
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from bnguide import experiments, results
from bnguide.cache import atomic_save, cache_dir, cache_key, clear_cache, list_cache
from bnguide.data import CorruptFileError, DataUnavailableError

__all__ = [
    "CLIError",
    "MAX_SEEDS",
    "MAX_STEPS",
    "build_parser",
    "load_result",
    "main",
    "make_config",
    "plotter",
    "save_result",
    "write_figures",
]

RESULT_FILE = "result.npz"
CACHE_KEY_FILE = "cache-key.txt"
MAX_STEPS = 1_000_000  # 20 times the longest run of the book (50,000 steps)
MAX_SEEDS = 1_000


class CLIError(Exception):
    """A problem with the command line's arguments; its message is shown to the user."""


class _Stopped(BaseException):
    """Raised in the main thread by SIGTERM / SIGHUP, so that every ``finally`` runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _bounded_int(maximum: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"at most {maximum:,} {what}, got {value:,}")
        return value

    return parse


_positive_int = _bounded_int(1 << 16, "threads")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m bnguide``.

    Returns
    -------
    argparse.ArgumentParser
        The parser, with the subcommands ``list``, ``run``, ``plot`` and ``cache``.
    """
    parser = _Parser(
        prog="python -m bnguide", description="Run the experiments of the bnguide book."
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks (also: BNGUIDE_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", help="run one experiment and write its results and figures")
    run.add_argument("name", help="experiment name (see `list`)")
    run.add_argument(
        "--steps", type=_bounded_int(MAX_STEPS, "steps"), help="training steps per net"
    )
    run.add_argument(
        "--seeds",
        type=_bounded_int(MAX_SEEDS, "seeds"),
        metavar="K",
        help="number of seeds (0..K-1)",
    )
    run.add_argument("--device", help="torch device, e.g. cpu or cuda")
    run.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    run.add_argument("--out", type=Path, help="output folder (default: artifacts/NAME)")
    plot = sub.add_parser("plot", help="redraw the figures of a finished run from its folder")
    plot.add_argument("folder", type=Path, help=f"a folder written by `run` (holds {RESULT_FILE})")
    cache = sub.add_parser("cache", help="manage the experiment cache")
    cache.add_argument(
        "action",
        choices=["list", "clear", "path"],
        help="list its entries (cache key, experiment, size), clear it, or print its folder",
    )
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

    The file is read as data (:mod:`bnguide.results`): nothing in it is executed.

    Parameters
    ----------
    folder : str or pathlib.Path
        A folder written by ``python -m bnguide run``.

    Raises
    ------
    CLIError
        If the folder holds no intact result of a known experiment (one line saying why).
    """
    path = Path(folder) / RESULT_FILE
    if not path.is_file():
        if (Path(folder) / "result.pkl").is_file():
            raise CLIError(
                f"{str(Path(folder) / 'result.pkl')!r} is a pickle from an older bnguide, which "
                "is not a bnguide result file any more (a pickle can run code): rerun the "
                "experiment."
            )
        raise CLIError(f"{str(path)!r} does not exist: pass a folder written by `run`.")
    try:
        name, result = results.read(path)
    except results.ResultFileError as exc:
        raise CLIError(" ".join(str(exc).split())) from None
    except OSError as exc:
        raise CLIError(f"cannot read {str(path)!r}: {exc.strerror or exc}.") from None
    try:
        module = experiments.get(name)
    except (ValueError, TypeError):
        raise CLIError(f"{str(path)!r} names no known experiment ({name!r}).") from None
    if type(result) is not getattr(module, "Result", None):
        kind = f"{type(result).__module__}.{type(result).__qualname__}"
        raise CLIError(f"{str(path)!r} holds a result of {kind}, not of {module.NAME!r}.")
    return module, result


def save_result(module: ModuleType, result: Any, out: Path, config: Any = None) -> Path:
    """Write ``result``, ``config.txt`` and ``cache-key.txt`` to ``out``; return the folder.

    When ``out`` cannot be written, the result goes to a new temporary folder instead, with
    one warning saying where: a computed result is never thrown away.

    Parameters
    ----------
    module : module
        The experiment module.
    result : dataclass instance
        Its Result.
    out : pathlib.Path
        The output folder.
    config : dataclass instance, optional
        Written to ``config.txt`` (default: ``result.config``).

    Returns
    -------
    pathlib.Path
        ``out``, or the folder the result was rescued to.
    """
    config = getattr(result, "config", None) if config is None else config
    key = cache_key(module.run, config) if dataclasses.is_dataclass(config) else None

    def write(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save(result, folder / RESULT_FILE, experiment=module.NAME, cache_key=key)
        (folder / "config.txt").write_text(f"{config!r}\n")
        if key is not None:
            (folder / CACHE_KEY_FILE).write_text(f"{key}\n")

    try:
        write(Path(out))
        return Path(out)
    except OSError as exc:
        rescue = Path(tempfile.mkdtemp(prefix=f"bnguide-{module.NAME}-"))
        write(rescue)
        warnings.warn(
            f"could not write {str(out)!r} ({exc.strerror or exc}); the result is in {rescue}",
            stacklevel=2,
        )
        return rescue


def write_figures(module: ModuleType, result: Any, out: Path) -> list[Path]:
    """Draw the experiment's figures into ``out``; warn and draw none if it has no plotter.

    Parameters
    ----------
    module : module
        The experiment's module (``bnguide.experiments.<name>``).
    result : dataclass instance
        Its Result.
    out : pathlib.Path
        The folder the figures are written to.

    Returns
    -------
    list of pathlib.Path
        The figure files written.
    """
    plot = plotter(module)
    if plot is None:
        warnings.warn(f"{module.NAME} has no plotter: no figures drawn", stacklevel=2)
        return []
    import matplotlib

    matplotlib.use("Agg")
    from bnguide import style

    style.use()
    return list(plot(result, out) or [])


def _check_out(out: Path) -> bool:
    """Create ``out`` and write a file into it; True if the folder was created here."""
    existed = out.is_dir()
    probe = out / f".bnguide-write-test-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CLIError(
            f"--out {str(out)!r} cannot be written ({exc.strerror or exc}): "
            "choose a folder you can write to."
        ) from None
    return not existed


def _run(args) -> int:
    try:
        module = experiments.get(args.name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.device is not None:
        _check_device(args.device)
    config = make_config(module, {"steps": args.steps, "seeds": args.seeds, "device": args.device})
    if plotter(module) is None:
        print(f"note: {module.NAME} has no plotter: `run` writes the result only", file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path("artifacts") / module.NAME
    created = _check_out(out)
    print(f"{module.NAME}: {config}", flush=True)
    start = time.perf_counter()
    try:
        result = module.run(config, progress=True)
    except BaseException:
        if created:
            try:
                out.rmdir()  # only if still empty: leave no empty folder behind
            except OSError:
                pass
        raise
    seconds = time.perf_counter() - start
    folder = save_result(module, result, out, config)
    figures = write_figures(module, result, folder) if plotter(module) else []
    print(f"done in {seconds:.1f} s; wrote {folder / RESULT_FILE}")
    for path in figures:
        print(f"figure: {path}")
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def _stop(signum, frame):
    raise _Stopped(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bnguide``; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The command-line arguments, without the program name; by default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on a user mistake (one line on stderr), 1 on an unexpected error,
        128 + N when stopped by signal N (SIGTERM, SIGHUP).
    """
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("BNGUIDE_DEBUG", "") not in ("", "0")
    handlers = {}
    if _main_thread():
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                handlers[sig] = signal.signal(sig, _stop)
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        return _command(args)
    except (CLIError, DataUnavailableError, CorruptFileError) as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _Stopped as exc:
        name = signal.Signals(exc.signum).name
        print(f"error: stopped by {name}; worker processes ended, nothing written", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        warnings.showwarning = shown
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _main_thread() -> bool:
    # only the main thread may install signal handlers
    import threading

    return threading.current_thread() is threading.main_thread()


def _command(args) -> int:
    if args.command == "list":
        for name, module in experiments.available().items():
            print(f"{name:24s} {getattr(module, 'DESCRIPTION', '')}")
        return 0
    if args.command == "run":
        return _run(args)
    if args.command == "plot":
        module, result = load_result(args.folder)
        if plotter(module) is None:
            raise CLIError(f"{module.NAME} has no plotter: there is nothing to draw.")
        for path in write_figures(module, result, args.folder):
            print(f"figure: {path}")
        return 0
    if args.action == "list":
        entries = list_cache()
        for key, experiment, size in entries:
            print(f"{key:40s} {experiment or '(unreadable)':24s} {size / 1e6:8.2f} MB")
        print(f"{len(entries)} cached result(s) in {cache_dir()}")
    elif args.action == "clear":
        print(f"removed {clear_cache()} cached result(s) from {cache_dir()}")
    else:
        print(cache_dir())
    return 0
