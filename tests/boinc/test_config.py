"""config.xml parsing and project discovery."""

import os

import pytest

from boinc_pymw.boinc import ConfigError, Project, ProjectConfig
from boinc_pymw.boinc.testing import write_config_xml

SAMPLE = """<?xml version="1.0"?>
<boinc>
  <config>
    <db_name>proj_db</db_name>
    <db_host>db.example.org:3307</db_host>
    <db_user>boincadm</db_user>
    <db_passwd>secret</db_passwd>
    <download_url>http://example.org/proj/download</download_url>
    <download_dir>download</download_dir>
    <upload_url>http://example.org/proj_cgi/file_upload_handler</upload_url>
    <upload_dir>/srv/proj/upload</upload_dir>
    <uldl_dir_fanout>1024</uldl_dir_fanout>
    <key_dir>keys</key_dir>
    <cache_md5_info/>
    <dont_generate_upload_certificates>0</dont_generate_upload_certificates>
    <delete_delay_hours>24</delete_delay_hours>
    <custom_thing>42</custom_thing>
  </config>
  <daemons>
    <daemon><cmd>feeder -d 3</cmd></daemon>
    <daemon><cmd>assimilator.py --app a</cmd><output>assim_a.log</output>
            <disabled>1</disabled><host>otherhost</host></daemon>
  </daemons>
  <tasks>
    <task><cmd>antique_file_deleter -d 2</cmd><period>24 hours</period><output>x.out</output></task>
    <task><cmd>db_dump</cmd><period>5 min</period><disabled/></task>
  </tasks>
</boinc>
"""


def _project_dir(tmp_path, text=SAMPLE):
    (tmp_path / "cgi-bin").mkdir()
    (tmp_path / "config.xml").write_text(text)
    return tmp_path


def test_typed_values(tmp_path):
    config = ProjectConfig.read(str(_project_dir(tmp_path) / "config.xml"))
    assert (config.db_name, config.db_host, config.db_user, config.db_passwd) == (
        "proj_db", "db.example.org:3307", "boincadm", "secret")
    assert config.download_dir == str(tmp_path / "download")  # relative -> project dir
    assert config.upload_dir == "/srv/proj/upload"
    assert config.key_dir == str(tmp_path / "keys")
    assert config.uldl_dir_fanout == 1024
    assert config.cache_md5_info is True
    assert config.dont_generate_upload_certificates is False
    assert config.ignore_upload_certificates is False
    assert config.delete_delay_hours == 24.0
    assert config.get("custom_thing") == "42"


def test_daemons_and_tasks(tmp_path):
    config = ProjectConfig.read(str(_project_dir(tmp_path) / "config.xml"))
    feeder, assim = config.daemons
    assert feeder.cmd == "feeder -d 3" and not feeder.disabled and feeder.program == "feeder"
    assert assim.disabled and assim.output == "assim_a.log" and assim.host == "otherhost"
    deleter, dump = config.tasks
    assert deleter.period_seconds == 86400 and deleter.output == "x.out"
    assert dump.period_seconds == 300 and dump.disabled


def test_database_from_config_splits_port(tmp_path):
    from boinc_pymw.boinc import Database

    db = Database.from_config(ProjectConfig.read(str(_project_dir(tmp_path) / "config.xml")))
    assert (db.name, db.host, db.port, db.user) == ("proj_db", "db.example.org", 3307, "boincadm")


def test_missing_config_names_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config\.xml: no such file"):
        ProjectConfig.read(str(tmp_path / "config.xml"))


@pytest.mark.parametrize("text, problem", [
    ("<boinc><config><db_name>x</config></boinc>", "malformed XML"),
    ("<project><config/></project>", "expected <boinc>"),
    ("<boinc><daemons/></boinc>", "no <config>"),
    ("<boinc><config><uldl_dir_fanout>many</uldl_dir_fanout></config></boinc>", "must be a number"),
    ("<boinc><config/><tasks><task><cmd>x</cmd><period>often</period></task></tasks></boinc>",
     "period"),
    ("<boinc><config/><daemons><daemon><output>x</output></daemon></daemons></boinc>", "no <cmd>"),
])
def test_malformed_config_names_file_and_problem(tmp_path, text, problem):
    path = _project_dir(tmp_path, text) / "config.xml"
    with pytest.raises(ConfigError) as info:
        ProjectConfig.read(str(path)).uldl_dir_fanout
    assert str(path) in str(info.value) and problem in str(info.value)


def test_project_search_order(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    env_proj = _project_dir(tmp_path / "a")
    cwd_proj = tmp_path / "b"
    (cwd_proj / "sub").mkdir(parents=True)
    _project_dir(cwd_proj)
    monkeypatch.setenv("BOINC_PROJECT_DIR", str(env_proj))
    monkeypatch.chdir(cwd_proj / "sub")
    assert Project().path == str(env_proj)              # $BOINC_PROJECT_DIR first
    monkeypatch.delenv("BOINC_PROJECT_DIR")
    assert Project().path == str(cwd_proj)              # then . (no), then ..
    monkeypatch.chdir(cwd_proj)
    assert Project().path == str(cwd_proj)


def test_project_needs_cgi_bin(tmp_path, monkeypatch):
    (tmp_path / "config.xml").write_text(SAMPLE)        # no cgi-bin/: not a project
    monkeypatch.delenv("BOINC_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no BOINC project found"):
        Project()


def test_write_config_roundtrip(tmp_path):
    write_config_xml(str(tmp_path), {"db_name": "d", "cache_md5_info": True,
                                     "ignore_upload_certificates": False, "uldl_dir_fanout": 7},
                     daemons=["feeder -d 3"], tasks=[{"cmd": "x", "period": "2 hours"}])
    config = ProjectConfig.read(os.path.join(tmp_path, "config.xml"))
    assert config.cache_md5_info and not config.ignore_upload_certificates
    assert config.uldl_dir_fanout == 7
    assert [d.cmd for d in config.daemons] == ["feeder -d 3"]
    assert config.tasks[0].period_seconds == 7200
