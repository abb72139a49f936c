"""install-app writes the app's entry points into its signed code; the Master checks calls."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from boinc_pymw.boinc import app_install
from boinc_pymw.boinc.entry_points import (MANIFEST_NAME, EntryPointRefused, check_entry_point,
                                           entry_points_of)
from boinc_pymw.cli import main as cli_main

LINUX = "x86_64-pc-linux-gnu"


def _install(project, launchers, runtime, *args) -> int:
    return cli_main(["install-app", "--project", project.path, "--launcher",
                     f"{LINUX}={launchers[LINUX]}", "--interpreter", str(runtime),
                     "--app", "squares", *args])


def _manifest(project, version="1.0") -> dict:
    app_dir = Path(project.path) / "apps" / "squares" / version / LINUX
    [code] = app_dir.glob("*_code.zip")
    with zipfile.ZipFile(code) as zf:
        return json.loads(zf.read(MANIFEST_NAME))


def _code(tmp_path) -> Path:
    package = tmp_path / "code" / "squares"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import os\nfrom functools import partial\n\n"
        "def square(x):\n    return x * x\n\n"
        "def _helper(x):\n    return x\n\n"
        "cube = partial(pow, exp=3)\n")
    (package / "helpers.py").write_text("ANSWER = 42\n\ndef double(x):\n    return 2 * x\n")
    (package / "_private.py").write_text("def hidden():\n    pass\n")
    return package


def test_default_entry_points_are_the_public_functions(signed_project, launchers, runtime, tmp_path):
    assert _install(signed_project, launchers, runtime, "--version", "1.0",
                    "--code", str(_code(tmp_path))) == 0
    manifest = _manifest(signed_project)
    assert manifest == {"format": 1, "modules": ["squares"],
                        "entry_points": ["squares.helpers:double", "squares:square"]}
    points = entry_points_of(Path(signed_project.path) / "apps" / "squares" / "1.0" / LINUX)
    check_entry_point("squares:square", points)
    check_entry_point("squares.helpers:double", manifest)
    for bad in ("os:system", "builtins:exec", "squares:_helper", "squares._private:hidden",
                "squares:cube", "squares:os.system", "squares.helpers:ANSWER", "other:f"):
        with pytest.raises(EntryPointRefused):
            check_entry_point(bad, points)


def test_declared_entry_points_replace_the_default(signed_project, launchers, runtime, tmp_path):
    assert _install(signed_project, launchers, runtime, "--version", "1.0",
                    "--code", str(_code(tmp_path)), "--entry-point", "squares:cube",
                    "--entry-point", "squares:square") == 0
    assert _manifest(signed_project)["entry_points"] == ["squares:cube", "squares:square"]
    with pytest.raises(EntryPointRefused, match="not an entry point"):
        check_entry_point("squares.helpers:double", _manifest(signed_project))


@pytest.mark.parametrize("declared, message", [
    ("squares:_helper", "private name"),
    ("squares:nothing_here", "defines no 'nothing_here'"),
    ("os:system", "part of Python"),
    ("elsewhere:f", "neither in the code"),
    ("squares", "must look like"),
])
def test_bad_declared_entry_points_are_refused_with_nothing_written(
        signed_project, launchers, runtime, tmp_path, capsys, declared, message):
    before = sorted(p.name for p in Path(signed_project.download_dir).iterdir())
    assert _install(signed_project, launchers, runtime, "--version", "1.0",
                    "--code", str(_code(tmp_path)), "--entry-point", declared) != 0
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in Path(signed_project.download_dir).iterdir()) == before
    assert signed_project.db.query("SELECT id FROM app_version") == []


def test_code_with_a_standard_library_module_name_is_refused(tmp_path):
    (tmp_path / "json.py").write_text("def dumps(x):\n    return x\n")
    with pytest.raises(app_install.InstallError, match="standard library"):
        app_install.pack_code([tmp_path / "json.py"], tmp_path / "c.zip")


def test_a_user_file_named_like_the_manifest_is_refused(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / MANIFEST_NAME).write_text("{}")
    with pytest.raises(app_install.InstallError, match="writes into the code zip itself"):
        app_install.pack_code([tmp_path / "code"], tmp_path / "c.zip")


def test_entry_points_of_code_without_a_manifest_follows_the_same_rule(tmp_path):
    """Old app versions and hand-made zips: the worker reads the sources the same way."""
    code = tmp_path / "old.zip"
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("tasks.py", "def run():\n    pass\ndef _no():\n    pass\n")
    points = entry_points_of(code)
    assert points.entry_points == {"tasks:run"} and not points.declared
    with pytest.raises(EntryPointRefused):
        check_entry_point("tasks:_no", points)
