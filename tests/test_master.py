"""Master: the Executor contract, choosing a back end, and the PyMW calls."""

import argparse
import concurrent.futures as cf
import os
import threading
import time

import pytest

from boinc_pymw import Master, add_arguments, backends
from boinc_pymw.backends.base import Backend
from boinc_pymw.errors import BoincPymwError, UnknownInterface
from boinc_pymw.master import ENV_INTERFACE

HANG_GUARD = 60


def square(x):
    return x * x


def divide(a, b):
    return a / b


def wait_until(condition):
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


@pytest.fixture
def gate(tmp_path):
    """A file tasks wait for; always opened at the end so no test can hang."""
    path = tmp_path / "gate"
    yield path
    path.touch()


def wait_for_file(path):
    while not os.path.exists(path):
        time.sleep(0.01)
    return path


class ThreadBackend(Backend):
    """A back end written only against the documented contract: one thread
    per item. Plugging it in needs no change to Master."""

    name = "threads-test"

    def __init__(self, workers=None, *, colour=None, **options):
        super().__init__(workers or 2, **options)
        self.threads = []
        self.seen_options = {"colour": colour}

    def submit(self, items):
        for item in items:
            thread = threading.Thread(target=self._run, args=(item,))
            self.threads.append(thread)
            thread.start()

    @staticmethod
    def _run(item):
        if not item.mark_started():
            return
        try:
            item.set_result(item.fn(*item.args, **item.kwargs))
        except BaseException as exc:
            item.set_exception(exc)

    def shutdown(self, wait=True, cancel_futures=False):
        if wait:
            for thread in self.threads:
                thread.join()

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--colour", default=None, help="a back-end option")

    @classmethod
    def options_from_args(cls, args):
        return {"colour": args.colour}


@pytest.fixture
def thread_backend(monkeypatch):
    monkeypatch.setitem(backends.REGISTRY, "threads-test", f"{__name__}:ThreadBackend")
    return "threads-test"


@pytest.fixture
def master():
    with Master("multicore", workers=2) as m:
        yield m


# -- choosing the back end ----------------------------------------------------
def test_master_is_a_real_executor(master):
    assert isinstance(master, cf.Executor)
    future = master.submit(square, 7)
    assert isinstance(future, cf.Future)
    assert future.result(HANG_GUARD) == 49


def test_unknown_interface_lists_the_known_ones():
    with pytest.raises(UnknownInterface) as info:
        Master("carrier-pigeon")
    message = str(info.value)
    assert "carrier-pigeon" in message
    for name in ("multicore", "mpi", "condor", "boinc", "boinc-local"):
        assert name in message


def test_environment_variable_is_the_fallback(monkeypatch):
    monkeypatch.setenv(ENV_INTERFACE, "carrier-pigeon")
    with pytest.raises(UnknownInterface, match="multicore"):
        Master(workers=1)
    monkeypatch.setenv(ENV_INTERFACE, "multicore")
    with Master(workers=1) as m:
        assert m.interface == "multicore"
    # an explicit name wins over the environment
    monkeypatch.setenv(ENV_INTERFACE, "carrier-pigeon")
    with Master("multicore", workers=1) as m:
        assert m.submit(square, 3).result(HANG_GUARD) == 9


def test_one_switch_on_the_command_line(thread_backend, monkeypatch):
    parser = add_arguments(argparse.ArgumentParser())
    help_text = parser.format_help()
    assert "--interface" in help_text and "--workers" in help_text and "multicore" in help_text
    assert "--colour" in help_text  # the back end's own option

    args = parser.parse_args(["-i", "multicore", "-n", "2"])
    with Master.from_args(args) as m:
        assert m.interface == "multicore" and m.get_status()["workers"] == 2
        assert list(m.map(square, range(4))) == [0, 1, 4, 9]

    args = parser.parse_args(["--interface", "threads-test", "--colour", "blue"])
    with Master.from_args(args) as m:
        assert isinstance(m.backend, ThreadBackend)
        assert m.backend.seen_options == {"colour": "blue"}

    monkeypatch.setenv(ENV_INTERFACE, "threads-test")
    with Master.from_args(parser.parse_args([])) as m:
        assert m.interface == "threads-test"

    with pytest.raises(UnknownInterface):
        Master.from_args(parser.parse_args(["-i", "nope"]))


