"""run_children: spawned children, their values and errors, deaths, deadlines and the grace."""

import os
import time

import pytest

from bnguide import processes
from bnguide.processes import Outcome, run_children


def _double(x):
    return 2 * x


def _env_value(name):
    return os.environ.get(name)


def _raise_on_one(i):
    if i == 1:
        raise KeyError(f"child {i} could not find it")
    return i


def _exit_on_one(i):
    if i == 1:
        os._exit(7)
    time.sleep(30)  # would hold the call for 30 s if the death went unnoticed
    return i


def _sleep(seconds):
    time.sleep(seconds)
    return seconds


def test_values_come_back_by_child_index():
    out = run_children(_double, [(1,), (5,), (7,)])
    assert out.values == {0: 2, 1: 10, 2: 14} and out.started
    assert not out.errors and not out.died and not out.late


def test_children_see_the_current_environment(monkeypatch):
    monkeypatch.setenv("BNGUIDE_TEST_MARK", "set after import")
    assert run_children(_env_value, [("BNGUIDE_TEST_MARK",)]).values == {0: "set after import"}


def test_an_error_comes_back_with_its_traceback_and_check_raises_it():
    out = run_children(_raise_on_one, [(0,), (1,)], grace=30)
    assert out.values == {0: 0}
    kind, message, trace = out.errors[1]
    assert kind == "KeyError" and "child 1 could not find it" in message
    assert "Traceback" in trace and "_raise_on_one" in trace
    with pytest.raises(RuntimeError, match=r"(?s)the child failed:.*_raise_on_one"):
        out.check("the child")


def test_a_child_that_dies_is_reported_and_the_others_are_killed():
    start = time.monotonic()
    out = run_children(_exit_on_one, [(0,), (1,)])
    assert out.died == {1: 7} and out.values == {}
    assert time.monotonic() - start < 25  # did not wait for child 0's 30 s
    with pytest.raises(RuntimeError, match=r"the child died \(exit code 7\) without reporting"):
        out.check("the child")


def test_the_deadline_counts_the_childrens_own_time():
    out = run_children(_sleep, [(0.1,), (60,)], timeout=3)
    assert out.started and out.values == {0: 0.1} and out.late == [1]
    assert out.seconds < 30


def test_check_passes_when_all_reported():
    Outcome(values={0: 1}).check("the child")


def test_map_in_processes_keeps_the_order_and_stops_at_the_first_error():
    jobs = [(2, 10), (3, 2), (5, 3), (7, 2), (2, 5)]  # more jobs than workers: taken from a queue
    assert processes.map_in_processes(pow, jobs, processes=2) == [pow(*j) for j in jobs]
    assert processes.map_in_processes(pow, [(2, 3)], processes=2) == [8]  # one job: run here
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        processes.map_in_processes(pow, [(2, 1), (0, -1), (2, 2)], processes=2)
    with pytest.raises(ValueError, match="processes must be a positive integer"):
        processes.map_in_processes(pow, [(2, 1)], processes=0)
