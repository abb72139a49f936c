"""The HTCondor back end, as far as it can be tested without a pool.

No HTCondor pool can run here. What is real: the submit descriptions are
parsed and expanded by the bindings' own ``htcondor2.Submit``; each job's
command runs as a real process in a scratch directory laid out the way
HTCondor's file transfer leaves it; the job bookkeeping reads real ClassAds.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

htcondor2 = pytest.importorskip("htcondor2")
import classad2  # noqa: E402  (ships with htcondor2)

from boinc_pymw.backends.condor._jobs import JobTracker  # noqa: E402
from boinc_pymw.backends.condor._outcome import CondorJobFailed, finished_outcome  # noqa: E402
from boinc_pymw.backends.condor._submit import (  # noqa: E402
    ANY_MACHINE, JobSettings, cluster_settings, submit_description)
from boinc_pymw.backends.base import WorkItem  # noqa: E402
from boinc_pymw.backends.condor import encode_item, prepare_cluster  # noqa: E402
from boinc_pymw.errors import BoincPymwError  # noqa: E402
from boinc_pymw.backends.base import run_chunk  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]

USER_CODE = textwrap.dedent("""\
    def square(x):
        return x * x

    def describe(name, *, times=1):
        return {"name": name * times, "n": times}

    def fail(message):
        raise ValueError(message)

    def square_small(x):
        if x > 9:
            raise ValueError(f"{x} is too big")
        return x * x
    """)


@pytest.fixture
def user_code(tmp_path, monkeypatch):
    """A user module the jobs ship with --condor-code (not installed anywhere)."""
    code_dir = tmp_path / "usercode"
    code_dir.mkdir()
    (code_dir / "condor_tasks_mod.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(code_dir))
    import importlib

    sys.modules.pop("condor_tasks_mod", None)
    return code_dir, importlib.import_module("condor_tasks_mod")


def parse_arguments(value: str) -> list:
    """HTCondor's "new" arguments syntax (the value inside the double quotes)."""
    args, current, quoted, i, have = [], [], False, 0, False
    while i < len(value):
        c = value[i]
        if c == "'":
            if quoted and value[i + 1:i + 2] == "'":
                current.append("'")
                i += 2
                continue
            quoted, have = not quoted, True
        elif c == '"' and value[i + 1:i + 2] == '"':
            current.append('"')
            i += 1
        elif c.isspace() and not quoted:
            if current or have:
                args.append("".join(current))
            current, have = [], False
        else:
            current.append(c)
        i += 1
    if current or have:
        args.append("".join(current))
    return args


def expanded_jobs(submit_file: Path) -> list[dict]:
    """Each queued job's settings, as the bindings expand them."""
    sub = htcondor2.Submit(submit_file.read_text())
    jobs = []
    for item in sub.itemdata():
        for key, value in item.items():
            sub[key] = value
        jobs.append({key: sub.expand(key) for key in sub.keys()} | {"_item": item})
    return jobs


def make_batch(tmp_path, user_code, settings=None):
    code_dir, mod = user_code
    items = [
        WorkItem(mod.square, (7,)),
        WorkItem(mod.describe, ("ab",), {"times": 3}),
        WorkItem(run_chunk, (mod.square, [(1,), (2,), (3,)])),  # one Master.map chunk
        WorkItem(math.factorial, (10,)),
        WorkItem(mod.fail, ("no good",)),
    ]
    settings = settings or JobSettings(python=sys.executable, code=[str(code_dir)])
    batch_dir = tmp_path / "batch_0"
    jobs, text, itemdata = prepare_cluster(batch_dir, items, settings, run="run42")
    assert jobs == items and text == (batch_dir / "job.sub").read_text()
    return items, batch_dir, itemdata


