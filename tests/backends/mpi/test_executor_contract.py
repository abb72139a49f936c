"""The Executor contract on real MPI ranks (see tests/test_executor_contract.py
for the rest): initializer=, a result that raises SystemExit while the master
unpickles it, arguments and results that cannot be pickled, a map chunk that
fails half-way, results released as map yields them, and PyMW's data_files."""

from __future__ import annotations

import pytest

from .test_mpi import MPIEXEC, run_script

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not installed (apt-get install mpich)")


INIT_STATE = """
from mpi4py import MPI

STATE = {}


def remember(key, value):
    STATE[key] = value


def recall(_):
    return STATE.get("greeting"), MPI.COMM_WORLD.Get_rank()
"""


def test_executor_contract_on_worker_ranks(tmp_path):
    (tmp_path / "mpi_init_state.py").write_text(INIT_STATE)
    proc, reports = run_script(tmp_path, """
        import gc, weakref
        from mpi_init_state import remember, recall   # state lives in a module both share

        def explode(message):
            raise SystemExit(message)

        class ExitsWhenLoaded:
            def __reduce__(self):
                return explode, ("unpickled in the master",)

        class RefusesPickling:
            def __reduce__(self):
                raise ValueError("RefusesPickling will not be pickled")

        class Dummy:
            pass

        def make(kind):
            return {"exits": ExitsWhenLoaded, "refuses": RefusesPickling, "dummy": Dummy}[kind]()

        def fail_at_five(x):
            if x == 5:
                raise ValueError("no five please")
            return x

        def read_here(name):
            return sorted(os.listdir(".")), open(name).read()

        def describe(exc):
            return [type(exc).__name__, str(exc), type(exc.__cause__).__name__,
                    str(exc.__cause__)[:2000]]

        if __name__ == "__main__":
            args = add_arguments(argparse.ArgumentParser()).parse_args()
            out = {}
            with Master.from_args(args, initializer=remember,
                                  initargs=("greeting", "hello")) as master:
                out["recall"] = sorted(set(map(tuple, master.map(recall, range(40), chunksize=1))))
                out["exits"] = describe(master.submit(make, "exits").exception())
                out["after_exit"] = master.submit(abs, -3).result()
                out["bad_arg"] = describe(master.submit(abs, RefusesPickling()).exception())
                out["bad_result"] = describe(master.submit(make, "refuses").exception())
                out["bad_result_notes"] = getattr(master.submit(make, "refuses").exception(),
                                                  "__notes__", [])
                for chunksize in (10, 4, 1):
                    seen = []
                    try:
                        for value in master.map(fail_at_five, range(10), chunksize=chunksize):
                            seen.append(value)
                    except ValueError as exc:
                        seen.append(describe(exc))
                    out[f"chunk_{chunksize}"] = seen
                released = []
                for obj in master.map(make, ["dummy"] * 6, chunksize=2):
                    ref = weakref.ref(obj)
                    del obj
                    gc.collect()
                    released.append(ref() is None)
                out["released"] = released
                with open("shipped.txt", "w") as f:
                    f.write("shipped words")
                task = master.submit_task(read_here, ("shipped.txt",), data_files=["shipped.txt"])
                out["data_files"] = master.get_result(task)[1]
            report(**out)
        """)
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert out["recall"] == [["hello", 1], ["hello", 2]]
    kind, message, cause, _ = out["exits"]
    assert kind == "TaskError" and "unpickled" in message and cause == "SystemExit"
    assert out["after_exit"] == 3
    kind, message, cause, cause_text = out["bad_arg"]
    assert "will not be pickled" in message + cause_text and "ValueError" in (kind, cause)
    kind, message, cause, cause_text = out["bad_result"]
    assert kind == "ValueError" and "will not be pickled" in message
    assert cause == "RemoteTraceback" and "RefusesPickling" in cause_text
    assert any("result" in note for note in out["bad_result_notes"])
    for chunksize in (10, 4, 1):
        seen = out[f"chunk_{chunksize}"]
        assert seen[:5] == [0, 1, 2, 3, 4], (chunksize, seen)
        kind, message, cause, cause_text = seen[5]
        assert (kind, message, cause) == ("ValueError", "no five please", "RemoteTraceback")
        assert "fail_at_five" in cause_text
    assert out["released"] == [True] * 6
    # the file's bytes travelled with the task into a directory of its own
    assert out["data_files"] == [["shipped.txt"], "shipped words"]


def test_a_failing_initializer_fails_the_tasks_with_its_message(tmp_path):
    proc, reports = run_script(tmp_path, """
        def no_database():
            raise RuntimeError("no database here")

        if __name__ == "__main__":
            args = add_arguments(argparse.ArgumentParser()).parse_args()
            with Master.from_args(args, initializer=no_database) as master:
                errors = [f.exception() for f in [master.submit(abs, -i) for i in range(6)]]
            report(kinds=sorted({type(e).__name__ for e in errors}),
                   messages_ok=all("initializer" in str(e) and "no database here" in str(e)
                                   for e in errors))
        """)
    assert proc.returncode == 0, proc.stderr
    assert reports == [{"kinds": ["BrokenExecutor"], "messages_ok": True}]


def test_initializer_in_spawn_mode_and_a_dropped_master(tmp_path):
    """A master run alone spawns its ranks: each runs the initializer, and a
    Master dropped without shutdown() still lets the job end."""
    from .test_mpi import _spawn_supported

    if not _spawn_supported():
        pytest.skip("this MPI library cannot MPI_Comm_spawn")
    (tmp_path / "mpi_init_state.py").write_text(INIT_STATE)
    proc, reports = run_script(tmp_path, """
        import gc
        from mpi_init_state import remember, recall

        if __name__ == "__main__":
            args = add_arguments(argparse.ArgumentParser()).parse_args()
            master = Master.from_args(args, initializer=remember, initargs=("greeting", "spawned"))
            seen = sorted({value for value, _rank in master.map(recall, range(20), chunksize=1)})
            del master
            gc.collect()
            report(seen=seen)
        """, ranks=0, args=("-i", "mpi", "-n", "2"))
    assert proc.returncode == 0, proc.stderr
    assert reports == [{"seen": ["spawned"]}]
