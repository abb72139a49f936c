"""The MPI back end with real MPI ranks (MPICH and its mpiexec: Debian's
4.0.2, or the PyPI ``mpich`` wheel with mpi4py's binary wheel).

Each test writes a small user script, runs it under ``mpiexec`` (rank 0 is the
master, the other ranks its workers) and checks what the script printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# The PyPI mpich wheel puts its mpiexec beside the venv's python.
_VENV_MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
MPIEXEC = _VENV_MPIEXEC if os.access(_VENV_MPIEXEC, os.X_OK) else shutil.which("mpiexec")

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not installed (apt-get install mpich)")

HEADER = textwrap.dedent("""\
    import argparse, json, os, sys, time
    from boinc_pymw import Master, add_arguments, TaskError, WorkerLost

    def rank():
        from mpi4py import MPI
        return MPI.COMM_WORLD.Get_rank()

    def report(**facts):
        print("REPORT " + json.dumps(facts), flush=True)
    """)


def run_script(tmp_path, body: str, *, ranks: int = 3, launcher=("-m", "boinc_pymw.backends.mpi"),
               mpiexec_options=(), args=("-i", "mpi"), timeout: float = 120, env=None):
    script = tmp_path / "user_script.py"
    script.write_text(HEADER + textwrap.dedent(body))
    cmd = [sys.executable, *launcher, str(script), *args]
    if ranks:
        cmd = [MPIEXEC, *mpiexec_options, "-n", str(ranks), *cmd]
    env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    env.pop("BOINC_PYMW_INTERFACE", None)
    # Own session: hydra signals a spawning singleton's whole process group.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
                          env=env, start_new_session=True)
    reports = [json.loads(line[len("REPORT "):]) for line in proc.stdout.splitlines()
               if line.startswith("REPORT ")]
    return proc, reports


def test_map_and_submit_run_on_worker_ranks(tmp_path):
    proc, reports = run_script(tmp_path, """
        def square(x):
            return x * x

        if __name__ == "__main__":
            args = add_arguments(argparse.ArgumentParser()).parse_args()
            offset = 7
            with Master.from_args(args) as master:
                squares = list(master.map(square, range(2000)))
                lambdas = [f.result() for f in [master.submit(lambda x: x + offset, i) for i in range(50)]]
                ranks = sorted(set(master.map(lambda _: rank(), range(200), chunksize=1)))
                status = master.get_status()
            report(squares_ok=squares == [x * x for x in range(2000)],
                   lambdas_ok=lambdas == [i + 7 for i in range(50)],
                   ranks=ranks, master_rank=rank(), workers=status["workers"],
                   mode=status["mpi_mode"])
        """)
    assert proc.returncode == 0, proc.stderr
    assert reports == [{"squares_ok": True, "lambdas_ok": True, "ranks": [1, 2],
                        "master_rank": 0, "workers": 2, "mode": "mpiexec"}]


def test_task_exceptions_come_back_with_their_type_and_remote_traceback(tmp_path):
    proc, reports = run_script(tmp_path, """
        class MyError(Exception):
            pass

        def fail(kind):
            if kind == "value":
                raise ValueError("bad value 42")
            if kind == "mine":
                raise MyError("own class")
            if kind == "unpicklable_result":
                import threading
                return threading.Lock()  # a lock does not pickle
            return kind

        if __name__ == "__main__":
            args = add_arguments(argparse.ArgumentParser()).parse_args()
            out = {}
            with Master.from_args(args) as master:
                for kind in ("value", "mine", "unpicklable_result", "fine"):
                    try:
                        out[kind] = ["value", master.submit(fail, kind).result()]
                    except Exception as exc:
                        out[kind] = [type(exc).__name__, str(exc), str(exc.__cause__)]
                # the pool keeps working after failures
                out["after"] = sum(master.map(abs, range(-10, 10)))
            report(**out)
        """)
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert out["value"][:2] == ["ValueError", "bad value 42"]
    remote_tb = out["value"][2]
    assert remote_tb.startswith("Traceback") and ", in fail" in remote_tb
    assert remote_tb.rstrip().endswith("ValueError: bad value 42")
    assert out["mine"][:2] == ["MyError", "own class"]
    # the pickler's own exception (with a note that it was the result)
    assert out["unpicklable_result"][0] == "TypeError"
    assert "cannot pickle '_thread.lock'" in out["unpicklable_result"][1]
    assert out["fine"] == ["value", "fine"]
    assert out["after"] == 100


def test_task_timeout_interrupts_the_task_and_the_worker_goes_on(tmp_path):
    proc, reports = run_script(tmp_path, """
        def slow(seconds):
            end = time.time() + seconds
            while time.time() < end:
                pass
            return seconds

        if __name__ == "__main__":
            with Master("mpi", task_timeout=0.5) as master:
                futures = [master.submit(slow, 30), master.submit(slow, 0.01)]
                outcomes = []
                for f in futures:
                    try:
                        outcomes.append(["value", f.result()])
                    except Exception as exc:
                        outcomes.append([type(exc).__name__, str(exc)])
                after = master.submit(slow, 0).result()
            report(outcomes=outcomes, after=after)
        """)
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert out["outcomes"][0][0] == "TaskTimeout"
    assert out["outcomes"][1] == ["value", 0.01]
    assert out["after"] == 0


def test_plain_mpiexec_script_turns_other_ranks_into_workers(tmp_path):
    """``mpiexec -n 3 python script.py``: ranks 1 and 2 serve inside Master()
    and never run the code after it."""
    proc, reports = run_script(tmp_path, """
        from mpi4py import MPI  # the user's own import comes first: exit must still be clean

        if __name__ == "__main__":
            if rank() == 2:
                time.sleep(4)  # slow to reach Master(): not a lost rank, it just gets work later
            with Master("mpi", heartbeat_timeout=2.5) as master:
                total = sum(master.map(abs, range(-100, 100)))
                while len(master.get_status()["lost_workers"]) == 0:
                    ranks = sorted(set(master.map(lambda _: rank(), range(100), chunksize=1)))
                    if ranks == [1, 2]:
                        break
                status = master.get_status()
            report(total=total, ranks=ranks, me=rank(), lost=status["lost_workers"])
        """, launcher=())
    assert proc.returncode == 0, proc.stderr
    assert reports == [{"total": 10000, "ranks": [1, 2], "me": 0, "lost": []}]


def test_a_dead_rank_fails_its_tasks_with_worker_lost_and_the_rest_finish(tmp_path):
    proc, reports = run_script(tmp_path, """
        def work(x):
            if rank() == 2:
                os._exit(9)  # this rank dies on its first task
            time.sleep(0.02)
            return x

        if __name__ == "__main__":
            args = add_arguments(argparse.ArgumentParser()).parse_args()
            with Master.from_args(args) as master:
                futures = [master.submit(work, i) for i in range(40)]
                done, lost, messages = [], 0, set()
                for f in futures:
                    try:
                        done.append(f.result())
                    except WorkerLost as exc:
                        lost += 1
                        messages.add(str(exc).split(";")[0])
                later = list(master.map(work, range(20)))
                status = master.get_status()
            report(done=len(done), lost=lost, messages=sorted(messages), later=later,
                   workers=status["workers"], lost_workers=len(status["lost_workers"]))
        """, mpiexec_options=("-disable-auto-cleanup",),
        args=("-i", "mpi", "--mpi-heartbeat-timeout", "3"))
    # mpiexec reports the dead rank's exit status; the master itself finished.
    assert proc.returncode == 9, proc.stderr
    (out,) = reports
    assert out["lost"] >= 1 and out["done"] + out["lost"] == 40
    assert out["messages"] == ["MPI worker rank 2 sent nothing (not even a heartbeat) for 3 s"]
    assert out["later"] == list(range(20))
    assert out["workers"] == 1 and out["lost_workers"] == 1


def _spawn_supported() -> bool:
    """Can this MPI library run MPI_Comm_spawn at all? Debian 12's MPICH 4.0.2
    (ch4:ucx) cannot: "MPIDI_UCX_get_local_upids: The function is currently not
    supported with ucx netmod". PyPI's mpich 5 wheel can (with its own mpiexec
    first on PATH, which the back end arranges as the test below checks)."""
    code = ("import sys; from mpi4py import MPI\n"
            "from boinc_pymw.backends.mpi import _runtime as rt\n"
            "rt.use_library_mpiexec(MPI)\n"
            "c = MPI.COMM_SELF.Spawn(sys.executable, ['-c', 'from mpi4py import MPI; "
            "MPI.Comm.Get_parent().Disconnect()'], maxprocs=1)\nc.Disconnect()\n")
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                              env=dict(os.environ, PYTHONPATH=ROOT),
                              start_new_session=True).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def spawn_supported():
    return _spawn_supported()


def test_master_alone_spawns_its_workers(tmp_path, spawn_supported):
    if not spawn_supported:
        pytest.skip("this MPI library cannot MPI_Comm_spawn (Debian 12's MPICH 4.0.2 "
                    "cannot; PyPI's mpich wheel can)")
    # Debian's /usr/bin/mpiexec first on PATH, as on a machine with both MPICHs:
    # the back end must still start the singleton's mpiexec of its own MPICH.
    path = os.pathsep.join(["/usr/bin", os.environ.get("PATH", "")])
    proc, reports = run_script(tmp_path, """
        def where(_):
            return os.getpid()

        if __name__ == "__main__":
            args = add_arguments(argparse.ArgumentParser()).parse_args()
            with Master.from_args(args) as master:
                total = sum(master.map(abs, range(-100, 100)))
                pids = set(master.map(where, range(200), chunksize=1))
                blob = os.urandom(1 << 20)
                echoed = master.submit(bytes.upper, blob).result() == blob.upper()
                status = master.get_status()
            report(total=total, workers=status["workers"], mode=status["mpi_mode"],
                   worker_pids=len(pids), master_pid_used=os.getpid() in pids, echoed=echoed)
        """, ranks=0, args=("-i", "mpi", "-n", "2"), env={"PATH": path})
    assert proc.returncode == 0, proc.stderr
    assert reports == [{"total": 10000, "workers": 2, "mode": "spawn", "worker_pids": 2,
                        "master_pid_used": False, "echoed": True}]


def test_spawn_uses_the_mpiexec_of_the_loaded_mpich(tmp_path):
    """A singleton's MPI_Comm_spawn runs the first ``mpiexec`` on PATH; the back
    end puts the loaded MPICH's own one first (another MPICH's hydra rejects
    ``-pmi_args`` and the spawn then waits forever)."""
    decoy = tmp_path / "bin"
    decoy.mkdir()
    (decoy / "mpiexec").write_text("#!/bin/sh\necho decoy; exit 1\n")
    (decoy / "mpiexec").chmod(0o755)
    code = textwrap.dedent("""\
        import json, os, shutil, subprocess
        from mpi4py import MPI
        from boinc_pymw.backends.mpi import _runtime as rt
        before = shutil.which("mpiexec")
        rt.use_library_mpiexec(MPI)
        after = shutil.which("mpiexec")
        version = subprocess.run([after, "--version"], capture_output=True, text=True).stdout
        print(json.dumps({"before": before, "after": after, "hydra": version,
                          "library": MPI.Get_library_version()}))
        """)
    env = dict(os.environ, PYTHONPATH=ROOT, PATH=os.pathsep.join([str(decoy), os.environ["PATH"]]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["before"] == str(decoy / "mpiexec")
    assert out["after"] != out["before"]
    library_version = out["library"].split("MPICH Version:")[1].split()[0]
    hydra_version = out["hydra"].split("Version:")[1].split()[0]
    assert hydra_version == library_version


def test_master_alone_without_spawn_says_how_to_start_workers(tmp_path, spawn_supported):
    if spawn_supported:
        pytest.skip("this MPI library can spawn; the spawn test covers it")
    proc, reports = run_script(tmp_path, """
        if __name__ == "__main__":
            try:
                Master("mpi", workers=2)
            except Exception as exc:
                report(type=type(exc).__name__, message=str(exc))
        """, ranks=0, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert out["type"] == "BoincPymwError"
    assert "could not spawn" in out["message"]
    assert "mpiexec -n 3" in out["message"] and "-m boinc_pymw.backends.mpi" in out["message"]


def test_options_are_listed_without_mpi4py_installed(tmp_path):
    """``add_arguments`` must work where mpi4py is missing."""
    code = textwrap.dedent("""\
        import sys, argparse
        sys.modules["mpi4py"] = None  # as if it were not installed
        from boinc_pymw import add_arguments
        from boinc_pymw.backends.mpi import MPIBackend
        args = add_arguments(argparse.ArgumentParser()).parse_args(["--mpi-heartbeat-timeout", "5"])
        print(MPIBackend.options_from_args(args))
        try:
            MPIBackend(workers=1)
        except Exception as exc:
            print(type(exc).__name__, exc)
        try:
            MPIBackend(workers=1, heartbeat_timeout=1)
        except Exception as exc:
            print(type(exc).__name__, exc)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    first, second, third = proc.stdout.splitlines()[:3]
    assert first == "{'heartbeat_timeout': 5.0}"
    assert second.startswith("BoincPymwError the MPI back end needs mpi4py")
    assert third == ("ValueError heartbeat_timeout must be at least 2 s "
                     "(workers send a heartbeat every 1 s)")


