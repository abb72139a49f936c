"""The Windows launcher and the embeddable-CPython runtime, run under wine.

Wine maps a regular file given as a standard stream to a handle CPython
rejects, so every run here captures stdout and stderr through pipes.
"""

from __future__ import annotations

import io
import json
import os
import time
import shutil
import subprocess
import zipfile

from launcher_test_support import WINE_APP_DIR, run_launcher

from boinc_pymw.interpreter_build.launcher_build import (
    RUNTIME_ARCHIVE_NAME,
    pack_runtime_archive,
    write_runtime_config,
)
from boinc_pymw.interpreter_build.windows import CPYTHON_VERSION, EXCLUDED_FILES, INTERPRETER

LAUNCH_FAILED = 2
ECHO_ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"
TRICKY_ARGS = ["plain", "with space", 'quote"inside', 'two "quoted" words', "trailing\\",
               "trailing two\\\\", 'back\\"slash quote', "a\\\\\\\"b", "\\\\server\\share\\dir\\",
               "", " ", "tab\there", "ünïcødé 𝄞 ✓", "%PATH%", "a^b&c|d<e>f", "--launcher-not-an-option"]


def _install(slot, launcher, archive):
    """The app version: launcher, runtime and the wine test tasks as app_code.zip."""
    exe = slot.add_main_program(launcher, "boinc_pymw_launcher_1.0_windows_x86_64.exe")
    slot.add_app_file(RUNTIME_ARCHIVE_NAME, "boinc_pymw_runtime_1.0_windows_x86_64.zip", archive)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.write(WINE_APP_DIR / "wine_tasks.py", "wine_tasks.py")
    slot.add_app_file("app_code.zip", "wine_app_code_1.0.zip", code.getvalue())
    return exe


def _variant(windows_runtime, tmp_path, args):
    """The Windows runtime with another config: python.exe with ``args`` first."""
    _, runtime_dir = windows_runtime
    copy = tmp_path / "runtime-variant"
    shutil.copytree(runtime_dir, copy)
    write_runtime_config(copy, INTERPRETER, args)
    return pack_runtime_archive(copy, tmp_path / "variant.zip")


def _stderr_txt(slot) -> str:
    path = slot.slot_dir / "stderr.txt"
    return path.read_text(errors="replace") if path.exists() else "(no stderr.txt)"


def _wine(wine_env):
    return (wine_env["WINE"],)


def test_launcher_exe_needs_no_mingw_dlls(windows_launcher):
    dump = subprocess.run(["x86_64-w64-mingw32-objdump", "-p", str(windows_launcher)],
                          stdout=subprocess.PIPE, text=True, check=True).stdout
    dlls = {line.split(":", 1)[1].strip().lower() for line in dump.splitlines() if "DLL Name:" in line}
    assert "file format pei-x86-64" in dump
    assert dlls <= {"kernel32.dll", "msvcrt.dll"}, dlls


def test_runtime_is_the_pinned_embeddable_cpython(windows_runtime):
    archive, runtime_dir = windows_runtime
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"python.exe", "python311.dll", "python311.zip", "lib/boinc.py",
            "lib/boinc_pymw/worker/__main__.py", "boinc_pymw_runtime.cfg"} <= names
    assert not names & EXCLUDED_FILES
    assert (runtime_dir / "python311._pth").read_text().split("\n")[1:5] == ["python311.zip", ".", "lib", "app"]
    assert CPYTHON_VERSION.encode("utf-16-le") in (runtime_dir / "python311.dll").read_bytes()