def test_a_new_back_end_plugs_in_without_changing_master(thread_backend):
    with Master(thread_backend) as m:
        assert m.submit(square, 5).result(HANG_GUARD) == 25
        assert list(m.map(square, range(10), chunksize=3)) == [x * x for x in range(10)]
        task = m.submit_task(divide, (1, 0))
        with pytest.raises(ZeroDivisionError):
            m.get_result(task)
        # in-process too, a failing call in a chunk keeps the results before it
        seen = []
        with pytest.raises(ZeroDivisionError) as info:
            for value in m.map(divide, [4, 6, 1, 8], [2, 3, 0, 4], chunksize=4):
                seen.append(value)
        assert seen == [2, 2] and info.value.__traceback__ is not None


# -- Executor details ---------------------------------------------------------
def test_map_zips_like_the_builtin_and_checks_chunksize(master):
    assert list(master.map(divide, [4, 9, 16], [2, 3])) == [2, 3]
    with pytest.raises(ValueError, match="chunksize"):
        master.map(square, range(3), chunksize=0)


def test_map_timeout_raises_and_cancels_the_rest(master, gate):
    results = master.map(wait_for_file, [str(gate)] * 6, timeout=0.2, chunksize=1)
    with pytest.raises(cf.TimeoutError):
        next(results)
    gate.touch()


def test_exceptions_from_map_reach_the_caller(master):
    with pytest.raises(ZeroDivisionError):
        list(master.map(divide, [1, 2, 3], [1, 0, 1]))


def test_submit_after_shutdown_is_refused():
    m = Master("multicore", workers=1)
    m.shutdown()
    with pytest.raises(RuntimeError, match="shutdown"):
        m.submit(square, 1)
    with pytest.raises(RuntimeError, match="shutdown"):
        m.submit_task(square, (1,))
    with pytest.raises(RuntimeError, match="shutdown"):
        m.map(square, [1])


# -- PyMW-compatible API ------------------------------------------------------
def test_submit_task_and_get_result_for_one_task(master):
    task = master.submit_task(square, (6,), modules=("math",), dep_funcs=(divide,))
    assert master.get_result(task) == (task, 36)
    total, execution = task.get_total_time(), task.get_execution_time()
    assert total is not None and execution is not None and 0 <= execution <= total
    assert task.get_progress() == 1.0


def test_get_result_any_returns_each_task_once_then_refuses(master):
    tasks = [master.submit_task(square, (i,)) for i in range(5)]
    seen = {}
    for _ in tasks:
        task, value = master.get_result()
        assert task not in seen
        seen[task] = value
    assert seen == {t: t.input_data[0] ** 2 for t in tasks}
    # nothing left: an error, not a hang (the old check blocked forever here)
    with pytest.raises(BoincPymwError, match="already returned"):
        master.get_result()
    with pytest.raises(BoincPymwError, match="already returned"):
        master.get_result(tasks[0])


def test_get_result_from_a_list_and_non_blocking(master, gate):
    slow = master.submit_task(wait_for_file, (str(gate),))
    assert master.get_result(slow, blocking=False) == (None, None)
    assert master.get_result(blocking=False) == (None, None)
    with pytest.raises(TimeoutError):
        master.get_result(slow, timeout=0.1)
    quick = master.submit_task(square, (3,))
    assert master.get_result([quick, slow]) == (quick, 9)
    assert quick.get_total_time() is not None and slow.get_total_time() is None
    gate.touch()
    assert master.get_result([quick, slow]) == (slow, str(gate))


def test_get_result_raises_the_task_exception_once(master):
    task = master.submit_task(divide, (1, 0))
    with pytest.raises(ZeroDivisionError):
        master.get_result(task)
    with pytest.raises(BoincPymwError):
        master.get_result(task)


def test_get_result_refuses_a_foreign_task(master):
    with Master("multicore", workers=1) as other:
        foreign = other.submit_task(square, (2,))
        with pytest.raises(BoincPymwError, match="not submitted"):
            master.get_result(foreign)


