"""``boinc_pymw daemon add|remove|list`` edits <daemons> and nothing else."""

from __future__ import annotations

import os
import subprocess

import pytest

from boinc_pymw.boinc.config import ProjectConfig
from boinc_pymw.cli import main

ORIGINAL = """<?xml version="1.0" encoding="utf-8"?>
<!-- my project: hand-edited, keep the comments -->
<boinc>
  <config>
    <db_name>x</db_name>
    <upload_dir>/srv/p/upload</upload_dir>   <!-- NFS -->
    <uldl_dir_fanout>1024</uldl_dir_fanout>
  </config>
  <daemons>
    <daemon>
      <cmd>feeder -d 3</cmd>
    </daemon>
    <daemon>
      <cmd>transitioner -d 3</cmd>
    </daemon>
  </daemons>
  <tasks>
    <task>
      <cmd>db_dump</cmd>
      <period>24 hours</period>
    </task>
  </tasks>
</boinc>
"""


@pytest.fixture
def project_dir(tmp_path):
    (tmp_path / "cgi-bin").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "config.xml").write_text(ORIGINAL)
    return tmp_path


def test_add_list_remove_round_trip(project_dir, capsys):
    p = str(project_dir)
    assert main(["daemon", "--project", p, "add", "bitwise_validator", "--app", "a1"]) == 0
    assert main(["daemon", "--project", p, "add", "bitwise_validator", "--app", "a2",
                 "--mod", "2", "0"]) == 0
    assert main(["daemon", "--project", p, "add", "my_assimilator.py", "-app", "a1"]) == 0
    config = ProjectConfig.read(os.path.join(p, "config.xml"))
    cmds = [d.cmd for d in config.daemons]
    assert cmds == ["feeder -d 3", "transitioner -d 3", "pymw_bitwise_validator --app a1",
                    "pymw_bitwise_validator --app a2 --mod 2 0", "my_assimilator.py -app a1"]
    outputs = [d.output for d in config.daemons[2:]]
    locks = [d.lock_file for d in config.daemons[2:]]
    assert len(set(outputs)) == 3 and len(set(locks)) == 3
    assert config.values["upload_dir"] == "/srv/p/upload"
    assert [t.cmd for t in config.tasks] == ["db_dump"]
    text = (project_dir / "config.xml").read_text()
    assert "<!-- my project: hand-edited, keep the comments -->" in text
    assert "<!-- NFS -->" in text
    # the launcher runs the ready daemon with this interpreter
    launcher = project_dir / "bin" / "pymw_bitwise_validator"
    assert os.access(launcher, os.X_OK)
    out = subprocess.run([str(launcher), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--is_gzip" in out.stdout and "--app" in out.stdout
    capsys.readouterr()
    assert main(["daemon", "--project", p, "list"]) == 0
    listed = capsys.readouterr().out
    assert "pymw_bitwise_validator --app a2 --mod 2 0" in listed
    # duplicates are refused; remove brings the file back byte for byte
    assert main(["daemon", "--project", p, "add", "bitwise_validator", "--app", "a1"]) == 1
    for cmd in (["bitwise_validator", "--app", "a1"],
                ["pymw_bitwise_validator", "--app", "a2", "--mod", "2", "0"],
                ["my_assimilator.py", "-app", "a1"]):
        assert main(["daemon", "--project", p, "remove", *cmd]) == 0
    assert (project_dir / "config.xml").read_text() == ORIGINAL
    assert main(["daemon", "--project", p, "remove", "nothing"]) == 1


def test_add_creates_daemons_section_when_missing(tmp_path):
    (tmp_path / "cgi-bin").mkdir()
    (tmp_path / "config.xml").write_text("<boinc>\n  <config>\n    <db_name>x</db_name>\n"
                                         "  </config>\n</boinc>\n")
    assert main(["daemon", "--project", str(tmp_path), "add", "v.py", "--app", "z"]) == 0
    config = ProjectConfig.read(str(tmp_path / "config.xml"))
    assert [(d.cmd, d.output, d.lock_file) for d in config.daemons] == [
        ("v.py --app z", "v.py_z.log", "v.py_z.lock")]
    assert config.values["db_name"] == "x"


def test_malformed_config_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "cgi-bin").mkdir()
    (tmp_path / "config.xml").write_text("<boinc><config>")
    assert main(["daemon", "--project", str(tmp_path), "list"]) == 1
    assert "config.xml" in capsys.readouterr().err


def test_quarantine_lists_and_releases(project_dir, capsys):
    from boinc_pymw.boinc.quarantine import Quarantine, quarantine_path

    q = Quarantine(quarantine_path(str(project_dir), "myapp", "assimilator"), "assimilator",
                   "myapp", limit=2)
    for _ in range(2):
        q.record_failure({"id": 17, "name": "myapp_17"}, KeyError("bug"))
    q.record_failure({"id": 18, "name": "myapp_18"}, KeyError("bug"))
    assert main(["daemon", "--project", str(project_dir), "quarantine"]) == 0
    out = capsys.readouterr().out
    assert "myapp assimilator: WU#17 myapp_17 set aside after 2 failures" in out
    assert "myapp_18" not in out                  # one failure: not set aside yet
    assert main(["daemon", "--project", str(project_dir), "quarantine",
                 "--release", "myapp_17"]) == 0
    assert "released myapp assimilator: WU#17" in capsys.readouterr().out
    q.reload()
    assert q.ids() == [] and 17 not in q.failures
    assert main(["daemon", "--project", str(project_dir), "quarantine",
                 "--release", "nosuchwu"]) != 0
    assert "not set aside" in capsys.readouterr().err
