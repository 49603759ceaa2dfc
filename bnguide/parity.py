"""Run two batch-norm modules side by side and report how far apart they end up.

Feeds the same batches (with changing statistics) and the same random upstream gradients to
both modules for a few training steps, then one evaluation step, and records the largest
absolute difference in outputs, input gradients, parameter gradients and buffers. Used in
chapter *The full guide: implementation* (page *The PyTorch module*) to check
:mod:`bnguide.nn` against ``torch.nn`` live.

Examples
--------
>>> import torch
>>> from bnguide.nn import BatchNorm1d
>>> from bnguide.parity import compare_modules
>>> report = compare_modules(BatchNorm1d(4), torch.nn.BatchNorm1d(4), (16, 4))
>>> report.worst() < 1e-5
True
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bnguide.table import Table

__all__ = [
    "DELIBERATE_DIFFERENCES",
    "PARITY_TEST_FILES",
    "ParityReport",
    "count_parity_cases",
    "parity_case_table",
    "compare_modules",
    "reduced_precision_errors",
]

#: The test modules that run bnguide's normalizers against PyTorch's own tests (repo-relative):
#: cases drawn from torch's ModuleInfo/OpInfo sample and error inputs, and torch's
#: ``test/test_nn.py`` normalization tests ported to bnguide.
PARITY_TEST_FILES = ("tests/test_torch_suite.py", "tests/test_torch_nn_port.py")

#: Where bnguide's normalizers deliberately differ from torch's, each with its reason. The
#: parity tests (``tests/test_torch_suite.py``, ``tests/test_torch_nn_port.py``) mark the cases
#: these cover as expected failures citing the entry; the page *The PyTorch module* shows them.
DELIBERATE_DIFFERENCES: dict[str, str] = {
    "channels_last_layout": "the instance and layer norms keep a channels_last input's layout; "
    "torch's kernels return a contiguous tensor",
    "gradient_layout": "a normalizer built from elementwise operations lays out the input "
    "gradient like the upstream gradient; torch's fused kernel lays it out like the input "
    "(same numbers, other strides)",
    "mixed_dtype": "statistics and parameters may have another floating dtype than the input "
    "(a float64 input with float32 buffers); torch's CPU kernel refuses 'mixed dtype'",
    "sync_without_group": "SyncBatchNorm refuses to train without a process group; torch's "
    "silently falls back to single-process batch norm",
    "not_a_batchnorm": "GhostBatchNorm and BatchRenorm are not torch _BatchNorm instances: a "
    "filter that converts every _BatchNorm to SyncBatchNorm would drop what makes them differ",
}

_STATE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@dataclass
class ParityReport:
    """Largest absolute difference per quantity (0.0 means identical, ``inf`` means one module
    has the tensor and the other has not)."""

    differences: dict[str, float] = field(default_factory=dict)

    def worst(self) -> float:
        """The largest difference of all."""
        return max(self.differences.values())

    def __str__(self) -> str:
        return "\n".join(f"{name:>34}: {value:.1e}" for name, value in self.differences.items())


def _gap(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    if a is None and b is None:
        return 0.0
    if a is None or b is None:
        return float("inf")
    return float((a.detach().double() - b.detach().double()).abs().max())


def compare_modules(
    ours: nn.Module,
    reference: nn.Module,
    shape: Sequence[int],
    *,
    steps: int = 4,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> ParityReport:
    """Train both modules for ``steps`` steps on the same data, evaluate once, compare.

    Parameters
    ----------
    ours, reference : torch.nn.Module
        Two batch-norm layers built with the same arguments (and dtype). Both are modified.
    shape : sequence of int
        Input shape ``(N, C, *)``.
    steps : int
        Training steps; batch ``t`` has per-channel means around ``2 t`` and scales ``1 + t``.
    seed : int
        For the batches and upstream gradients.
    dtype : torch.dtype, optional
        Of the inputs. Default: that of ``reference``'s first parameter or buffer, or PyTorch's
        default dtype for a module without any.

    Returns
    -------
    ParityReport
        Keys: ``train output``, ``train input grad``, ``train weight grad``,
        ``train bias grad`` (worst over the steps), each state tensor after training, and
        ``eval output``, ``eval input grad``.
    """
    if steps < 1:
        raise ValueError(f"compare_modules: steps must be at least 1, got {steps}.")
    if dtype is None:
        tensors = [t for t in reference.state_dict().values() if t.is_floating_point()]
        dtype = tensors[0].dtype if tensors else torch.get_default_dtype()
    gen = torch.Generator().manual_seed(seed)
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    report = ParityReport()

    def record(key: str, value: float) -> None:
        report.differences[key] = max(report.differences.get(key, 0.0), value)

    def step(t: int, prefix: str) -> None:
        loc = 2.0 * t + torch.randn(per_channel, generator=gen, dtype=dtype)
        x = loc + (1.0 + t) * torch.randn(*shape, generator=gen, dtype=dtype)
        grad = torch.randn(*shape, generator=gen, dtype=dtype)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_a, out_b = ours(xa), reference(xb)
        out_a.backward(grad)
        out_b.backward(grad)
        record(f"{prefix} output", _gap(out_a, out_b))
        record(f"{prefix} input grad", _gap(xa.grad, xb.grad))
        if prefix == "train":
            for name in ("weight", "bias"):
                pa, pb = getattr(ours, name, None), getattr(reference, name, None)
                record(f"train {name} grad", _gap(_grad(pa), _grad(pb)))

    ours.train()
    reference.train()
    for t in range(steps):
        ours.zero_grad(set_to_none=True)
        reference.zero_grad(set_to_none=True)
        step(t, "train")
    for name in _STATE:
        record(
            f"{name} after training",
            _gap(getattr(ours, name, None), getattr(reference, name, None)),
        )
    ours.eval()
    reference.eval()
    step(steps, "eval")
    return report


def _grad(p: torch.Tensor | None) -> torch.Tensor | None:
    return None if p is None else p.grad


def reduced_precision_errors(
    dtype: torch.dtype = torch.bfloat16,
    shape: Sequence[int] = (64, 8, 16, 16),
    mean: float = 4.0,
    seed: int = 0,
) -> dict[str, float]:
    """Largest error against float64 of a training-mode batch norm fed ``dtype`` input.

    Three ways to normalize the same rounded input: bnguide's
    :func:`bnguide.functional.batch_norm` (computes in float32, rounds once: torch's "opmath"
    rule), torch's native kernel, and the same two-pass formula carried out entirely in
    ``dtype`` (``"in dtype"``), which is what bnguide did before it followed the rule.

    Parameters
    ----------
    dtype : torch.dtype
        ``torch.bfloat16`` or ``torch.float16``.
    shape : sequence of int
        ``(N, C, *)`` of the input.
    mean : float
        Offset of the input (data with a mean are where precision is lost).
    seed : int
        Seed of the input.

    Returns
    -------
    dict
        ``{"bnguide": ..., "torch": ..., "in dtype": ...}``: max absolute error of each output
        against float64 batch norm of the same (rounded) numbers.
    """
    from bnguide.functional import batch_norm, reduce_dims

    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(tuple(shape), generator=gen) + mean).to(dtype)  # (N, C, *)
    x64 = x.double()
    exact = torch.nn.functional.batch_norm(x64, None, None, training=True)
    dims = reduce_dims(x)
    centered = x - x.mean(dims, keepdim=True)  # every step rounded to dtype
    naive = centered * torch.rsqrt((centered * centered).mean(dims, keepdim=True) + 1e-5)
    outputs = {
        "bnguide": batch_norm(x, None, None, training=True),
        "torch": torch.nn.functional.batch_norm(x, None, None, training=True),
        "in dtype": naive,
    }
    return {k: (v.double() - exact).abs().max().item() for k, v in outputs.items()}


def count_parity_cases(root: str | Path | None = None) -> dict[str, int]:
    """Count the test cases of :data:`PARITY_TEST_FILES`, per test function, by collecting them.

    Runs ``pytest --collect-only`` in a subprocess (nothing is executed, and the caller's
    process is left alone), so the counts are those of the test files as they are.

    Parameters
    ----------
    root : str or Path, optional
        The repository root holding ``tests/`` (default: the one this package lives in).

    Returns
    -------
    dict
        ``"file::function" -> number of cases``, in collection order.

    Raises
    ------
    RuntimeError
        If pytest cannot collect the files (the message carries pytest's output).
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    files = [str(root / f) for f in PARITY_TEST_FILES]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"count_parity_cases: {missing} not found; pass root= the repository checkout that "
            "holds tests/ (an installed bnguide has no tests)."
        )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    counts: dict[str, int] = {}
    for line in done.stdout.splitlines():
        if "::" not in line:
            continue
        path, _, name = line.partition("::")
        key = f"{Path(path).name}::{name.split('[')[0]}"
        counts[key] = counts.get(key, 0) + 1
    if done.returncode != 0 or not counts:
        raise RuntimeError(f"count_parity_cases: pytest could not collect:\n{done.stdout[-2000:]}")
    return counts


