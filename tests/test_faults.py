"""Fault injection, done for real: killed CLIs, a failing rank, corrupted and unwritable files.

Every probe is bounded in time: small ``--steps``, explicit timeouts on every wait, and each
test kills whatever it started (by process id, from the session it started) before it returns.
"""

import contextlib
import os
import pickle
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bnguide import cache, cli, experiments
from bnguide.distributed import launch

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

ROOT = Path(__file__).resolve().parents[1]
# Long enough that the workers are still training when the signal comes, short enough to
# finish in seconds should the signal be lost: 2 variants x 2 seeds x 6,000 steps.
LONG_RUN = ("run", "ioffe-mnist", "--steps", "6000", "--seeds", "2")


def _env(**extra):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT), **extra}
    env.pop("BNGUIDE_DEBUG", None)
    return env


def bnguide(*args, timeout=300, **env):
    return subprocess.run(
        [sys.executable, "-m", "bnguide", *args], capture_output=True, text=True,
        env=_env(**env), timeout=timeout,
    )  # fmt: skip


def _session_processes(sid: int) -> list[int]:
    """Process ids in session ``sid`` (field 6 of /proc/PID/stat), zombies excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _wait_until(condition, timeout: float, interval: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _children(sid: int) -> list[int]:
    """The spawned child processes in session ``sid`` (multiprocessing's spawn command line)."""
    found = []
    for pid in _session_processes(sid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(pid)
    return found


@contextlib.contextmanager
def _in_own_session(argv, children: int, **env):
    """Start ``argv`` as the leader of a new session and wait until ``children`` spawned
    children of it run; yield the process; kill whatever of the session is left after."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(**env),
        start_new_session=True,
    )  # fmt: skip
    try:
        started = _wait_until(lambda: len(_children(proc.pid)) >= children, timeout=90)
        assert started, f"the {children} children never started: {proc.poll()=}"
        yield proc
    finally:
        for pid in _session_processes(proc.pid):  # what the test found alive: end it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=10)


def _kill_and_check_none_remain(proc, sig=signal.SIGKILL) -> None:
    os.kill(proc.pid, sig)  # the leader's own process id only, as a scheduler does
    proc.wait(timeout=30)
    gone = _wait_until(lambda: not _session_processes(proc.pid), timeout=10)
    assert gone, f"still alive 10 s after {sig.name}: {_session_processes(proc.pid)}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGHUP])
def test_killing_the_cli_leaves_no_process_behind(tmp_path, sig):
    argv = [sys.executable, "-m", "bnguide", *LONG_RUN, "--out", str(tmp_path / "out")]
    with _in_own_session(argv, 2, BNGUIDE_CACHE=str(tmp_path / "cache")) as proc:  # 2 workers
        _kill_and_check_none_remain(proc, sig)
        assert proc.returncode != 0
        if sig != signal.SIGKILL:
            err = proc.stderr.read().strip().splitlines()
            assert err and "stopped by" in err[-1] and sig.name in err[-1], err[-3:]
            assert not any("Traceback" in line for line in err)


def _sleep_long(rank, world):
    time.sleep(300)
    return rank


def test_killing_a_launching_process_leaves_no_rank_behind():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_faults; "
        "from bnguide.distributed import launch; launch(test_faults._sleep_long, 2, timeout=300)"
    )
    with _in_own_session([sys.executable, "-c", code, str(ROOT / "tests")], 2) as proc:
        time.sleep(1.0)  # the ranks are inside fn now
        _kill_and_check_none_remain(proc)


def _rank_1_raises(rank, world):
    x = torch.ones(3)
    if rank == 1:
        raise KeyError(f"the key rank {rank} could not find")
    torch.distributed.all_reduce(x)  # rank 0 waits here for a peer that has gone
    return rank


def _uneven_steps(rank, world):
    x = torch.ones(3)
    for _ in range(3 if rank == 0 else 2):  # rank 0 runs one step more
        torch.distributed.all_reduce(x)
    return rank


def _eval_mode_on_rank_1(rank, world):
    from bnguide.norms.sync import SyncBatchNorm

    torch.manual_seed(0)
    bn = SyncBatchNorm(3)
    bn.train(rank == 0)  # rank 1 forgot model.train(): it never joins the statistics exchange
    for _ in range(2):
        bn(torch.randn(4, 3)).square().sum().backward()
    return rank


def test_launch_shows_the_failing_ranks_own_error():
    with pytest.raises(RuntimeError) as info:
        launch(_rank_1_raises, 2, timeout=60)
    message = str(info.value)
    assert message.startswith("rank 1 of 2 raised: KeyError:"), message[:300]
    assert "the key rank 1 could not find" in message
    assert "Traceback" in message and "_rank_1_raises" in message
    # Rank 0's error is only a consequence: summarized in one line at the end, not shown instead.
    tail = message.rsplit("Traceback", 1)[-1]
    assert "rank 0" in tail.splitlines()[-1]


def test_launch_names_a_disagreement_on_the_number_of_collectives():
    with pytest.raises(RuntimeError) as info:
        launch(_uneven_steps, 2, timeout=60)
    message = str(info.value)
    assert "different numbers of collective" in message, message
    assert "rank 0: 3 (all_reduce" in message and "rank 1: 2 (all_reduce" in message, message


def test_launch_names_a_train_eval_disagreement_as_a_likely_cause():
    with pytest.raises(RuntimeError) as info:
        launch(_eval_mode_on_rank_1, 2, timeout=60)
    message = str(info.value)
    assert "different numbers of collective" in message and "eval mode" in message, message
    assert "rank 1: 0" in message, message  # rank 1, in eval mode, made no collective call


# -- corrupted files -----------------------------------------------------------------------


def _small_result():
    """A genuine Result of an experiment, with arrays of several dtypes and a nested log."""
    from bnguide.experiments import ioffe_mnist
    from bnguide.training import TrainLog

    rng = np.random.default_rng(0)
    log = TrainLog(
        names=("baseline", "batch norm"), seeds=(0, 1), steps=np.arange(5) * 10,
        test_accuracy=rng.random((2, 2, 5)), train_loss=rng.random((2, 2, 5)).astype(np.float32),
        probe_unit=rng.random((2, 2, 5, 3)), probe_all=rng.random((2, 2, 5, 3)),
        quantiles=(0.15, 0.5, 0.85), diverged_at=np.array([[-1, 3], [-1, -1]]), seconds=1.25,
        settings={"steps": 40, "batch_size": 60, "worker_seconds": [0.5, 0.75]},
    )  # fmt: skip
    return ioffe_mnist.Result(config=ioffe_mnist.Config(steps=40, seeds=(0, 1)), log=log)


def _same(a, b) -> bool:
    la, lb = a.log, b.log
    return (
        a.config == b.config and la.names == lb.names and la.settings == lb.settings
        and all(np.array_equal(getattr(la, f), getattr(lb, f)) for f in
                ("steps", "test_accuracy", "train_loss", "probe_unit", "diverged_at"))
    )  # fmt: skip


def _positions(size: int, n: int = 150) -> list[int]:
    rng = random.Random(size)
    head = list(range(min(size, 40)))  # every header byte, then spread over the file
    return sorted(set(head + [rng.randrange(size) for _ in range(n)] + [size - 1]))


CALLS = []


def _run_small(config):
    CALLS.append(config)
    return _small_result()


def test_a_cache_file_changed_at_any_byte_is_recomputed_never_loaded(monkeypatch, tmp_path):
    monkeypatch.setenv("BNGUIDE_CACHE", str(tmp_path))
    monkeypatch.delenv("BNGUIDE_NO_CACHE", raising=False)
    config = experiments.get("ioffe-mnist").Config(steps=40)
    reference = cache.cached_run(_run_small, config)
    (entry,) = [p for p in cache.cache_dir().iterdir() if not p.name.startswith(".")]
    good = entry.read_bytes()
    silently_different, recomputed = [], 0
    rng = random.Random(1)
    for pos in _positions(len(good)):
        bad = bytearray(good)
        bad[pos] ^= rng.randrange(1, 256)
        entry.write_bytes(bytes(bad))
        CALLS.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = cache.cached_run(_run_small, config)
        recomputed += len(CALLS)
        if not _same(loaded, reference):
            silently_different.append(pos)
        entry.write_bytes(good)
    assert silently_different == []
    assert recomputed == len(_positions(len(good)))  # every change detected
    # and it was detected: a damaged entry is recomputed (all but no-op changes)
    bad = bytearray(good)
    bad[len(good) // 2] ^= 0xFF
    entry.write_bytes(bytes(bad))
    CALLS.clear()
    with pytest.warns(UserWarning, match="recomputing: .* fails its SHA-256 checksum"):
        cache.cached_run(_run_small, config)
    assert len(CALLS) == 1


def _written_result_folder(tmp_path) -> Path:
    """A folder as `run --out` writes it, holding the small result."""
    folder = tmp_path / "out"
    folder.mkdir()
    module = experiments.get("ioffe-mnist")
    cli.save_result(module, _small_result(), folder)
    return folder


def test_a_result_file_changed_at_any_byte_is_refused_with_a_clear_error(tmp_path):
    folder = _written_result_folder(tmp_path)
    (path,) = [p for p in folder.iterdir() if p.name.startswith("result")]
    good = path.read_bytes()
    rng = random.Random(2)
    outcomes = {"refused": 0, "same": 0}
    for pos in _positions(len(good)):
        bad = bytearray(good)
        bad[pos] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(bad))
        try:
            _, loaded = cli.load_result(folder)
        except cli.CLIError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            outcomes["refused"] += 1
        else:
            assert _same(loaded, _small_result()), f"byte {pos} changed the numbers silently"
            outcomes["same"] += 1
    assert outcomes["same"] == 0, outcomes  # every change detected
    truncated = good[: len(good) // 3]
    path.write_bytes(truncated)
    out = bnguide("plot", str(folder))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_plot_refuses_a_planted_pickle_and_runs_none_of_its_code(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    blob = pickle.dumps({"experiment": "ioffe-mnist", "result": payload})
    for name in ("result.pkl", cli.RESULT_FILE):
        (folder / name).write_bytes(blob)
    out = bnguide("plot", str(folder))
    assert not marker.exists(), "plot ran code from a pickle"
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "not a bnguide result file" in out.stderr


def test_plot_refuses_a_result_of_another_experiment(tmp_path):
    folder = _written_result_folder(tmp_path)
    from bnguide import results

    path = folder / cli.RESULT_FILE
    results.save(path, _small_result(), experiment="learning-rate")  # a mislabelled file
    with pytest.raises(
        cli.CLIError, match="holds a result of .*ioffe_mnist.*not of 'learning-rate'"
    ):
        cli.load_result(folder)


# -- unwritable places: the result survives ------------------------------------------------


def test_an_unwritable_cache_still_returns_the_result(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BNGUIDE_CACHE", str(blocker / "cache"))  # under a regular file
    monkeypatch.delenv("BNGUIDE_NO_CACHE", raising=False)
    CALLS.clear()
    with pytest.warns(UserWarning, match="could not store .* in the cache"):
        result = cache.cached_run(_run_small, experiments.get("ioffe-mnist").Config(steps=41))
    assert _same(result, _small_result()) and len(CALLS) == 1


def test_run_refuses_an_unwritable_out_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    start = time.monotonic()
    out = bnguide("run", "ioffe-mnist", "--steps", "1000000", "--out", str(blocker / "out"))
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and str(blocker / "out") in out.stderr, out.stderr
    assert time.monotonic() - start < 120  # it did not train a million steps first


def test_out_failing_after_training_keeps_the_result_elsewhere(tmp_path, capsys):
    module = experiments.get("ioffe-mnist")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="could not write"):
        where = cli.save_result(module, _small_result(), blocker / "out")
    assert where.parent != blocker and (where / cli.RESULT_FILE).is_file()
    _, loaded = cli.load_result(where)
    assert _same(loaded, _small_result())


# -- validation and one-line errors --------------------------------------------------------


def test_absurd_step_counts_are_refused_at_once():
    out = bnguide("run", "ioffe-mnist", "--steps", "1000000000000", timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "--steps" in out.stderr and "at most" in out.stderr


def test_data_errors_are_one_line_and_leave_no_out_folder(tmp_path):
    out = tmp_path / "out"
    args = ("run", "ioffe-mnist", "--steps", "20", "--seeds", "1", "--out", str(out))
    res = bnguide(*args, BNGUIDE_DATA=str(tmp_path / "empty"))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: BNGUIDE_DATA is set to") and "Traceback" not in res.stderr
    assert not out.exists()
    debug = bnguide("--debug", *args, BNGUIDE_DATA=str(tmp_path / "empty"))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_run_and_plot_say_when_an_experiment_has_no_plotter(tmp_path):
    module = experiments.get("eval-statistics")
    assert cli.plotter(module) is None
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # The note comes before anything is computed (here the bad --out then stops the run).
    res = bnguide("run", "eval-statistics", "--seeds", "1", "--out", str(blocker / "x"))
    assert "eval-statistics has no plotter" in res.stderr and res.returncode == 2, res.stderr
    with pytest.warns(UserWarning, match="has no plotter"):
        assert cli.write_figures(module, object(), tmp_path) == []


# -- temporary files of killed writes ------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_temporary_files_of_killed_writes_are_cleaned_and_not_counted(monkeypatch, tmp_path):
    monkeypatch.setenv("BNGUIDE_CACHE", str(tmp_path))
    folder = cache.cache_dir()
    folder.mkdir(parents=True)
    stale = folder / f".tmp-{_dead_pid()}-abcd.npz"
    stale.write_bytes(b"half a result")
    live = folder / f".tmp-{os.getpid()}-efgh.npz"  # a write in progress: left alone
    live.write_bytes(b"being written")
    assert cache.clear_cache() == 0
    assert not stale.exists() and live.exists()
    stale.write_bytes(b"half a result")
    cache.cached_run(_run_small, experiments.get("ioffe-mnist").Config(steps=42))
    assert not stale.exists()
    assert cache.clear_cache() == 1


def test_killing_a_process_in_cached_runs_leaves_no_worker_behind(tmp_path):
    # Two seeds of a deep linear net long enough to still be training when the parent dies.
    code = (
        "from bnguide.cache import cached_runs; from bnguide.experiments import "
        "santurkar_deep_linear as d; cached_runs(d.run, [d.Config(steps=10**6, "
        "probe_every=10**6, dense_until=0, variants=('none',), seeds=(s,)) for s in (0, 1)], "
        "processes=2)"
    )
    with _in_own_session([sys.executable, "-c", code], 2, BNGUIDE_CACHE=str(tmp_path)) as proc:
        time.sleep(2.0)  # the workers are training now
        _kill_and_check_none_remain(proc)
