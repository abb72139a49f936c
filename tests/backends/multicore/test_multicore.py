"""The multicore back end with real worker processes: results, errors,
worker loss, timeouts, cancellation, shutdown, Ctrl-C and progress bars."""

import concurrent.futures as cf
import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import boinc_pymw
from boinc_pymw import Master
from boinc_pymw.errors import RemoteTraceback, TaskError, TaskTimeout, WorkerLost

HANG_GUARD = int(os.environ.get("HANG_GUARD", 60))  # seconds; only to turn a hang into a failure, never a speed check


def child_pids(parent=None):
    """Live (or zombie) child processes of ``parent``, read from /proc."""
    parent = parent or os.getpid()
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            kids.append(int(entry))
    return set(kids)


def wait_until(condition):
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- task functions (module level: workers import them by reference) ---------
def square(x):
    return x * x


def add(a, b=0, *, c=0):
    return a + b + c


def concat(a, b):
    return a + b


def divide(a, b):
    return a / b


def echo(value):
    return value


def reverse_bytes(data=b""):
    return data[::-1]


def my_pid(_=None):
    return os.getpid()


def exit_hard(code):
    os._exit(code)


def kill_self(_=None):
    os.kill(os.getpid(), signal.SIGKILL)


def segfault(_=None):
    ctypes.string_at(0)


def nap(seconds):
    time.sleep(seconds)
    return seconds


def wait_for_file(path):
    while not os.path.exists(path):
        time.sleep(0.01)
    return path


def touch(path):
    open(path, "w").close()
    return path


class NeedsTwo(Exception):
    """Pickles, but cannot be unpickled (its __init__ wants two arguments)."""

    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


def raise_needs_two():
    raise NeedsTwo("first", "second")


def return_lock():
    import threading

    return threading.Lock()


def save_and_restore(state):
    before = boinc_pymw.restore(default="nothing")
    boinc_pymw.checkpoint(state, force=True)
    return before, boinc_pymw.restore()


@pytest.fixture
def master():
    with Master("multicore", workers=2) as m:
        yield m


# -- results -------------------------------------------------------------------
def test_submit_and_map_give_results_in_order(master):
    assert master.submit(add, 1, 2, c=3).result(HANG_GUARD) == 6
    assert list(master.map(square, range(50))) == [x * x for x in range(50)]
    assert list(master.map(add, range(5), range(5), chunksize=1)) == [0, 2, 4, 6, 8]
    assert list(master.map(square, [])) == []


def test_lambdas_and_closures_travel(master):
    offset = 10
    assert master.submit(lambda x: x + offset, 5).result(HANG_GUARD) == 15

    def make_adder(n):
        return lambda x: x + n

    assert list(master.map(make_adder(3), [1, 2, 3])) == [4, 5, 6]


def test_many_tiny_tasks_all_arrive(master):
    futures = [master.submit(square, i) for i in range(5000)]
    assert [f.result(HANG_GUARD) for f in futures] == [i * i for i in range(5000)]


def test_big_payloads_round_trip_exactly(master):
    payloads = [os.urandom(3 << 20) for _ in range(3)]
    results = list(master.map(reverse_bytes, payloads, chunksize=1))
    assert results == [p[::-1] for p in payloads]


def test_futures_work_with_as_completed_and_wait(master):
    futures = [master.submit(square, i) for i in range(20)]
    done, not_done = cf.wait(futures, timeout=HANG_GUARD)
    assert not not_done
    assert sorted(f.result() for f in cf.as_completed(futures)) == [i * i for i in range(20)]


def test_tasks_are_spread_over_persistent_workers():
    with Master("multicore", workers=2) as m:
        pids = set(m.map(my_pid, range(200), chunksize=1))
        assert pids <= set(m.get_status()["worker_pids"])
        assert set(m.map(my_pid, range(200), chunksize=1)) <= set(m.get_status()["worker_pids"])