def test_submit_description_parses_and_expands_to_one_job_per_item(tmp_path, user_code):
    items, batch_dir, itemdata = make_batch(tmp_path, user_code)
    jobs = expanded_jobs(batch_dir / "job.sub")
    assert [job["_item"] for job in jobs] == itemdata
    assert len(jobs) == len(items)
    code_dir = user_code[0]
    for index, (job, item) in enumerate(zip(jobs, items)):
        assert job["universe"] == "vanilla"
        assert job["executable"] == sys.executable
        assert job["transfer_executable"] == "false"
        assert job["initialdir"] == str(batch_dir / f"task_{index}")
        assert job["should_transfer_files"] == "YES"
        assert job["when_to_transfer_output"] == "ON_EXIT"
        assert job["transfer_input_files"] == f"input.json, {code_dir}"
        assert job["transfer_output_files"] == "output.json"
        assert job["log"] == str(batch_dir / "jobs.log")
        assert job["MY.BoincPymwItem"] == str(item.id)
        assert job["MY.BoincPymwRun"] == '"run42"'
        assert parse_arguments(job["arguments"].strip('"')) == [
            "-m", "boinc_pymw.worker", "--trusted-job", "--input", "input.json", "--output", "output.json",
            "--code", "usercode"]
        # No operating-system requirement unless asked (see ANY_MACHINE).
        assert job["requirements"] == ANY_MACHINE
        assert not re.search(r"(OpSys|Arch)\s*==", job["requirements"])


def test_requirements_timeout_and_extra_commands_only_when_asked(tmp_path, user_code):
    base = JobSettings(python="python3", requirements='(OpSys == "LINUX")',
                       extra={"request_memory": "2GB"})
    settings = cluster_settings(base, run="r", timeout=2.5)
    (tmp_path / "b").mkdir()
    text = submit_description(tmp_path / "b", settings)
    sub = htcondor2.Submit(text)
    assert sub["requirements"] == '(OpSys == "LINUX")'
    assert sub["request_memory"] == "2GB"
    assert sub["allowed_execute_duration"] == "3"
    assert sub["executable"] == "/usr/bin/env"
    assert parse_arguments(sub["arguments"].strip('"'))[:3] == ["python3", "-m", "boinc_pymw.worker"]
    with pytest.raises(ValueError, match="set by boinc_pymw"):
        submit_description(tmp_path / "b", JobSettings(extra={"Requirements": "True"}))
    with pytest.raises(ValueError, match="set by boinc_pymw"):
        submit_description(tmp_path / "b", JobSettings(extra={"transfer_output_files": "x"}))


def transfer_and_run(job: dict, scratch: Path, env=None) -> subprocess.CompletedProcess:
    """Do what HTCondor does for one job: copy transfer_input_files (relative to
    initialdir) into an empty scratch directory, run the command there with
    stdout/stderr to the named files, then copy transfer_output_files back."""
    initialdir = Path(job["initialdir"])
    scratch.mkdir()
    for name in [p.strip() for p in job["transfer_input_files"].split(",")]:
        source = Path(name) if os.path.isabs(name) else initialdir / name
        target = scratch / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    command = [job["executable"], *parse_arguments(job["arguments"].strip('"'))]
    with open(initialdir / job["output"], "w") as out, open(initialdir / job["error"], "w") as err:
        proc = subprocess.run(command, cwd=scratch, stdout=out, stderr=err, env=env, timeout=120)
    for name in job["transfer_output_files"].split(","):
        produced = scratch / name.strip()
        if produced.exists():
            shutil.copy2(produced, initialdir / name.strip())
    return proc


def completed_ad(proc_id: int, exit_code: int = 0):
    return classad2.ClassAd({"ClusterId": 1, "ProcId": proc_id, "JobStatus": 4,
                             "ExitCode": exit_code, "ExitBySignal": False})


def test_each_job_command_in_a_file_transfer_scratch_dir_produces_output(tmp_path, user_code):
    items, batch_dir, _ = make_batch(tmp_path, user_code)
    jobs = expanded_jobs(batch_dir / "job.sub")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as on an execute node
    values = []
    for index, job in enumerate(jobs):
        proc = transfer_and_run(job, tmp_path / f"scratch_{index}", env=env)
        assert proc.returncode == 0, (Path(job["initialdir"]) / "stderr.txt").read_text()
        output = Path(job["initialdir"]) / "output.json"
        assert output.exists()
        try:
            values.append(["value", finished_outcome(completed_ad(index), Path(job["initialdir"]))])
        except Exception as exc:
            values.append([type(exc).__name__, str(exc)])
    assert values == [
        ["value", 49],
        ["value", {"name": "ababab", "n": 3}],
        ["value", [1, 4, 9]],
        ["value", 3628800],
        ["ValueError", "no good"],
    ]
    # The scratch directory holds what file transfer brought, plus the output.
    assert sorted(p.name for p in (tmp_path / "scratch_0").iterdir()) == [
        "input.json", "output.json", "usercode"]


