"""The Windows runtime with win_amd64 numpy, packed by install-app's code, under wine.

The launcher unpacks python_packages.zip once next to the runtime and passes
the folder to the worker; the task sees the packed numpy (DLLs and all).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

from launcher_test_support import run_launcher

from boinc_pymw.interpreter_build.launcher_build import RUNTIME_ARCHIVE_NAME

# numpy 2.x's win_amd64 wheels call ucrtbase's crealf at import, which Debian 12's wine
# does not implement ("Unimplemented function ucrtbase.dll.crealf"); Windows has it.
# 1.26.4 imports under wine, and it differs from the test venv's numpy as well.
PACKED_NUMPY = "1.26.4"
TASKS = Path(__file__).resolve().parents[1] / "runtime" / "app_code" / "pymw_numpy_tasks.py"


def _windows_numpy(out_dir: Path):
    from boinc_pymw.boinc.requirements import resolve_packages

    cache = Path(os.environ.get("BOINC_PYMW_TEST_WHEELS")
                 or Path.home() / ".cache" / "boinc_pymw" / "test-wheels")
    out_dir.mkdir(parents=True, exist_ok=True)
    requirements = out_dir / "requirements.txt"
    requirements.write_text(f"numpy=={PACKED_NUMPY}\n")
    sets, _, _ = resolve_packages(["windows_x86_64"], requirements, [], cache, out_dir)
    return sets["windows_x86_64"]


def test_numpy_task_under_wine(boinc_slot, windows_launcher, windows_runtime, wine_env, tmp_path):
    archive, _ = windows_runtime
    packages = _windows_numpy(tmp_path / "numpy")
    assert any(w.filename.endswith("win_amd64.whl") for w in packages.wheels)
    exe = boinc_slot.add_main_program(windows_launcher, "boinc_pymw_launcher_1.0_windows_x86_64.exe")
    boinc_slot.add_app_file(RUNTIME_ARCHIVE_NAME, "boinc_pymw_runtime_1.0_windows_x86_64.zip", archive)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.write(TASKS, TASKS.name)
    boinc_slot.add_app_file("app_code.zip", "numpy_app_code_1.0.zip", code.getvalue())
    boinc_slot.add_app_file("python_packages.zip", packages.archive.name, packages.archive)
    boinc_slot.add("input.json", "wu_np_input",
                   json.dumps({"function": "pymw_numpy_tasks:numpy_facts", "args": [10]}).encode())
    output = boinc_slot.link("output.json", "wu_np_r0_output")
    boinc_slot.write_init_data(wu_name="wu_np", result_name="wu_np_r0", slot=0)

    done = run_launcher(exe, boinc_slot, env=wine_env, runner=(wine_env["WINE"],))
    stderr = (boinc_slot.slot_dir / "stderr.txt")
    assert done.returncode == 0, stderr.read_text(errors="replace") if stderr.exists() else done.stderr
    assert json.loads(output.read_text()) == {"ok": True, "value": {
        "version": PACKED_NUMPY, "from_packages": True, "host_site_packages": [],
        "sum": 45.0, "det": 5.0}}
    unpacked = [p for p in boinc_slot.project_dir.iterdir()
                if p.name.startswith(packages.archive.name + ".unpacked-")]
    assert len(unpacked) == 1 and (unpacked[0] / "numpy" / "__init__.py").is_file()