def test_worker_in_a_boinc_slot_under_wine(boinc_slot, windows_launcher, windows_runtime, wine_env):
    archive, _ = windows_runtime
    exe = _install(boinc_slot, windows_launcher, archive)
    boinc_slot.add("input.json", "wu_wine_1_input",
                   json.dumps({"function": "wine_tasks:describe", "args": [100], "kwargs": {}}).encode())
    output = boinc_slot.link("output.json", "wu_wine_1_r0_output")
    boinc_slot.write_init_data(wu_name="wu_wine_1", result_name="wu_wine_1_r0", slot=0, checkpoint_period=60)

    done = run_launcher(exe, boinc_slot, env=wine_env, runner=_wine(wine_env))

    assert done.returncode == 0, _stderr_txt(boinc_slot)
    assert json.loads(output.read_text()) == {"ok": True, "value": {
        "platform": "win32", "standalone": False, "wu_name": "wu_wine_1", "boinc_api": "pure-python",
        "total": 5050}}
    assert (boinc_slot.slot_dir / "boinc_finish_called").read_text().strip() == "0"
    # The shipped bytecode was used: nothing was written into the unpacked runtime.
    (runtime,) = [p for p in boinc_slot.project_dir.iterdir() if ".unpacked-" in p.name]
    written = {p.relative_to(runtime).as_posix() for p in runtime.rglob("*") if p.is_file()}
    assert written == {n for n in zipfile.ZipFile(archive).namelist() if not n.endswith("/")}


def test_under_a_client_stderr_goes_to_the_slots_stderr_txt(boinc_slot, windows_launcher, windows_runtime,
                                                             wine_env):
    """BOINC's Windows client does not capture stderr; the launcher appends it to stderr.txt."""
    archive, _ = windows_runtime
    exe = boinc_slot.add_main_program(windows_launcher, "boinc_pymw_launcher_1.0_windows_x86_64.exe")
    boinc_slot.write_init_data(wu_name="wu_3")
    (boinc_slot.slot_dir / "stderr.txt").write_text("earlier episode\n")

    missing = run_launcher(exe, boinc_slot, env=wine_env, runner=_wine(wine_env))
    boinc_slot.add(RUNTIME_ARCHIVE_NAME, "boinc_pymw_runtime_1.0_windows_x86_64.zip", archive)
    boinc_slot.add("input.json", "wu_3_input", b'{"function": "wine_tasks:no_such_task", "args": []}')
    boinc_slot.link("output.json", "wu_3_r0_output")
    broken_job = run_launcher(exe, boinc_slot, env=wine_env, runner=_wine(wine_env))

    assert missing.returncode == LAUNCH_FAILED and broken_job.returncode == 1
    lines = _stderr_txt(boinc_slot).splitlines()
    assert lines[0] == "earlier episode"
    assert lines[1].startswith("boinc_pymw_launcher: error: required file 'python_runtime.zip' is missing")
    assert "wine_tasks:no_such_task is refused: the app version's code offers no entry points" in lines[2]


def test_app_code_zip_and_task_errors_under_wine(boinc_slot, windows_launcher, windows_runtime, wine_env, tmp_path):
    """The app's own code through the app_code.zip soft link; a task's exception is its answer."""
    archive, _ = windows_runtime
    exe = _install(boinc_slot, windows_launcher, archive)
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("my_app.py", "def divide(a, b):\n    return a / b\n")
    boinc_slot.add("app_code.zip", "my_app_1.0.zip", code)
    boinc_slot.add("input.json", "wu_2_input",
                   json.dumps({"function": "my_app:divide", "args": [1, 0], "kwargs": {}}).encode())
    output = boinc_slot.link("output.json", "wu_2_r0_output")

    done = run_launcher(exe, boinc_slot, env=wine_env, runner=_wine(wine_env))

    assert done.returncode == 0, done.stderr.decode(errors="replace")
    answer = json.loads(output.read_text())
    assert answer["ok"] is False and answer["error"]["type"] == "ZeroDivisionError"


def test_argument_quoting_round_trip_under_wine(boinc_slot, windows_launcher, windows_runtime, wine_env,
                                                tmp_path):
    exe = _install(boinc_slot, windows_launcher, _variant(windows_runtime, tmp_path, ["-c", ECHO_ARGV]))

    done = run_launcher(exe, boinc_slot, TRICKY_ARGS, env=wine_env, runner=_wine(wine_env))

    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert json.loads(done.stdout.decode().strip().splitlines()[-1]) == TRICKY_ARGS


