"""PyMW's data_files on the HTCondor back end: file transfer puts each file,
under its base name, into the job's scratch directory (its current one).
Checked as test_condor checks jobs: the bindings expand the submit file, and
the job runs in a scratch directory laid out the way file transfer does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

htcondor2 = pytest.importorskip("htcondor2")

from boinc_pymw.backends.base import WorkItem  # noqa: E402
from boinc_pymw.backends.condor import prepare_cluster  # noqa: E402
from boinc_pymw.backends.condor.backend import by_data_files, data_paths  # noqa: E402
from boinc_pymw.backends.condor._outcome import finished_outcome  # noqa: E402
from boinc_pymw.backends.condor._submit import JobSettings  # noqa: E402
from boinc_pymw.backends.task_directory import collect, run_in_task_directory  # noqa: E402

from .test_condor import (  # noqa: E402,F401  (user_code is a fixture)
    completed_ad, expanded_jobs, transfer_and_run, user_code)


def with_data(fn, args, paths):
    return WorkItem(run_in_task_directory, (fn, args, {}, collect(paths, "copy")))


def test_data_files_reach_the_jobs_directory_under_their_names(tmp_path, user_code):
    code_dir, mod = user_code
    (tmp_path / "in").mkdir()
    words = tmp_path / "in" / "words.txt"
    words.write_text("abc")
    item = with_data(os.listdir, (".",), [str(words)])
    settings = JobSettings(python=sys.executable, code=[str(code_dir)], data=data_paths(item))
    batch_dir = tmp_path / "batch_0"
    jobs, _text, _items = prepare_cluster(batch_dir, [item], settings, run="r")
    assert jobs == [item]
    (job,) = expanded_jobs(batch_dir / "job.sub")
    assert job["transfer_input_files"] == f"input.json, {words}, {code_dir}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = transfer_and_run(job, tmp_path / "scratch", env=env)
    assert proc.returncode == 0, (Path(job["initialdir"]) / "stderr.txt").read_text()
    listing = finished_outcome(completed_ad(0), Path(job["initialdir"]))
    assert sorted(listing) == ["input.json", "usercode", "words.txt"]


def test_items_with_other_data_files_go_to_other_clusters(tmp_path, user_code):
    _, mod = user_code
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a")
    b.write_text("b")
    plain1, plain2 = WorkItem(mod.square, (1,)), WorkItem(mod.square, (2,))
    with_a1, with_a2 = with_data(mod.square, (3,), [a]), with_data(mod.square, (4,), [a])
    with_ab = with_data(mod.square, (5,), [a, b])
    groups = by_data_files([plain1, with_a1, with_ab, plain2, with_a2])
    assert groups == [((), [plain1, plain2]), ((str(a),), [with_a1, with_a2]),
                      ((str(a), str(b)), [with_ab])]
