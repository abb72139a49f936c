"""Multicore ``map``: the fast path is the default, and chunking never bends
what a call sees (its argument, its timeout, the function as it was)."""

import functools
import itertools
import math
import os
import time

import pytest

import boinc_pymw
from boinc_pymw import Master
from boinc_pymw.backends.multicore import backend as multicore
from boinc_pymw.errors import TaskTimeout

HANG_GUARD = int(os.environ.get("HANG_GUARD", 60))  # only turns a hang into a failure


def square(x):
    return x * x


def add(a, b):
    return a + b


def nap(seconds):
    time.sleep(seconds)
    return seconds


def size(value):
    return len(value)


def ten_over(x):
    return 10 / x


def logged_call(log, gate, kind):
    """Append ``kind`` to ``log``; a "block" call waits for ``gate`` first,
    a "nap" call sleeps 30 ms."""
    if kind == "block":
        while not os.path.exists(gate):
            time.sleep(0.01)
    elif kind == "nap":
        time.sleep(0.03)
    with open(log, "a") as f:
        f.write(kind + "\n")
    return kind


class CountsItsPickling:
    """A callable that counts, in the master, how often it is pickled."""

    pickled = 0

    def __call__(self, x):
        return -x

    def __reduce__(self):
        CountsItsPickling.pickled += 1
        return CountsItsPickling, ()


_LOADS = [0]


class CountsItsLoads:
    """A callable that counts, in the worker, how often it is unpickled."""

    def __reduce__(self):
        return _load_counter, ()

    def __call__(self, x):
        return _LOADS[0]


def _load_counter():
    _LOADS[0] += 1
    return CountsItsLoads()


@pytest.fixture
def master():
    with Master("multicore", workers=2) as m:
        yield m


@pytest.mark.parametrize("chunksize", [None, 1, 2])
def test_one_iterable_passes_each_element_whole(master, chunksize):
    values = [(1, 2), (3,), (), [4, 5, 6], "ab"]
    assert list(master.map(size, values, chunksize=chunksize)) == [2, 1, 0, 3, 2]


@pytest.mark.parametrize("chunksize", [None, 1, 3])
def test_several_iterables_stop_at_the_shortest(master, chunksize):
    got = master.map(add, range(7), itertools.count(10), chunksize=chunksize)
    assert list(got) == [x + x + 10 for x in range(7)]


def test_chunk_size_rule_for_measured_functions():
    rule = multicore.map_chunksize_for
    # cheap calls: one chunk per worker
    assert rule(1e-7, 10_000, 2) == 5000
    assert rule(0.0, 10_000, 4) == 2500
    assert rule(1e-7, 3, 2) == 2
    # no chunk over CHUNK_SECONDS of work, and as many chunks for each worker
    work = 10_000 * 5e-6  # 50 ms: 3 chunks would do, 4 keep 2 workers even
    assert work / multicore.CHUNK_SECONDS <= 3
    assert rule(5e-6, 10_000, 2) == 2500
    assert rule(1e-4, 10_000, 2) == math.ceil(10_000 / math.ceil(1.0 / multicore.CHUNK_SECONDS))
    # calls of CHUNK_SECONDS or more travel one by one
    assert rule(multicore.CHUNK_SECONDS, 10_000, 2) == 1
    assert rule(0.5, 10, 4) == 1


def test_default_chunks_follow_what_the_back_end_measured(master):
    backend = master.backend
    unmeasured = backend.map_chunksize(square, 10_000)
    assert unmeasured == 1250  # the README's len / (4 * workers)
    assert list(master.map(square, range(2000))) == [x * x for x in range(2000)]
    assert backend.map_chunksize(square, 10_000) > unmeasured
    assert list(master.map(nap, [0.01] * 4, chunksize=1)) == [0.01] * 4
    assert backend.map_chunksize(nap, 10_000) <= 2


def test_calls_submitted_one_by_one_do_not_skew_the_chunk_size(master):
    # a call sent on its own also pays for its own message: its time is not
    # what a call costs inside a chunk
    backend = master.backend
    assert list(master.map(square, range(5000))) == [x * x for x in range(5000)]
    chunked = backend.map_chunksize(square, 10_000_000)
    for future in [master.submit(square, x) for x in range(300)]:
        future.result(HANG_GUARD)
    assert backend.map_chunksize(square, 10_000_000) == chunked