def test_exit_status_propagates_under_wine(boinc_slot, windows_launcher, windows_runtime, wine_env, tmp_path):
    archive = _variant(windows_runtime, tmp_path, ["-c", "import sys; sys.exit(int(sys.argv[1]))"])
    exe = _install(boinc_slot, windows_launcher, archive)
    for status in (0, 5, 200):
        done = run_launcher(exe, boinc_slot, [str(status)], env=wine_env, runner=_wine(wine_env))
        assert done.returncode == status, done.stderr.decode(errors="replace")


def test_missing_runtime_is_a_clear_error_under_wine(boinc_slot, windows_launcher, wine_env):
    exe = boinc_slot.add_main_program(windows_launcher, "boinc_pymw_launcher_1.0_windows_x86_64.exe")

    done = run_launcher(exe, boinc_slot, env=wine_env, runner=_wine(wine_env))

    message = done.stderr.decode(errors="replace")
    assert done.returncode == LAUNCH_FAILED, message
    assert "boinc_pymw_launcher: error:" in message and RUNTIME_ARCHIVE_NAME in message


def test_boinc_module_speaks_the_shared_memory_protocol_under_wine(windows_runtime, wine_env, tmp_path):
    """Progress, suspend, resume and quit through a Windows named mapping, as the Windows client does."""
    _, runtime_dir = windows_runtime
    slot = tmp_path / "slot 7 ü"
    slot.mkdir()
    standin = WINE_APP_DIR / "client_standin.py"

    done = subprocess.run([wine_env["WINE"], str(runtime_dir / INTERPRETER), str(standin), str(slot)],
                          env=wine_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)

    assert done.returncode == 0, done.stderr.decode(errors="replace")
    seen = json.loads(done.stdout.decode().strip().splitlines()[-1])
    first, second = seen["running"]
    assert first < second  # progress reaches the client
    paused, still = seen["suspended"]
    assert paused == still  # no progress while suspended
    assert seen["resumed"] > paused
    assert seen["exit_status"] == 0, seen["stderr"]


def test_killed_task_resumes_from_its_checkpoint_under_wine(boinc_slot, windows_launcher, windows_runtime,
                                                           wine_env):
    """kill -9 of the launcher takes the interpreter with it (job object); the restart resumes."""
    archive, _ = windows_runtime
    exe = _install(boinc_slot, windows_launcher, archive)
    boinc_slot.add("input.json", "wu_4_input", json.dumps(
        {"function": "wine_tasks:count_with_checkpoints", "args": [40, 0.1], "kwargs": {}}).encode())
    output = boinc_slot.link("output.json", "wu_4_r0_output")
    boinc_slot.write_init_data(wu_name="wu_4", checkpoint_period="0.200000")
    checkpoint_file = boinc_slot.slot_dir / "pymw_checkpoint.json"
    command = [wine_env["WINE"], os.path.relpath(exe, boinc_slot.slot_dir)]

    first = subprocess.Popen(command, cwd=boinc_slot.slot_dir, env=wine_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _checkpointed_count(checkpoint_file) < 5:
        assert first.poll() is None and time.monotonic() < deadline, _stderr_txt(boinc_slot)
        time.sleep(0.1)
    first.kill()
    first.communicate()
    # The interpreter must be gone too: the checkpoint stops changing.
    last = _checkpointed_count(checkpoint_file)
    time.sleep(1.5)
    assert _checkpointed_count(checkpoint_file) == last < 40
    assert not output.exists()

    done = run_launcher(exe, boinc_slot, env=wine_env, runner=_wine(wine_env))

    assert done.returncode == 0, _stderr_txt(boinc_slot)
    answer = json.loads(output.read_text())
    assert answer == {"ok": True, "value": {"count": 40, "resumed_at": last}}


def _checkpointed_count(path) -> int:
    try:
        return json.loads(path.read_text())["state"][0]
    except (OSError, ValueError, KeyError):
        return 0
