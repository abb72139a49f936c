"""install-app under a strict umask: the web server's user still reads every
file it serves, and the app directories are BOINC's 0771; key files stay private."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from boinc_pymw.boinc import app_install, signing
from boinc_pymw.boinc.testing import make_project, unique_db_name

LINUX = "x86_64-pc-linux-gnu"
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to act as another user")


def read_as_nobody(path) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "cat", str(path)], capture_output=True, check=False)


@needs_root
def test_web_server_user_reads_what_install_app_staged_under_umask_077(mariadb, launchers,
                                                                       runtime, task_code):
    root = tempfile.mkdtemp(prefix="boinc_pymw_perm_", dir="/tmp")
    os.chmod(root, 0o711)
    old = os.umask(0o077)
    try:
        project = make_project(os.path.join(root, "proj"), unique_db_name())
        try:
            signing.generate_keys(project.key_dir)
            report = app_install.install_app(project, "squares", "1.0", [LINUX], code=[task_code],
                                             interpreter=runtime, launchers={LINUX: launchers[LINUX]})
        finally:
            project.drop()
        assert report.app_version_ids
        download = Path(project.download_dir)
        served = [p for p in download.iterdir() if p.is_file()]
        assert len(served) == 3                     # launcher, runtime zip, code zip
        for path in served:
            done = read_as_nobody(path)
            assert done.returncode == 0, done.stderr
            assert done.stdout == path.read_bytes()
        app_dir = Path(project.path) / "apps" / "squares" / "1.0"
        [platform_dir] = [p for p in app_dir.iterdir()]
        for directory in (Path(project.path) / "apps", app_dir.parent, app_dir, platform_dir):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o771, directory
        assert read_as_nobody(platform_dir / "version.xml").returncode == 0
        # the private keys stay private
        key_dir = Path(project.key_dir)
        assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
        assert read_as_nobody(key_dir / "code_sign_private").returncode != 0
    finally:
        os.umask(old)
        shutil.rmtree(root, ignore_errors=True)


def test_the_launcher_cache_under_apps_is_made_0771(tmp_path):
    old = os.umask(0o077)
    try:
        target = app_install.cached_launcher(tmp_path, LINUX)
    finally:
        os.umask(old)
    assert target.is_file()
    for directory in (tmp_path / "apps", target.parent.parent, target.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o771, directory
