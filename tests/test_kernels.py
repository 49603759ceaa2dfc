"""bnguide.kernels names the kernel set that really runs, in a fresh process per setting."""

import os
import subprocess
import sys

import pytest

from bnguide import kernels

_DESCRIBE = "from bnguide import kernels; print(kernels.describe())"


def _describe_in(env_changes):
    env = {k: v for k, v in os.environ.items() if k not in kernels.KERNEL_VARIABLES}
    env.update(env_changes)
    out = subprocess.run(
        [sys.executable, "-c", _DESCRIBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_default_capability_is_reported_as_running():
    line = _describe_in({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"})
    assert line.startswith("torch CPU capability DEFAULT (ATEN_CPU_CAPABILITY=default)"), line
    assert "MKL_CBWR=COMPATIBLE" in line


def test_unset_variables_are_named_as_unset():
    line = _describe_in({})
    assert "(ATEN_CPU_CAPABILITY unset)" in line and "MKL_CBWR unset" in line
    assert "MKL_ENABLE_INSTRUCTIONS" not in line


@pytest.mark.parametrize("name", kernels.KERNEL_VARIABLES)
def test_every_kernel_variable_is_shown_when_set(name):
    assert f"{name}=X" in _describe_in({name: "X"})