def test_each_lambda_and_partial_is_measured_on_its_own(master):
    backend = master.backend
    quick = lambda x: x  # noqa: E731
    slow = lambda x: nap(x)  # noqa: E731  (same name, "<lambda>", other code)
    assert list(master.map(quick, range(2000))) == list(range(2000))
    assert backend.map_chunksize(quick, 10_000) > 1250
    assert backend.map_chunksize(slow, 10_000) == 1250  # not measured yet
    assert list(master.map(functools.partial(add, 1), range(2000))) == list(range(1, 2001))
    assert backend.map_chunksize(functools.partial(nap), 10_000) == 1250


def test_task_timeout_applies_to_each_call_of_a_chunk():
    with Master("multicore", workers=2, task_timeout=0.5) as m:
        assert list(m.map(nap, [0.2] * 8, chunksize=4)) == [0.2] * 8


def test_closing_the_results_cancels_the_chunks_not_started(tmp_path):
    log, gate = str(tmp_path / "log"), str(tmp_path / "gate")
    kinds = ["nap", "nap"] + ["block"] * 18
    with Master("multicore", workers=1) as m:
        results = m.map(logged_call, [log] * 20, [gate] * 20, kinds, chunksize=2)
        assert next(results) == "nap"
        results.close()  # the first chunk is done, the next two are on the worker
        open(gate, "w").close()
    with open(log) as f:
        ran = f.read().split()
    assert ran[:2] == ["nap", "nap"]
    assert 2 < len(ran) < 20


def test_timed_chunks_give_the_same_results_and_errors():
    with Master("multicore", workers=2, task_timeout=30) as m:
        assert list(m.map(add, range(6), range(6), chunksize=3)) == [0, 2, 4, 6, 8, 10]
        got = []
        with pytest.raises(ZeroDivisionError):
            for value in m.map(ten_over, [5, 2, 0, 1], chunksize=4):
                got.append(value)
        assert got == [2.0, 5.0]


def test_a_stuck_call_inside_a_chunk_still_times_out():
    with Master("multicore", workers=1, task_timeout=0.5) as m:
        results = m.map(nap, [0, 0, 600, 0], chunksize=4, timeout=HANG_GUARD)
        with pytest.raises(TaskTimeout, match="nap"):
            list(results)
        assert m.submit(square, 3).result(HANG_GUARD) == 9


@pytest.mark.parametrize("chunksize", [None, 1])
def test_the_function_is_pickled_once_per_map(master, chunksize):
    CountsItsPickling.pickled = 0
    got = list(master.map(CountsItsPickling(), range(200), chunksize=chunksize))
    assert got == [-x for x in range(200)]
    assert CountsItsPickling.pickled == 1


def fresh_start(state):
    """What a task restores when it starts (its own checkpoint only), then
    a checkpoint of its own."""
    before = boinc_pymw.restore(default="nothing")
    boinc_pymw.checkpoint(state, force=True)
    return before


@pytest.mark.parametrize("chunksize", [None, 5])
def test_calls_of_a_chunk_never_restore_each_others_checkpoints(master, chunksize):
    states = [{"step": i} for i in range(20)]
    assert list(master.map(fresh_start, states, chunksize=chunksize)) == ["nothing"] * 20
    # again, now that the workers have seen the function
    assert list(master.map(fresh_start, states, chunksize=chunksize)) == ["nothing"] * 20


def test_a_worker_unpickles_the_same_function_once():
    with Master("multicore", workers=1) as m:
        assert set(m.map(CountsItsLoads(), range(50), chunksize=5)) == {1}
        assert set(m.map(CountsItsLoads(), range(50))) == {1}
        assert m.submit(CountsItsLoads(), 0).result(HANG_GUARD) == 1


def frozen_objects(_=None):
    import gc

    return gc.get_freeze_count()


def test_workers_keep_their_start_up_objects_out_of_full_collections(master):
    # a full collection over the worker's modules would pause a chunk for ms
    assert master.submit(frozen_objects).result(HANG_GUARD) > 1000


def test_workers_find_the_package_even_when_it_is_not_installed():
    first = multicore.MulticoreBackend._worker_env()["PYTHONPATH"].split(os.pathsep)[0]
    assert os.path.isfile(os.path.join(first, "boinc_pymw", "__init__.py"))