def test_job_through_usr_bin_env_finds_python_on_the_path(tmp_path, user_code):
    settings = JobSettings(python="python3", code=[str(user_code[0])])
    _, batch_dir, _ = make_batch(tmp_path, user_code, settings)
    job = expanded_jobs(batch_dir / "job.sub")[0]
    assert job["executable"] == "/usr/bin/env"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env.pop("PYTHONPATH", None)
    proc = transfer_and_run(job, tmp_path / "scratch", env=env)
    assert proc.returncode == 0
    assert finished_outcome(completed_ad(0), Path(job["initialdir"])) == 49


def test_job_whose_worker_fails_reports_exit_code_and_stderr(tmp_path, user_code):
    _, batch_dir, _ = make_batch(tmp_path, user_code)
    job = expanded_jobs(batch_dir / "job.sub")[0]
    job["transfer_input_files"] = "input.json"  # the user code is not shipped: import fails
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = transfer_and_run(job, tmp_path / "scratch", env=env)
    assert proc.returncode != 0
    code = proc.returncode
    with pytest.raises(CondorJobFailed, match=rf"exited with code {code} and sent back no output\.json") as info:
        finished_outcome(completed_ad(0, exit_code=code), Path(job["initialdir"]))
    # the worker's own message, from the job's stderr.txt
    assert "boinc_pymw.worker: error: code path usercode" in str(info.value)


def test_a_chunk_failing_mid_way_keeps_the_results_before_it(tmp_path, user_code):
    from boinc_pymw.backends.base import ChunkFailed

    code_dir, mod = user_code
    item = WorkItem(run_chunk, (mod.square_small, [(1,), (2,), (30,), (4,)]))
    whole = WorkItem(run_chunk, (mod.square_small, [(3,)]))
    settings = JobSettings(python=sys.executable, code=[str(code_dir)])
    jobs, _text, _ = prepare_cluster(tmp_path / "b", [item, whole], settings, run="r")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tracker = JobTracker()
    tracker.add(1, [(i, tmp_path / "b" / f"task_{n}") for n, i in enumerate(jobs)])
    for n, job in enumerate(expanded_jobs(tmp_path / "b" / "job.sub")):
        assert transfer_and_run(job, tmp_path / f"scratch_{n}", env=env).returncode == 0
        tracker.finish((1, n), completed_ad(n))
    failed = item.future.exception(0)
    assert isinstance(failed, ChunkFailed) and failed.results == [1, 4]
    assert isinstance(failed.error, ValueError) and str(failed.error) == "30 is too big"
    assert "square_small" in failed.traceback_text
    assert whole.future.result(0) == [9]


def test_tracker_follows_queue_ads_held_jobs_fail_with_the_hold_reason(tmp_path):
    tracker = JobTracker()
    items = [WorkItem(abs, (i,)) for i in range(4)]
    dirs = []
    for i in range(4):
        d = tmp_path / f"task_{i}"
        d.mkdir()
        dirs.append(d)
    (dirs[1] / "stderr.txt").write_text("something went wrong on the execute node\n")
    tracker.add(12, list(zip(items, dirs)))
    asked = tracker.keys()
    items[3].future.cancel()
    ads = [classad2.ClassAd({"ClusterId": 12, "ProcId": 0, "JobStatus": 2}),
           classad2.ClassAd({"ClusterId": 12, "ProcId": 1, "JobStatus": 5, "HoldReasonCode": 12,
                             "HoldReason": "Error from slot1@node: Failed to execute '/usr/bin/env'"}),
           classad2.ClassAd({"ClusterId": 12, "ProcId": 3, "JobStatus": 1})]
    to_remove, gone = tracker.see_queue(ads, asked)
    assert items[0].future.running()
    with pytest.raises(CondorJobFailed) as info:
        items[1].future.result(0)
    assert info.value.hold_reason == "Error from slot1@node: Failed to execute '/usr/bin/env'"
    assert "HTCondor job 12.1 was held: Error from slot1@node" in str(info.value)
    assert "HoldReasonCode 12" in str(info.value)
    assert "something went wrong on the execute node" in str(info.value)
    assert sorted(to_remove) == [(12, 1), (12, 3)]  # held, and cancelled while idle
    assert gone == [(12, 2)]                         # left the queue: ask the history
    assert not dirs[1].exists()                      # job files cleaned up
    (dirs[2] / "output.json").write_text(json.dumps({"ok": True, "value": 2}))
    tracker.finish((12, 2), None)  # no history kept: output.json decides
    assert items[2].future.result(0) == 2
    removed = classad2.ClassAd({"ClusterId": 12, "ProcId": 0, "JobStatus": 3,
                                "RemoveReason": "via condor_rm (by user alice)"})
    tracker.finish((12, 0), removed)
    with pytest.raises(CondorJobFailed, match="was removed: via condor_rm"):
        items[0].future.result(0)
    assert len(tracker) == 0


