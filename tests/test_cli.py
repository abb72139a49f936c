import subprocess
import sys

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