def test_get_status_counts_tasks_by_state(gate):
    with Master("multicore", workers=1) as m:
        try:
            blocked = m.submit_task(wait_for_file, (str(gate),))
            wait_until(blocked.future.running)
            others = [m.submit_task(square, (i,)) for i in range(4)]
            failing = m.submit_task(divide, (1, 0))
            status = m.get_status()
            assert status["submitted"] == 6 and status["workers"] == 1
            assert status["tasks"] == [blocked, *others, failing]  # PyMW's list
            assert status["queued"] + status["running"] == 6
            assert status["running"] >= 1 and status["done"] == status["failed"] == 0
        finally:
            gate.touch()
        for task in [blocked, *others, failing]:
            task.future.exception(HANG_GUARD)
        status = m.get_status()
        assert (status["queued"], status["running"], status["done"], status["failed"]) == (0, 0, 5, 1)


def test_submit_task_checks_its_arguments(master, tmp_path):
    with pytest.raises(TypeError, match="callable"):
        master.submit_task("not_a_function.py")
    with pytest.raises(FileNotFoundError, match="missing.dat"):
        master.submit_task(square, (1,), data_files=[str(tmp_path / "missing.dat")])


# -- PyMW's data_files and input_from_file ---------------------------------------
def list_and_read(name):
    return sorted(os.listdir(".")), open(name).read(), os.getcwd()


def test_data_files_land_in_a_directory_of_the_tasks_own(master, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "words.txt").write_text("hello")
    (tmp_path / "b.dat").write_bytes(b"\x00")
    task = master.submit_task(list_and_read, ("words.txt",),
                              data_files=[str(tmp_path / "a" / "words.txt"), tmp_path / "b.dat"])
    (listing, text, cwd), = [master.get_result(task)[1]]
    assert listing == ["b.dat", "words.txt"] and text == "hello"
    assert cwd != os.getcwd() and not os.path.exists(cwd)   # removed after the task
    other = master.submit_task(list_and_read, ("b.dat",), data_files=[str(tmp_path / "b.dat")])
    assert master.get_result(other)[1][0] == ["b.dat"]        # a fresh directory each time


def test_data_files_are_checked_at_submission(master, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "same.txt").write_text("1")
    (tmp_path / "y" / "same.txt").write_text("2")
    with pytest.raises(ValueError, match="same name"):
        master.submit_task(square, (1,), data_files=[str(tmp_path / "x" / "same.txt"),
                                                     str(tmp_path / "y" / "same.txt")])
    with pytest.raises(IsADirectoryError):
        master.submit_task(square, (1,), data_files=[str(tmp_path / "x")])
    with pytest.raises(TypeError, match="list of paths"):
        master.submit_task(square, (1,), data_files=str(tmp_path / "x" / "same.txt"))
    assert master.get_status()["submitted"] == 0


def test_a_back_end_without_data_files_refuses_them_clearly(thread_backend, tmp_path):
    (tmp_path / "f.txt").write_text("f")
    with Master(thread_backend) as m:
        with pytest.raises(BoincPymwError, match="cannot put data_files"):
            m.submit_task(square, (1,), data_files=[str(tmp_path / "f.txt")])
        assert m.get_result(m.submit_task(square, (3,)))[1] == 9


def read_blocks(blocks):
    out = []
    for name, start, end in blocks:
        with open(name) as f:
            f.seek(start)
            out.append(f.read(end - start))
    return out


def test_input_from_file_names_files_the_task_opens(master, tmp_path, monkeypatch):
    (tmp_path / "in.txt").write_text("0123456789")
    (tmp_path / "side.txt").write_text("side")
    monkeypatch.chdir(tmp_path)
    # relative names still work from the task's own directory (data_files moves it there)
    task = master.submit_task(read_blocks, ([["in.txt", 2, 5], ["in.txt", 7, 10]],),
                              data_files=["side.txt"], input_from_file=True)
    assert master.get_result(task)[1] == ["234", "789"]
    assert task.input_data == ([[str(tmp_path / "in.txt"), 2, 5],
                                [str(tmp_path / "in.txt"), 7, 10]],)
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        master.submit_task(read_blocks, ([["nowhere.txt", 0, 1]],), input_from_file=True)
