import re
import subprocess
import sys
import zipfile
from pathlib import Path

import boinc_pymw
from boinc_pymw.cli import build_parser, main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert boinc_pymw.__version__ in capsys.readouterr().out


def test_console_script_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "boinc_pymw", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: boinc_pymw" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_every_subcommand_has_one_line_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, action in sub.choices.items():
        assert action.description and "\n" not in action.description, name


def test_help_lists_each_subcommand_with_its_one_line_help():
    out = subprocess.run([sys.executable, "-m", "boinc_pymw", "--help"],
                         capture_output=True, text=True, check=True).stdout
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, action in sub.choices.items():
        assert re.search(rf"^\s+{re.escape(name)}\s", out, re.M), name
        assert " ".join(action.description.split()[:3]) in " ".join(out.split()), name


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "boinc_pymw"
    assert script.exists()
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"boinc_pymw {boinc_pymw.__version__}"


def test_unknown_subcommand_is_an_error():
    proc = subprocess.run([sys.executable, "-m", "boinc_pymw", "no-such-command"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_wheel_carries_the_package_and_its_runtime_data(tmp_path):
    """A wheel built from the repository holds every module and the data
    files the package reads at run time (templates, launcher sources, ...)."""
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("boinc_pymw-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {path.relative_to(root).as_posix() for path in (root / "boinc_pymw").rglob("*.py")}
    runtime_data = {"app_templates": (".j2", ".xml"), "config": (".xml", ".example"),
                    "launcher": (".cpp", ".hpp", ".h", ".cmake", "CMakeLists.txt")}
    for folder, endings in runtime_data.items():
        for path in (root / folder).iterdir():
            if path.is_file() and path.name.endswith(endings):
                expected.add(f"boinc_pymw/{folder}/{path.name}")
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
