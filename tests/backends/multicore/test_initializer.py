"""initializer=/initargs= on the multicore back end: run once in each worker
process, again in a worker that replaces a dead one; a failing initializer
fails the work with its own message instead of respawning workers forever."""

import concurrent.futures as cf
import os
import time

import pytest

from boinc_pymw import Master
from boinc_pymw.errors import BoincPymwError, RemoteTraceback, WorkerLost

HANG_GUARD = 60

STATE = {}


def remember(key, value):
    STATE[key] = (value, os.getpid())


def recall(_=None):
    return STATE.get("greeting")


def die(_=None):
    os._exit(3)


def fail_to_initialize(message):
    raise RuntimeError(message)


def square(x):
    return x * x


def test_initializer_runs_in_every_worker_with_its_args():
    with Master("multicore", workers=2, initializer=remember, initargs=("greeting", "hello")) as m:
        seen = set(m.map(recall, range(40), chunksize=1))
        pids = set(m.get_status()["worker_pids"])
    assert {value for value, _pid in seen} == {"hello"}
    # each worker ran it itself (not a copy of the master's state)
    assert {pid for _value, pid in seen} <= pids
    assert "greeting" not in STATE


def test_a_replacement_worker_runs_the_initializer_too():
    with Master("multicore", workers=1, initializer=remember, initargs=("greeting", "again")) as m:
        first = m.submit(recall).result(HANG_GUARD)
        with pytest.raises(WorkerLost):
            m.submit(die).result(HANG_GUARD)
        second = m.submit(recall).result(HANG_GUARD)
    assert first[0] == second[0] == "again"
    assert first[1] != second[1]


def test_a_failing_initializer_fails_the_work_with_its_message():
    m = Master("multicore", workers=2, initializer=fail_to_initialize,
               initargs=("no database here",))
    try:
        futures = [m.submit(square, i) for i in range(6)]  # workers are still starting
        done, pending = cf.wait(futures, HANG_GUARD)
        assert not pending
        for future in futures:
            error = future.exception()
            assert "initializer" in str(error) and "no database here" in str(error), error
            # as in a broken ProcessPoolExecutor, with the worker's traceback
            assert isinstance(error, cf.BrokenExecutor), error
            assert isinstance(error.__cause__, RemoteTraceback)
            assert "fail_to_initialize" in error.__cause__.tb
        deadline = time.monotonic() + HANG_GUARD
        while True:  # later submissions are refused with the same reason
            try:
                m.submit(square, 1)
            except BoincPymwError as exc:
                assert "no database here" in str(exc)
                break
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        m.shutdown()


def test_initializer_must_be_callable_and_picklable():
    import threading

    with pytest.raises(TypeError, match="callable"):
        Master("multicore", workers=1, initializer="not a function")
    lock = threading.Lock()
    with pytest.raises(TypeError, match="initializer") as info:
        Master("multicore", workers=1, initializer=lambda: lock)
    assert info.value.__cause__ is not None