_SOURCES = (  # (test function prefix or name, what torch test machinery the cases come from)
    ("test_torch_suite.py::test_module_sample", "ModuleInfo samples (test_modules.py)"),
    ("test_torch_suite.py::test_module_forward_ad", "ModuleInfo samples (test_modules.py)"),
    ("test_torch_suite.py::test_module_state_dict", "ModuleInfo samples (test_modules.py)"),
    ("test_torch_suite.py::test_module_error_input", "ModuleInfo error inputs (test_modules.py)"),
    ("test_torch_suite.py::test_op_sample", "OpInfo samples (test_ops.py)"),
    ("test_torch_suite.py::test_op_error_input", "OpInfo error inputs (test_ops.py)"),
    ("test_torch_nn_port.py::", "test_nn.py tests ported (torch and bnguide)"),
)


def parity_case_table(counts: dict[str, int]) -> Table:
    """Group :func:`count_parity_cases`'s counts by the torch test machinery they come from.

    Parameters
    ----------
    counts : dict
        ``"file::function" -> cases``, as :func:`count_parity_cases` returns.

    Returns
    -------
    bnguide.table.Table
        One row per source (the rest: ``test_nn.py`` checks written out by hand, TorchScript
        save/load, fusion), and the total.
    """
    totals: dict[str, int] = {}
    for key, n in counts.items():
        source = next((src for prefix, src in _SOURCES if key.startswith(prefix)), None)
        source = source or "other checks (test_nn.py cases, jit save/load, fusion)"
        totals[source] = totals.get(source, 0) + n
    rows = [[source, f"{n:,}"] for source, n in totals.items()]
    rows.append(["total", f"{sum(totals.values()):,}"])
    return Table(["cases drawn from", "cases"], rows)
