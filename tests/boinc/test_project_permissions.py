"""Files the toolkit puts into a project are usable by the web server's user,
whatever the umask of whoever ran the command (BOINC's boinc_mkdir: 0771 under
umask 0). Checked by reading them as another, unprivileged user (``nobody``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from boinc_pymw.boinc.project_files import DIR_MODE, make_project_dir
from boinc_pymw.boinc.testing import add_app, make_project, unique_db_name
from boinc_pymw.templates import InputFile, write_app_templates

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to act as another user")


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def read_as_nobody(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "cat", path], capture_output=True, check=False)


@pytest.fixture
def open_root(mariadb):
    """A directory others may pass through (pytest's tmp_path is 0700)."""
    root = tempfile.mkdtemp(prefix="boinc_pymw_perm_", dir="/tmp")
    os.chmod(root, 0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_make_project_dir_ignores_the_umask(tmp_path):
    with umask(0o077):
        created = make_project_dir(tmp_path / "a" / "b")
    assert created == [str(tmp_path / "a"), str(tmp_path / "a" / "b")]
    for d in created:
        assert stat.S_IMODE(os.stat(d).st_mode) == DIR_MODE


def test_repair_gives_others_passage_through_an_old_fanout_dir(tmp_path):
    old = tmp_path / "1f"
    old.mkdir(mode=0o750)
    os.chmod(old, 0o750)
    make_project_dir(old, repair=True)
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o751


@needs_root
def test_web_server_user_reads_input_files_staged_under_umask_077(open_root):
    with umask(0o077):
        project = make_project(os.path.join(open_root, "proj"), unique_db_name(),
                               uldl_dir_fanout=1024)
        try:
            add_app(project, "sq")
            write_app_templates(project, "sq", inputs=[InputFile("in")], outputs=["out"])
            project.create_work("sq", [("perm_in.dat", b"payload\n")], name="perm_1")
            staged = project.download_path("perm_in.dat")
            upload = project.upload_path("perm_out_0", create=True)
        finally:
            project.drop()
    assert os.path.dirname(staged) != project.download_dir     # a fan-out subdirectory
    done = read_as_nobody(staged)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"payload\n"
    assert read_as_nobody(staged + ".md5").returncode == 0
    for directory in (os.path.dirname(staged), os.path.dirname(upload)):
        assert stat.S_IMODE(os.stat(directory).st_mode) == DIR_MODE


@needs_root
def test_an_input_file_the_admin_put_in_the_hierarchy_is_made_readable(open_root):
    """Seen live: ``cp`` into ``dir_hier_path``'s place under umask 077 left a 0600
    input that Apache refused (403): create-work makes it readable (BOINC's files
    in download/ are public anyway)."""
    with umask(0o077):
        project = make_project(os.path.join(open_root, "proj"), unique_db_name(),
                               uldl_dir_fanout=1024)
        try:
            add_app(project, "sq")
            write_app_templates(project, "sq", inputs=[InputFile("in")], outputs=["out"])
            staged = project.download_path("by_hand.dat", create=True)
            with open(staged, "wb") as f:
                f.write(b"by hand\n")
            assert stat.S_IMODE(os.stat(staged).st_mode) == 0o600
            project.create_work("sq", ["by_hand.dat"], name="perm_2")
        finally:
            project.drop()
    done = read_as_nobody(staged)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"by hand\n"


def test_an_input_file_others_cannot_read_and_we_cannot_fix_is_refused(tmp_path, monkeypatch):
    from boinc_pymw.boinc import create_work as cw

    target = tmp_path / "f.dat"
    target.write_bytes(b"x")
    os.chmod(target, 0o600)

    def refuse(path, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(cw.os, "chmod", refuse)
    with pytest.raises(cw.CreateWorkError, match="web server cannot read"):
        cw.ensure_public(str(target), "f.dat")
