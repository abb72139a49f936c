"""Master as a drop-in ``concurrent.futures.Executor``, in the spirit of
CPython's own executor tests: results released as map yields them, a result
that blows up while it is unpickled, options that do not exist, arguments
that cannot be pickled, a chunk that fails half-way, and a Master dropped
without ``shutdown()``.

Process back ends run on multicore here (MPI: tests/backends/mpi/); the
thread back end from test_master checks the parts that live in Master itself.
"""

import gc
import time
import weakref

import pytest

from boinc_pymw import Master, backends
from boinc_pymw.errors import RemoteTraceback, TaskError

HANG_GUARD = 60


# -- task functions (module level: workers import them by reference) -----------------
def square(x):
    return x * x


def echo(value):
    return value


class Dummy:
    """Something a weak reference can watch."""


def make_dummy(_):
    return Dummy()


def fail_at_five(x):
    if x == 5:
        raise ValueError(f"no five please ({x})")
    return x


def _raise_when_loaded(kind, message):
    raise kind(message)


class BlowsUpWhenLoaded:
    """Pickles fine on the worker; unpickling it in the master raises ``kind``."""

    def __init__(self, kind):
        self.kind = kind

    def __reduce__(self):
        return _raise_when_loaded, (self.kind, "raised while the master unpickled a result")


def blows_up_when_loaded(kind):
    return BlowsUpWhenLoaded(kind)


class RefusesPickling:
    """``__reduce__`` raises: this object cannot travel anywhere."""

    def __reduce__(self):
        raise ValueError("RefusesPickling will not be pickled")


def return_refuses_pickling(_=None):
    return RefusesPickling()


def wait_until(condition):
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def original_error(exc, kind, text):
    """The issue's rule: the original exception is the future's exception or
    its ``__cause__``."""
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, kind) and text in str(candidate):
            return True
    return False


@pytest.fixture(scope="module")
def master():
    with Master("multicore", workers=2) as m:
        yield m


# -- 1. a result that raises a BaseException while it is unpickled ------------------
@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_base_exception_while_unpickling_a_result_fails_that_future_only(master, kind):
    bad = master.submit(blows_up_when_loaded, kind)
    error = bad.exception(HANG_GUARD)
    assert isinstance(error, TaskError), error
    assert isinstance(error.__cause__, kind)
    assert "unpickled" in str(error)
    # the event loop survived: later work runs, chunks and all
    assert master.submit(square, 9).result(HANG_GUARD) == 81
    assert list(master.map(square, range(50))) == [x * x for x in range(50)]


def test_base_exception_while_unpickling_a_chunk_fails_the_map(master):
    results = master.map(blows_up_when_loaded, [SystemExit] * 4, chunksize=2)
    with pytest.raises(TaskError, match="unpickled"):
        list(results)
    assert master.submit(square, 3).result(HANG_GUARD) == 9


# -- 2. map releases each result once yielded --------------------------------------
@pytest.mark.parametrize("chunksize", [1, 3, None])
@pytest.mark.parametrize("progress", [False, True])
def test_map_does_not_keep_yielded_results_alive(master, chunksize, progress, capsys):
    for obj in master.map(make_dummy, range(12), chunksize=chunksize, progress=progress):
        ref = weakref.ref(obj)
        del obj
        gc.collect()
        assert ref() is None, "map still holds a result it has yielded"


# -- 3. options: unknown ones and initializer= -----------------------------------------
@pytest.mark.parametrize("name", backends.names())
def test_a_misspelled_option_is_a_type_error_naming_it(name):
    with pytest.raises(TypeError, match="wrokers"):
        Master(name, wrokers=2)


@pytest.mark.parametrize("name", ["condor", "boinc", "boinc-local"])
def test_initializer_is_refused_where_workers_do_not_persist(name):
    with pytest.raises(TypeError, match="initializer"):
        Master(name, initializer=print)
    with pytest.raises(TypeError, match="initargs"):
        Master(name, initargs=(1,))


def test_from_args_overrides_are_checked_too():
    import argparse

    from boinc_pymw import add_arguments

    args = add_arguments(argparse.ArgumentParser()).parse_args(["-i", "multicore", "-n", "1"])
    with pytest.raises(TypeError, match="colour"):
        Master.from_args(args, colour="blue")


