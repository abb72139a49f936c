"""A task learns what its plan class gave it: the thread count under the real BOINC
client (app_version <avg_ncpus>, passed to the app as init_data.xml's ncpus), in
boinc_pymw.task_resources() and the variables numerical libraries read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from boinc_pymw.boinc.app_install import pack_code
from boinc_pymw.local.slots import BoincClientRunner, SlotFile, SlotJob, SlotRunner
from boinc_pymw.worker import resources

LINUX = "x86_64-pc-linux-gnu"

TASKS = '''
import os


def seen():
    from boinc_pymw import task_resources

    r = task_resources()
    return {"threads": r.threads, "gpu_device": r.gpu_device,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS")}}
'''


@pytest.fixture(scope="module")
def app_files(tmp_path_factory, portable_runtime, launchers):
    from boinc_pymw.interpreter_build.launcher_build import pack_runtime_archive

    out = tmp_path_factory.mktemp("mt_app")
    (out / "src").mkdir()
    (out / "src" / "pymw_mt_tasks.py").write_text(TASKS)
    code = pack_code([out / "src" / "pymw_mt_tasks.py"], out / "mt_code.zip")
    runtime = pack_runtime_archive(portable_runtime, out / "mt_runtime.zip")
    launcher = out / "mt_launcher"
    shutil.copy2(launchers[LINUX], launcher)
    return [SlotFile(launcher.name, launcher), SlotFile(runtime.name, runtime, "python_runtime.zip"),
            SlotFile(code.name, code, "app_code.zip")]


def _job(tmp_path, app_files, name, **usage) -> SlotJob:
    job = tmp_path / f"{name}_in.json"
    job.write_text(json.dumps({"function": "pymw_mt_tasks:seen", "args": [], "kwargs": {}}))
    return SlotJob(app_name="mtapp", wu_name=name, result_name=f"{name}_0",
                   main_program=app_files[0].physical_name, app_files=app_files,
                   input_files=[SlotFile(job.name, job, "input.json")],
                   output_files=[SlotFile(f"{name}_0_0", None, "output.json", max_nbytes=1e6)],
                   version_num=100, **usage)


def _value(outcome) -> dict:
    assert outcome.success, outcome.message + outcome.stderr
    document = json.loads(next(iter(outcome.outputs.values())).read_text())
    assert document["ok"], document
    return document["value"]


@pytest.mark.skipif(shutil.which("boinc") is None, reason="needs Debian's boinc-client")
def test_the_real_client_passes_avg_ncpus_to_the_task(tmp_path, app_files):
    runner = BoincClientRunner(tmp_path / "client")
    seen = _value(runner.run(_job(tmp_path, app_files, "mt_real", plan_class="mt",
                                  avg_ncpus=2.0)))
    assert seen["threads"] == 2
    assert seen["env"] == {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
                           "MKL_NUM_THREADS": "2"}
    assert seen["gpu_device"] is None


def test_the_slot_emulation_passes_ncpus_and_the_gpu(tmp_path, app_files, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "17")       # the volunteer's own setting is replaced
    runner = SlotRunner(tmp_path / "client")
    seen = _value(runner.run(_job(tmp_path, app_files, "mt_emul", plan_class="mt", avg_ncpus=3.0,
                                  gpu_type="NVIDIA", gpu_device_num=1)))
    assert seen["threads"] == 3 and seen["env"]["OMP_NUM_THREADS"] == "3"
    assert seen["gpu_device"] == 1


def test_outside_boinc_nothing_is_overridden(monkeypatch):
    monkeypatch.setattr(resources, "_current", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    resources.apply_from_init_data({})                 # HTCondor, multicore: no client
    assert resources.task_resources() == resources.TaskResources(threads=5)
    resources.apply_from_init_data({"ncpus": 0.0})     # the real module, standalone
    assert resources.task_resources().threads == 5


def test_init_data_to_resources():
    r = resources.from_init_data({"ncpus": 0.1, "gpu_type": "NVIDIA", "gpu_device_num": 2})
    assert r == resources.TaskResources(threads=1, gpu_type="NVIDIA", gpu_device=2)
    assert resources.from_init_data({"ncpus": 7.6, "gpu_type": "", "gpu_device_num": -1}) == \
        resources.TaskResources(threads=8)


def test_boinc_local_runs_an_mt_version_with_this_machines_cpus(boinc_project, portable_runtime,
                                                                launchers, tmp_path, monkeypatch):
    """-i boinc-local -p PROJECT: the installed mt version gets what the project's spec gives
    this machine (min(max_threads, CPUs)), through init_data.xml as under a client."""
    import os

    from boinc_pymw import Master
    from boinc_pymw.boinc.app_install import install_app

    code = tmp_path / "code"
    code.mkdir()
    (code / "pymw_mt_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(code))
    install_app(boinc_project, "mtapp", "1.0", code=[code / "pymw_mt_tasks.py"],
                interpreter=portable_runtime, unsigned=True, plan_class="mt",
                launchers={LINUX: launchers[LINUX]})
    assert (Path(boinc_project.path) / "apps" / "mtapp" / "1.0" / f"{LINUX}__mt").is_dir()
    import pymw_mt_tasks

    with Master(interface="boinc-local", project=boinc_project.path, app="mtapp", workers=1,
                quorum=1, client="builtin", workdir=str(tmp_path / "w"),
                cache_dir=str(tmp_path / "cache")) as m:
        seen = m.submit(pymw_mt_tasks.seen).result(timeout=600)
    cpus = os.cpu_count()
    assert seen["threads"] == min(cpus, 64) and seen["env"]["OMP_NUM_THREADS"] == str(min(cpus, 64))
