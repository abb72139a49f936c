"""install-app's checks of the signing key, and key directories made private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from boinc_pymw.boinc import app_install, signing
from boinc_pymw.cli import main as cli_main

LINUX = "x86_64-pc-linux-gnu"


def _install(project, launchers, runtime, **kwargs):
    return app_install.install_app(project, "squares", "1.0", [LINUX], interpreter=runtime,
                                   launchers={LINUX: launchers[LINUX]}, **kwargs)


def _nothing_installed(project):
    assert project.db.query("SELECT id FROM app_version") == []
    assert not (Path(project.path) / "apps" / "squares").exists()
    assert not [p for p in Path(project.download_dir).iterdir()]


def test_a_key_that_does_not_match_code_sign_public_is_refused(signed_project, launchers,
                                                               runtime, tmp_path):
    other = tmp_path / "other_keys"
    signing.generate_keys(other)
    with pytest.raises(app_install.InstallError) as err:
        _install(signed_project, launchers, runtime, sign_with=other / "code_sign_private")
    message = str(err.value)
    assert "does not match" in message and "code_sign_public" in message
    assert str(Path(signed_project.key_dir) / "code_sign_public") in message
    _nothing_installed(signed_project)


def test_a_key_cannot_be_checked_without_the_projects_public_key(boinc_project, launchers,
                                                                 runtime, tmp_path):
    offline = tmp_path / "offline"
    signing.generate_keys(offline)
    with pytest.raises(app_install.InstallError, match="code_sign_public"):
        _install(boinc_project, launchers, runtime, sign_with=offline / "code_sign_private")
    _nothing_installed(boinc_project)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_private_key_others_can_read_is_refused(signed_project, launchers, runtime, mode):
    key = Path(signed_project.key_dir) / "code_sign_private"
    os.chmod(key, mode)
    with pytest.raises(app_install.InstallError) as err:
        _install(signed_project, launchers, runtime)
    assert str(key) in str(err.value) and f"{mode:04o}" in str(err.value)
    assert "chmod 600" in str(err.value)
    _nothing_installed(signed_project)


def test_the_command_line_says_why_and_exits_non_zero(signed_project, launchers, runtime,
                                                      capsys):
    os.chmod(Path(signed_project.key_dir) / "code_sign_private", 0o644)
    code = cli_main(["install-app", "--project", signed_project.path, "--app", "squares",
                     "--version", "1.0", "--interpreter", str(runtime),
                     "--launcher", f"{LINUX}={launchers[LINUX]}"])
    assert code != 0
    assert "readable by" in capsys.readouterr().err


def test_keys_generate_makes_a_private_directory_whatever_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        assert cli_main(["keys", "generate", str(tmp_path / "new" / "keys")]) == 0
    finally:
        os.umask(old)
    for directory in (tmp_path / "new" / "keys",):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("code_sign_private", "upload_private"):
        assert stat.S_IMODE((tmp_path / "new" / "keys" / name).stat().st_mode) == 0o600


def test_install_refuses_a_result_template_with_a_repeated_open_name(signed_project, launchers,
                                                                     runtime):
    from boinc_pymw.templates import render_output_template

    text = render_output_template(["output.json", "log.txt"]).replace(
        "<open_name>log.txt</open_name>", "<open_name>output.json</open_name>")
    with pytest.raises(app_install.InstallError, match="open_name 'output.json'"):
        _install(signed_project, launchers, runtime, result_template=text)
    _nothing_installed(signed_project)
    assert not (Path(signed_project.path) / "templates" / "squares_out").exists()
