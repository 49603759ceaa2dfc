"""Which float kernels this process computes with, and how to pick another set.

The same seed gives different float32 results on different CPUs, because PyTorch chooses its
vectorized kernels for the CPU it finds (``default``, ``avx2`` or ``avx512`` on x86-64) and MKL
chooses its matrix-product code the same way. Two environment variables override the choice and
so simulate another machine: ``ATEN_CPU_CAPABILITY`` for torch's kernels and ``MKL_CBWR`` (for
example ``COMPATIBLE``) for MKL's. They must be set before torch is imported. The book is built
under the CPU's own kernels and executed a second time under ``ATEN_CPU_CAPABILITY=default
MKL_CBWR=COMPATIBLE``; ``make check-cpu`` reruns notebooks under any set (see the README). Used in
chapter *Implementation: a PyTorch module from scratch*.

Examples
--------
>>> from bnguide import kernels
>>> kernels.describe()  # doctest: +SKIP
'torch CPU capability AVX512 (ATEN_CPU_CAPABILITY unset), MKL_CBWR unset'
"""

from __future__ import annotations

import os

import torch

__all__ = ["KERNEL_VARIABLES", "describe"]

KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS")
"""The environment variables that change which float kernels torch and MKL use."""


def describe() -> str:
    """One line naming the kernel set in use.

    Returns
    -------
    str
        torch's CPU capability as it reports it (``torch.backends.cpu.get_cpu_capability()``;
        torch falls back silently when a requested capability is missing, so this is what runs,
        not what was asked for), followed by the value of each variable of
        :data:`KERNEL_VARIABLES` that is set.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    requested = os.environ.get("ATEN_CPU_CAPABILITY")
    parts = [
        f"torch CPU capability {capability} "
        + (f"(ATEN_CPU_CAPABILITY={requested})" if requested else "(ATEN_CPU_CAPABILITY unset)")
    ]
    for name in KERNEL_VARIABLES[1:]:
        value = os.environ.get(name)
        if value or name == "MKL_CBWR":
            parts.append(f"{name}={value}" if value else f"{name} unset")
    return ", ".join(parts)