def test_the_error_lists_what_the_back_end_takes():
    with pytest.raises(TypeError) as info:
        Master("multicore", heartbeat_timeout=3)
    assert "heartbeat_timeout" in str(info.value) and "initializer" in str(info.value)


# -- 4. arguments and results that cannot be pickled -----------------------------------
def test_unpicklable_argument_keeps_the_original_exception(master):
    future = master.submit(echo, RefusesPickling())
    error = future.exception(HANG_GUARD)
    assert original_error(error, ValueError, "will not be pickled"), repr(error)
    assert "cannot send" in str(error)


def test_unpicklable_function_keeps_the_original_exception(master):
    import threading

    lock = threading.Lock()
    future = master.submit(lambda: lock)  # the closure holds a lock
    error = future.exception(HANG_GUARD)
    assert original_error(error, TypeError, "pickle"), repr(error)


def test_unpicklable_result_keeps_the_original_exception(master):
    error = master.submit(return_refuses_pickling).exception(HANG_GUARD)
    assert original_error(error, ValueError, "will not be pickled"), repr(error)
    assert isinstance(error.__cause__, RemoteTraceback)
    assert any("result" in note for note in getattr(error, "__notes__", []))


def test_unpicklable_result_inside_a_chunk(master):
    with pytest.raises(ValueError, match="will not be pickled"):
        list(master.map(return_refuses_pickling, range(4), chunksize=2))


# -- 5. a chunk that fails half-way keeps its earlier results --------------------------
@pytest.mark.parametrize("chunksize", [10, 4, 3, 1])
def test_map_yields_the_results_before_a_failing_call(master, chunksize):
    seen = []
    with pytest.raises(ValueError, match="no five please") as info:
        for value in master.map(fail_at_five, range(10), chunksize=chunksize):
            seen.append(value)
    assert seen == [0, 1, 2, 3, 4]
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback) and "fail_at_five" in cause.tb


class HoldsALock(Exception):
    """An exception that cannot travel back (it holds a lock)."""

    def __init__(self):
        import threading

        super().__init__("holding a lock")
        self.lock = threading.Lock()


def fail_at_two_with_a_lock(x):
    if x == 2:
        raise HoldsALock()
    return x


def test_an_exception_that_cannot_travel_still_keeps_the_earlier_results(master):
    seen = []
    with pytest.raises(TaskError, match="HoldsALock: holding a lock"):
        for value in master.map(fail_at_two_with_a_lock, range(6), chunksize=6):
            seen.append(value)
    assert seen == [0, 1]


def test_a_failing_chunk_cancels_nothing_it_already_yielded(master):
    results = master.map(fail_at_five, range(5, 8), chunksize=3)
    with pytest.raises(ValueError):
        next(results)
    with pytest.raises(StopIteration):
        next(results)


# -- 6. a Master dropped without shutdown() --------------------------------------------
def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_dropped_master_shuts_its_workers_down():
    m = Master("multicore", workers=2)
    pids = m.get_status()["worker_pids"]
    assert m.submit(square, 4).result(HANG_GUARD) == 16
    task = m.submit_task(square, (5,))   # a PyMW task must not keep it alive either
    task.future.result(HANG_GUARD)
    ref = weakref.ref(m)
    del m
    assert ref() is None, "something keeps a dropped Master alive (a reference cycle?)"
    wait_until(lambda: all(_gone(pid) for pid in pids))


def test_a_dropped_master_still_finishes_what_was_submitted():
    m = Master("multicore", workers=1)
    pids = m.get_status()["worker_pids"]
    results = m.map(square, range(200), chunksize=1)
    future = m.submit(square, 7)
    del m
    gc.collect()
    assert list(results) == [x * x for x in range(200)]
    assert future.result(HANG_GUARD) == 49
    wait_until(lambda: all(_gone(pid) for pid in pids))


def test_an_explicit_shutdown_is_not_repeated_at_collection():
    m = Master("multicore", workers=1)
    m.shutdown()
    assert not m._finalizer.alive
    del m