def test_a_cluster_drops_items_that_cannot_be_jobs_and_carries_the_timeout(tmp_path, user_code):
    _, mod = user_code
    good = WorkItem(mod.square, (3,), timeout=90.5)
    closure = WorkItem(lambda: 1)
    not_json = WorkItem(mod.square, ({1, 2},))
    jobs, text, itemdata = prepare_cluster(tmp_path / "b", [closure, good, not_json],
                                           JobSettings(), run="r1")
    assert jobs == [good]
    assert isinstance(closure.future.exception(0), TypeError)
    assert "JSON" in str(not_json.future.exception(0))
    assert not good.future.done()
    sub = htcondor2.Submit(text)
    assert sub["allowed_execute_duration"] == "91"
    assert [dict(i) for i in sub.itemdata()] == itemdata == [
        {"task_dir": str(tmp_path / "b" / "task_0"), "item_id": str(good.id)}]
    assert json.loads((tmp_path / "b" / "task_0" / "input.json").read_text()) == {
        "function": "condor_tasks_mod:square", "args": [3], "kwargs": {}}


def test_items_that_cannot_become_json_jobs_say_why(user_code):
    _, mod = user_code
    with pytest.raises(TypeError, match="lambda or a closure"):
        encode_item(WorkItem(lambda x: x, (1,)))
    with pytest.raises(TypeError, match="JSON"):
        encode_item(WorkItem(mod.square, (object(),)))
    chunk = encode_item(WorkItem(run_chunk, (mod.square, [(1,), (2,)])))
    assert chunk == {"function": "boinc_pymw.backends.condor._chunk:run_chunk",
                     "args": ["condor_tasks_mod:square", [[1], [2]]], "kwargs": {}}


def test_backend_without_a_pool_says_so_clearly(tmp_path):
    from boinc_pymw import Master

    with pytest.raises(BoincPymwError, match="cannot reach the local schedd of an HTCondor pool"):
        Master("condor", directory=str(tmp_path))
    with pytest.raises(BoincPymwError, match="cannot reach schedd 'submit.example.org'"):
        Master("condor", schedd="submit.example.org", directory=str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # nothing written before a schedd was found


def test_options_are_listed_without_the_bindings_installed():
    code = textwrap.dedent("""\
        import sys, argparse
        sys.modules["htcondor2"] = None
        sys.modules["htcondor"] = None
        from boinc_pymw import add_arguments
        from boinc_pymw.backends.condor import CondorBackend
        args = add_arguments(argparse.ArgumentParser()).parse_args(
            ["--condor-python", "/opt/py/bin/python3", "--condor-submit", "request_memory=2GB",
             "--condor-requirements", "HasDocker"])
        opts = CondorBackend.options_from_args(args)
        print(opts["python"], opts["submit_commands"], opts["requirements"])
        try:
            CondorBackend()
        except Exception as exc:
            print(type(exc).__name__, exc)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first == "/opt/py/bin/python3 {'request_memory': '2GB'} HasDocker"
    assert second.startswith("BoincPymwError the HTCondor back end needs the htcondor Python bindings")