def test_mpi_entry_point_with_a_missing_script_ends_the_whole_job(tmp_path):
    proc = subprocess.run([MPIEXEC, "-n", "3", sys.executable, "-m", "boinc_pymw.backends.mpi",
                           str(tmp_path / "missing.py")], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2
    assert "no such script" in proc.stderr


def test_mpi_entry_point_without_script_prints_usage():
    proc = subprocess.run([sys.executable, "-m", "boinc_pymw.backends.mpi"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2
    assert "mpiexec -n N+1 python -m boinc_pymw.backends.mpi script.py" in proc.stderr


def test_benchmark_quick_mode_runs_both_pools():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_mpi.py"), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for label in ("W1 submit tasks/s", "W1 map tasks/s", "W2 MiB/s", "W3 efficiency"):
        line = next(l for l in proc.stdout.splitlines() if l.startswith(label))
        assert len(line.split()) >= 6  # figure, ours, peer, ratio, target


def test_big_payloads_odd_exceptions_and_cancel_on_shutdown(tmp_path):
    proc, reports = run_script(tmp_path, """
        class TwoArgError(Exception):
            def __init__(self, a, b):  # pickles, but does not unpickle
                super().__init__(f"{a}/{b}")

        def echo(blob):
            return {"rev": blob[::-1], "size": len(blob), "nested": [blob[:10]]}

        def odd():
            raise TwoArgError(1, 2)

        def slow(x):
            time.sleep(0.2)
            return x

        if __name__ == "__main__":
            # first, while the pool knows nothing of task times (it queues 8 per worker)
            master = Master("mpi")
            futures = [master.submit(slow, i) for i in range(40)]
            while not futures[0].running():  # the first tasks have reached the workers
                time.sleep(0.01)
            master.shutdown(wait=True, cancel_futures=True)
            states = [("cancelled" if f.cancelled() else "done") for f in futures]
            blob = os.urandom(3 << 20)
            with Master("mpi") as master:
                out = master.submit(echo, blob).result()
                try:
                    master.submit(odd).result()
                    odd_outcome = "no error"
                except Exception as exc:
                    odd_outcome = [type(exc).__name__, str(exc)]
            report(big_ok=out["rev"] == blob[::-1] and out["size"] == len(blob)
                   and out["nested"] == [blob[:10]], odd=odd_outcome,
                   cancelled=states.count("cancelled"), done=states.count("done"),
                   values_ok=all(f.result() == i for i, f in enumerate(futures) if not f.cancelled()))
        """)
    assert proc.returncode == 0, proc.stderr
    (out,) = reports
    assert out["big_ok"] is True
    assert out["odd"] == ["TaskError", "TwoArgError: 1/2"]
    assert out["cancelled"] > 0 and out["done"] > 0 and out["cancelled"] + out["done"] == 40
    assert out["values_ok"] is True


def test_wire_format_keeps_big_bytes_out_of_the_pickle():
    from boinc_pymw.backends.mpi import _protocol as wire

    big = os.urandom(wire.BIG + 1)
    small = b"x" * 100
    frames = wire.encode({"a": big, "b": [small, big], "c": bytearray(b"ba")}, prefix=[7, 8])
    assert len(frames) == 3 and frames[1] is big and frames[2] is big
    assert len(frames[0]) < 1000  # the head does not carry the big buffers
    assert wire.decode_prefix(frames) == [7, 8]
    received = [bytearray(f) for f in frames]  # what MPI Recv hands over
    value = wire.decode(received)
    assert value == {"a": big, "b": [small, big], "c": bytearray(b"ba")}
    assert type(value["a"]) is bytes
