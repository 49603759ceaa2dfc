"""Shared test setup: point bnguide at the local data copies so no test needs the network."""

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("BNGUIDE_DATA") and _SHARED_DATA.is_dir():
    os.environ["BNGUIDE_DATA"] = str(_SHARED_DATA)

# The notebooks run after the unit tests in the same pytest process and read these variables.
_WATCHED = ("BNGUIDE_CACHE", "BNGUIDE_DATA", "BNGUIDE_NO_CACHE", "MPLBACKEND")


@pytest.fixture(autouse=True)
def _environment_is_left_as_found():
    """Fail a test that changes bnguide's environment variables without restoring them."""
    before = {k: os.environ.get(k) for k in _WATCHED}
    yield
    changed = [k for k in _WATCHED if os.environ.get(k) != before[k]]
    assert not changed, (
        f"This test changed {changed} in os.environ and did not restore it; use "
        "monkeypatch.setenv / monkeypatch.delenv, which undo the change afterwards."
    )


def pytest_report_header(config):
    """Say which float kernels this run uses (the book's claims must hold under any set)."""
    from bnguide import kernels

    return f"bnguide kernel set: {kernels.describe()}"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread (restored after the module): thousands of tiny
    tensors gain nothing from threads, and on shared cores the threads' spin-waits tripled the
    parity suites' time (116 s against 40 s wall, 2 cores at load 15)."""
    from bnguide.training.fit import single_thread

    with single_thread():
        yield