# -- errors --------------------------------------------------------------------
def test_task_exception_is_reraised_with_remote_traceback(master):
    future = master.submit(divide, 1, 0)
    with pytest.raises(ZeroDivisionError) as info:
        future.result(HANG_GUARD)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "divide" in cause.tb and "ZeroDivisionError" in cause.tb
    # the failure is the task's alone
    assert master.submit(divide, 4, 2).result(HANG_GUARD) == 2


def test_exception_that_cannot_be_rebuilt_becomes_task_error(master):
    with pytest.raises(TaskError) as info:
        master.submit(raise_needs_two).result(HANG_GUARD)
    assert "NeedsTwo" in str(info.value) and "first" in str(info.value)
    assert "raise_needs_two" in info.value.__cause__.tb


def test_unpicklable_argument_fails_only_that_task(master):
    import threading

    bad = master.submit(echo, threading.Lock())
    good = master.submit(echo, 7)
    with pytest.raises(TypeError, match="cannot send the arguments"):
        bad.result(HANG_GUARD)
    assert good.result(HANG_GUARD) == 7


def test_unpicklable_result_is_reported(master):
    # the pickler's own exception, with a note that it was the result
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock'(.|\n)*task's result"):
        master.submit(return_lock).result(HANG_GUARD)


def test_function_missing_on_the_worker_is_reported(master, tmp_path, monkeypatch):
    # The workers took the master's sys.path at start; this module came later.
    (tmp_path / "late_module.py").write_text("def late():\n    return 'late'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import late_module

    with pytest.raises(ModuleNotFoundError, match="late_module"):
        master.submit(late_module.late).result(HANG_GUARD)
    assert master.submit(square, 3).result(HANG_GUARD) == 9


@pytest.mark.parametrize("killer, expected", [
    (exit_hard, "exit code 3"),
    (kill_self, "SIGKILL"),
    (segfault, "SIGSEGV"),
])
def test_dead_worker_fails_only_its_task_and_is_replaced(killer, expected):
    with Master("multicore", workers=2) as m:
        before = set(m.get_status()["worker_pids"])
        doomed = m.submit(killer, 3)
        others = [m.submit(square, i) for i in range(200)]
        with pytest.raises(WorkerLost) as info:
            doomed.result(HANG_GUARD)
        message = str(info.value)
        assert expected in message and "worker" in message and "pid" in message
        assert [f.result(HANG_GUARD) for f in others] == [i * i for i in range(200)]
        after = set(m.get_status()["worker_pids"])
        assert len(after) == 2 and after != before
        assert all(alive(pid) for pid in after)
        assert m.submit(square, 5).result(HANG_GUARD) == 25


def test_workers_that_cannot_start_fail_the_tasks_instead_of_looping(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    before = child_pids()
    m = Master("multicore", workers=2)
    future = m.submit(square, 2)
    with pytest.raises(WorkerLost, match="die on start-up"):
        future.result(HANG_GUARD)
    with pytest.raises(boinc_pymw.errors.BoincPymwError, match="start-up"):
        m.submit(square, 3)
    m.shutdown()
    assert child_pids() - before == set()


def test_big_bytes_travel_raw_in_args_kwargs_and_results(master):
    big, small = os.urandom(200_000), b"tiny"
    assert master.submit(reverse_bytes, big).result(HANG_GUARD) == big[::-1]
    assert master.submit(reverse_bytes, data=big).result(HANG_GUARD) == big[::-1]
    assert master.submit(echo, (big, small)).result(HANG_GUARD) == (big, small)
    assert master.submit(concat, big, b=small).result(HANG_GUARD) == big + small
    assert type(master.submit(echo, bytearray(big)).result(HANG_GUARD)) is bytearray


def fork_then_die(pid_file):
    """Leave a child that keeps the worker's pipes open, then die."""
    child = os.fork()
    if child == 0:
        time.sleep(600)
        os._exit(0)
    with open(pid_file, "w") as f:
        f.write(str(child))
    os._exit(7)


def test_worker_death_is_seen_even_if_a_child_keeps_its_pipes_open(master, tmp_path):
    pid_file = tmp_path / "grandchild"
    try:
        with pytest.raises(WorkerLost, match="exit code 7"):
            master.submit(fork_then_die, str(pid_file)).result(HANG_GUARD)
        assert master.submit(square, 6).result(HANG_GUARD) == 36
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_task_timeout_kills_and_replaces_the_worker():
    with Master("multicore", workers=2, task_timeout=1.0) as m:
        stuck = m.submit(nap, 600)
        quick = [m.submit(nap, 0) for _ in range(10)]
        with pytest.raises(TaskTimeout, match="timeout") as info:
            stuck.result(HANG_GUARD)
        assert isinstance(info.value, TimeoutError)
        assert [f.result(HANG_GUARD) for f in quick] == [0] * 10
        assert all(alive(pid) for pid in m.get_status()["worker_pids"])
        assert m.submit(square, 4).result(HANG_GUARD) == 16


def test_cancel_works_for_queued_tasks(tmp_path):
    gate = tmp_path / "gate"
    with Master("multicore", workers=1) as m:
        try:
            blocker = m.submit(wait_for_file, str(gate))
            wait_until(blocker.running)
            marks = [tmp_path / f"ran-{i}" for i in range(20)]
            futures = [m.submit(touch, str(p)) for p in marks]
            cancelled = [f.cancel() for f in futures]
            assert cancelled[-1], "the last queued task must be cancellable"
            assert not blocker.cancel()  # already handed to the worker
        finally:
            touch(str(gate))
        assert blocker.result(HANG_GUARD) == str(gate)
        for future, was_cancelled, mark in zip(futures, cancelled, marks):
            if was_cancelled:
                assert future.cancelled()
            else:
                assert future.result(HANG_GUARD) == str(mark)
    for was_cancelled, mark in zip(cancelled, marks):
        assert mark.exists() != was_cancelled


def test_unmeasured_tasks_go_two_per_worker_after_tiny_ones(tmp_path):
    """Knowing that one function is tiny must not flood workers with another."""
    gate = tmp_path / "gate"
    with Master("multicore", workers=2) as m:
        try:
            assert list(m.map(square, range(3000))) == [x * x for x in range(3000)]
            futures = [m.submit(wait_for_file, str(gate)) for _ in range(30)]
            wait_until(lambda: m.get_status()["in_flight"] == 4)
            status = m.get_status()
            assert (status["in_flight"], status["pending"]) == (4, 26)
            assert sum(f.cancel() for f in futures) == 26
        finally:
            touch(str(gate))
        assert sum(f.result(HANG_GUARD) == str(gate) for f in futures if not f.cancelled()) == 4


def test_checkpoints_are_kept_apart_per_task(master, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = list(master.map(save_and_restore, [{"step": i} for i in range(6)], chunksize=1))
    assert results == [("nothing", {"step": i}) for i in range(6)]
    assert not list(tmp_path.iterdir())  # nothing written to the current directory


# -- shutdown and interruption --------------------------------------------------
def test_shutdown_waits_and_leaves_no_child_processes():
    before = child_pids()
    m = Master("multicore", workers=3)
    workers = set(m.get_status()["worker_pids"])
    assert workers <= child_pids() - before
    futures = [m.submit(nap, 0.05) for _ in range(6)]
    m.submit(exit_hard, 1)  # a replaced worker must not linger either
    m.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert child_pids() - before == set()
    with pytest.raises(RuntimeError, match="after shutdown"):
        m.submit(square, 1)


def test_shutdown_cancel_futures_drops_queued_tasks(tmp_path):
    before = child_pids()
    gate = tmp_path / "gate"
    m = Master("multicore", workers=1)
    try:
        blocker = m.submit(wait_for_file, str(gate))
        wait_until(blocker.running)
        queued = [m.submit(square, i) for i in range(50)]
        m.shutdown(wait=False, cancel_futures=True)
    finally:
        touch(str(gate))
    m.shutdown(wait=True)
    assert blocker.result(HANG_GUARD) == str(gate)
    assert queued[-1].cancelled()
    assert child_pids() - before == set()


def test_keyboard_interrupt_in_with_block_stops_at_once():
    before = child_pids()
    with pytest.raises(KeyboardInterrupt):
        with Master("multicore", workers=2) as m:
            running = [m.submit(nap, 600) for _ in range(2)]
            queued = [m.submit(nap, 600) for _ in range(10)]
            time.sleep(0.2)
            raise KeyboardInterrupt
    for f in running + queued:
        assert f.done()
    assert any(isinstance(f.exception(), WorkerLost) for f in running + queued if not f.cancelled())
    assert child_pids() - before == set()


CTRL_C_SCRIPT = textwrap.dedent("""
    import time
    from boinc_pymw import Master

    def nap(seconds):
        time.sleep(seconds)

    if __name__ == "__main__":
        with Master("multicore", workers=2) as master:
            futures = [master.submit(nap, 600) for _ in range(6)]
            while master.get_status()["in_flight"] == 0:
                time.sleep(0.01)
            print(*master.get_status()["worker_pids"], flush=True)
            for f in futures:
                f.result()
""")


def _start_script(tmp_path, text):
    script = tmp_path / "script.py"
    script.write_text(text)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2, proc.stderr.read()
    assert all(alive(p) for p in pids)
    return proc, pids


# The same without ``with``: the interpreter's exit stops the workers.
CTRL_C_SCRIPT_NO_WITH = textwrap.dedent("""
    import time
    from boinc_pymw import Master

    def nap(seconds):
        time.sleep(seconds)

    if __name__ == "__main__":
        master = Master("multicore", workers=2)
        futures = [master.submit(nap, 600) for _ in range(6)]
        while master.get_status()["in_flight"] == 0:
            time.sleep(0.01)
        print(*master.get_status()["worker_pids"], flush=True)
        futures[0].result()
""")


@pytest.mark.parametrize("script", [CTRL_C_SCRIPT, CTRL_C_SCRIPT_NO_WITH],
                         ids=["with-block", "no-with-block"])
def test_ctrl_c_in_the_master_stops_cleanly(tmp_path, script):
    proc, pids = _start_script(tmp_path, script)
    time.sleep(0.3)  # let the workers start their naps
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert not any(alive(p) for p in pids), "workers outlived their master"


def test_workers_exit_when_their_master_is_killed(tmp_path):
    proc, pids = _start_script(tmp_path, CTRL_C_SCRIPT)
    proc.kill()
    proc.communicate(timeout=HANG_GUARD)
    deadline = time.monotonic() + HANG_GUARD
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids), "orphaned workers"


# -- progress and status ------------------------------------------------------
def test_map_and_as_completed_show_progress(master, capsys):
    assert list(master.map(square, range(30), progress=True)) == [x * x for x in range(30)]
    assert "30/30" in capsys.readouterr().err
    futures = [master.submit(square, i) for i in range(12)]
    values = sorted(f.result() for f in boinc_pymw.as_completed(futures, progress=True))
    assert values == [i * i for i in range(12)]
    assert "12/12" in capsys.readouterr().err


def test_progress_without_tqdm_prints_a_counter(master, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed
    assert list(master.map(square, range(7), progress=True)) == [x * x for x in range(7)]
    assert "square: 7/7" in capsys.readouterr().err


def test_status_reports_workers():
    with Master("multicore", workers=3) as m:
        status = m.get_status()
        assert status["interface"] == "multicore" and status["workers"] == 3
        assert len(status["worker_pids"]) == 3


def test_bad_worker_count_is_refused():
    with pytest.raises(ValueError, match="workers"):
        Master("multicore", workers=0)
