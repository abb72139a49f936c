"""Only signed code runs: the worker calls entry points of the app's own code, nothing else.

A hostile workunit names os:system, builtins:exec, a standard-library function,
a private name or a module that is not part of the app's code. Each is refused
before anything of it runs: a message on stderr, a non-zero exit, no output,
and no marker file from the module-level code or the call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from boinc_pymw.worker.entry_points import (MANIFEST_NAME, EntryPointRefused, EntryPoints,
                                            default_entry_points, split_reference)

from .conftest import HERE, write_job


def _worker(cwd: Path, code, *args: str, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(env_extra or {})
    code_args = ["--code", str(code)] if code is not None else []
    return subprocess.run([sys.executable, "-m", "boinc_pymw.worker", *code_args, *args],
                          cwd=cwd, capture_output=True, text=True, env=env, timeout=60)


def _hostile_module(tmp_path: Path) -> Path:
    """A module on PYTHONPATH (not in the app's code) whose import leaves a marker."""
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = tmp_path / "imported.marker"
    (outside / "outside_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('module code ran')\n"
        f"def run(path):\n    open(path, 'w').write('called')\n")
    return outside


@pytest.mark.parametrize("reference, args, reason", [
    ("os:system", ["touch {marker}"], "part of Python or of the runtime"),
    ("builtins:exec", ["open({marker!r}, 'w')"], "part of Python or of the runtime"),
    ("subprocess:run", [["touch", "{marker}"]], "part of Python or of the runtime"),
    ("shutil:copyfile", ["/etc/hostname", "{marker}"], "part of Python or of the runtime"),
    ("pathlib:Path.touch", ["{marker}"], "part of Python or of the runtime"),
    ("boinc_pymw._atomic:write_atomic", ["{marker}", "x"], "private name"),
    ("boinc_pymw.checkpoint:checkpoint", [1], "part of Python or of the runtime"),
    ("pymw_runtime_tasks:_write_marker", ["{marker}"], "private name"),
    ("pymw_runtime_tasks:os.system", ["touch {marker}"], "not an entry point"),
    ("pymw_runtime_tasks:Widget", [], "not an entry point"),
    ("pymw_runtime_tasks:add.__globals__", [], "private name"),
    ("outside_mod:run", ["{marker}"], "not an entry point"),
    ("pymw_runtime_tasks:no_such_function", [], "not an entry point"),
    ("os.path:join; touch x", [], "must look like"),
])
def test_hostile_references_are_refused_and_nothing_runs(tmp_path, reference, args, reason):
    marker = tmp_path / "called.marker"
    outside = _hostile_module(tmp_path)
    filled = [json.loads(json.dumps(a).replace("{marker}", str(marker))) for a in args]
    filled = [a.format(marker=str(marker)) if isinstance(a, str) else a for a in filled]
    (tmp_path / "input.json").write_text(json.dumps({"function": reference, "args": filled}))
    proc = _worker(tmp_path, HERE / "app_code", env_extra={"PYTHONPATH": str(outside)})
    assert proc.returncode == 1, proc.stderr
    assert "boinc_pymw.worker: error:" in proc.stderr and reason in proc.stderr, proc.stderr
    assert not marker.exists()
    assert not (tmp_path / "imported.marker").exists()
    assert not (tmp_path / "output.json").exists()


def test_a_module_outside_the_code_is_never_imported_even_if_named_like_an_entry(tmp_path):
    """The code ships tasks.py; a module 'tasks' earlier on sys.path must not be the one used."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "tasks.py").write_text("def go():\n    return 'app code'\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "other.py").write_text(f"open({str(tmp_path / 'm')!r}, 'w')\ndef go():\n    pass\n")
    write_job(tmp_path / "input.json", "other:go")
    proc = _worker(tmp_path, code, env_extra={"PYTHONPATH": str(outside)})
    assert proc.returncode == 1 and "not an entry point" in proc.stderr
    assert not (tmp_path / "m").exists()
    write_job(tmp_path / "input.json", "tasks:go")
    proc = _worker(tmp_path, code, env_extra={"PYTHONPATH": str(outside)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "output.json").read_text()) == {"ok": True, "value": "app code"}


def test_code_shipping_a_stdlib_name_cannot_hijack_it(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "json.py").write_text("def dumps(x):\n    return 'hijacked'\n")
    write_job(tmp_path / "input.json", "json:dumps", 1)
    proc = _worker(tmp_path, code)
    assert proc.returncode == 1 and "part of Python or of the runtime" in proc.stderr


def test_an_imported_name_in_app_code_is_not_callable(tmp_path):
    """`from os import system` in a shipped module: the name is the stdlib's, refused."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "tasks.py").write_text("from os import system\n")
    zipped = tmp_path / "code.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(code / "tasks.py", "tasks.py")
        zf.writestr(MANIFEST_NAME, json.dumps({"format": 1, "modules": ["tasks"],
                                               "entry_points": ["tasks:system"]}))
    marker = tmp_path / "marker"
    write_job(tmp_path / "input.json", "tasks:system", f"touch {marker}")
    proc = _worker(tmp_path, zipped)
    assert proc.returncode == 1 and "comes from posix" in proc.stderr, proc.stderr
    assert not marker.exists()


def test_a_manifest_limits_the_entry_points(tmp_path):
    zipped = tmp_path / "code.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(HERE / "app_code" / "pymw_runtime_tasks.py", "pymw_runtime_tasks.py")
        zf.writestr(MANIFEST_NAME, json.dumps({"format": 1, "modules": ["pymw_runtime_tasks"],
                                               "entry_points": ["pymw_runtime_tasks:add"]}))
    write_job(tmp_path / "input.json", "pymw_runtime_tasks:add", 1, 2)
    proc = _worker(tmp_path, zipped)
    assert proc.returncode == 0, proc.stderr
    write_job(tmp_path / "input.json", "pymw_runtime_tasks:fail", "x")
    proc = _worker(tmp_path, zipped)
    assert proc.returncode == 1
    assert "not an entry point" in proc.stderr and "manifest" in proc.stderr


def test_no_code_means_nothing_can_be_called(tmp_path):
    write_job(tmp_path / "input.json", "json:dumps", 1)
    proc = _worker(tmp_path, None)
    assert proc.returncode == 1 and "refused" in proc.stderr


def test_trusted_job_calls_any_importable_function_outside_a_client(tmp_path):
    """HTCondor's own pool: the user submits their own jobs."""
    write_job(tmp_path / "input.json", "json:dumps", [1])
    proc = _worker(tmp_path, None, "--trusted-job")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "output.json").read_text()) == {"ok": True, "value": "[1]"}


