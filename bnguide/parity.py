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

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "DELIBERATE_DIFFERENCES",
    "ParityReport",
    "compare_modules",
    "reduced_precision_errors",
]

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
