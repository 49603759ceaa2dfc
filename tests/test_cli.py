"""``python -m bnguide``: run in a subprocess, as a user would, on tiny settings."""

import os
import subprocess
import sys

import pytest
import torch

from bnguide.cache import cache_key
from bnguide.cli import RESULT_FILE, load_result, make_config
from bnguide.experiments import eval_statistics, ioffe_mnist
from bnguide.results import read_meta


def bnguide(*args, cwd=None):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "bnguide", *args], capture_output=True, text=True, env=env,
        cwd=cwd, timeout=600,
    )  # fmt: skip


def test_list_names_the_experiments():
    out = bnguide("list")
    assert out.returncode == 0, out.stderr
    assert "ioffe-mnist" in out.stdout and "learning-rate" in out.stdout
    assert "bn-placement" in out.stdout


def test_run_writes_results_and_figures_and_plot_reads_them_back(tmp_path):
    out = bnguide("run", "ioffe-mnist", "--steps", "30", "--seeds", "2", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    module, result = load_result(tmp_path)  # data, not a pickle: see tests/test_results.py
    assert module is ioffe_mnist and RESULT_FILE == "result.npz"
    assert result.config.steps == 30 and result.config.seeds == (0, 1)
    assert result.log.test_accuracy.shape[:2] == (2, 2)
    figures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert figures == ["accuracy.png", "percentiles.png", "percentiles_all_units.png"]
    for p in tmp_path.glob("*.png"):
        p.unlink()
    again = bnguide("plot", str(tmp_path))  # no retraining: redraw from result.npz
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == figures
    assert "steps=30" in (tmp_path / "config.txt").read_text()
    key = (tmp_path / "cache-key.txt").read_text().strip()
    assert key == cache_key(ioffe_mnist.run, result.config) and key.startswith("ioffe_mnist-")
    assert read_meta(tmp_path / "result.npz")[0]["cache_key"] == key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "no-such-thing"), "error: Unknown experiment 'no-such-thing'. Known experiments:"),
        (
            ("run", "ioffe-mnist", "--steps", "-5"),
            "argument --steps: must be a positive integer, got -5",
        ),
        (("run", "ioffe-mnist", "--seeds", "two"), "argument --seeds: expected a positive integer"),
        (("run", "ioffe-mnist", "--device", "warp-drive"), "error: invalid device 'warp-drive'"),
        (
            ("run", "eval-statistics", "--device", "cpu"),
            "error: experiment 'eval-statistics' has no setting 'device' (--device); its settings",
        ),
        (("plot", "/nonexistent/folder"), "result.npz' does not exist: pass a folder written by"),
        (("run", "ioffe-mnist", "--seeds", "5000"), "argument --seeds: at most 1,000 seeds"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_fail_clearly(args, message):
    out = bnguide(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1  # one line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_unavailable_device_fails_clearly():
    out = bnguide("run", "ioffe-mnist", "--steps", "5", "--device", "cuda")
    assert out.returncode == 2
    assert "error: device 'cuda' is not available: this PyTorch sees no CUDA GPU" in out.stderr


def test_cache_commands(tmp_path, monkeypatch):
    env_dir = tmp_path / "cache"
    monkeypatch.setenv("BNGUIDE_CACHE", str(env_dir))  # restored afterwards: notebooks need it
    (env_dir / "results").mkdir(parents=True)
    (env_dir / "results" / "x.pkl").write_bytes(b"")
    listed = bnguide("cache", "list")
    assert listed.returncode == 0 and "0 cached result(s)" in listed.stdout  # .npz files only
    path = bnguide("cache", "path")
    assert path.stdout.strip() == str(env_dir / "results")
    cleared = bnguide("cache", "clear")
    assert cleared.returncode == 0 and "removed 1 cached result(s)" in cleared.stdout
    assert not (env_dir / "results" / "x.pkl").exists()


def test_make_config_maps_options_onto_fields():
    config = make_config(ioffe_mnist, {"steps": 7, "seeds": 4, "device": None})
    assert (config.steps, config.seeds, config.device) == (7, (0, 1, 2, 3), "cpu")
    assert make_config(eval_statistics, {"seeds": 2}).seeds == (0, 1)