def test_default_entry_points_are_public_top_level_defs():
    source = (b"import os\nfrom os import system\nx = 1\nclass C:\n    def m(self): pass\n"
              b"def f():\n    def inner(): pass\nasync def a(): pass\ndef _p(): pass\n"
              b"if True:\n    def hidden(): pass\n")
    assert default_entry_points({"pkg.mod": source, "pkg._impl": b"def g(): pass\n",
                                 "json": b"def dumps(): pass\n"}) == ["pkg.mod:f"]


@pytest.mark.parametrize("reference", ["os:system", "a:_b", "_a:b", "a.__init__:b", "a:b.__c__",
                                       "nocolon", "a:", ":b", "a b:c", 3])
def test_split_reference_refuses(reference):
    points = EntryPoints(["a", "os"], ["os:system", "a:_b"], declared=True)
    with pytest.raises(EntryPointRefused):
        points.check(reference)
    if reference in ("a:_b", "_a:b", "nocolon", "a:", ":b", 3):
        with pytest.raises(EntryPointRefused):
            split_reference(reference)


# -- through the launcher and the portable interpreter, in a client-style slot ------------------
def _slot_run(tmp_path, runtime, launcher, app_code, job: dict, extra_files=None, argv=()):
    from .slot_layout import MAIN_PROGRAM, PROJECT, make_slot

    root = tmp_path / "client"
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(job))
    files = {"python_runtime.zip": ("boinc_pymw_runtime_x.zip", runtime.archive),
             "app_code.zip": ("pymw_app_code_1.0.zip", app_code),
             "input.json": ("wu_input", job_path), **(extra_files or {})}
    slot = make_slot(root, files, {"output.json": "wu_0_output"})
    main = root / "projects" / PROJECT / MAIN_PROGRAM
    main.write_bytes(Path(launcher).read_bytes())
    main.chmod(0o755)
    with open(slot / "stderr.txt", "ab") as stderr:
        proc = subprocess.run([f"../../projects/{PROJECT}/{MAIN_PROGRAM}", *argv], cwd=slot,
                              stdout=subprocess.DEVNULL, stderr=stderr, timeout=120)
    output = root / "projects" / PROJECT / "wu_0_output"
    return proc.returncode, (slot / "stderr.txt").read_text(), output


@pytest.mark.parametrize("reference, argv, extra, reason", [
    ("os:system", (), False, "part of Python or of the runtime"),
    ("builtins:exec", (), False, "part of Python or of the runtime"),
    ("pymw_runtime_tasks:_write_marker", (), False, "private name"),
    ("evil:run", (), False, "not an entry point"),
    # a workunit's own files and command line cannot bring code or lift the check
    ("evil:run", ("--code", "evil.zip"), True, "not a file of the app version"),
    ("json:dumps", ("--trusted-job",), False, "refused under a BOINC client"),
])
def test_slot_refuses_hostile_workunits(tmp_path, linux_runtime, linux_launcher, app_code_zip,
                                        reference, argv, extra, reason):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("evil.py", f"open({str(marker)!r}, 'w')\ndef run():\n    pass\n")
    args = {"os:system": [f"touch {marker}"], "builtins:exec": [f"open({str(marker)!r}, 'w')"],
            "pymw_runtime_tasks:_write_marker": [str(marker)]}.get(reference, [])
    extra_files = {"evil.zip": ("wu_evil.zip", evil)} if extra else None
    status, stderr, output = _slot_run(tmp_path, linux_runtime, linux_launcher, app_code_zip,
                                       {"function": reference, "args": args}, extra_files, argv)
    assert status == 1, stderr
    assert "boinc_pymw.worker: error:" in stderr and reason in stderr, stderr
    assert not marker.exists() and not output.exists()


def test_slot_runs_an_entry_point(tmp_path, linux_runtime, linux_launcher, app_code_zip):
    status, stderr, output = _slot_run(tmp_path, linux_runtime, linux_launcher, app_code_zip,
                                       {"function": "pymw_runtime_tasks:add", "args": [2, 3]})
    assert status == 0, stderr
    assert json.loads(output.read_text()) == {"ok": True, "value": 5}


def test_the_local_mode_refuses_to_ship_a_standard_library_task():
    """-i boinc-local builds its app code from the tasks' modules: a stdlib function
    (master.map(math.sqrt, ...)) would be refused on every volunteer, so it is refused
    at submit, with a hint."""
    from boinc_pymw.backends.boinc._local_app import code_roots_of
    from boinc_pymw.errors import BoincPymwError

    for module in ("math", "json.decoder", "os"):
        with pytest.raises(BoincPymwError, match="standard library.*wrap the call"):
            code_roots_of([module])
