"""install-app --requirements/--wheel: wheels only, per platform, packed, locked, signed.

Offline: small wheels made here, served from a find-links folder (PIP_NO_INDEX)
or a local HTTP server that breaks a download midway. numpy itself is tested
through the launcher in tests/runtime/test_packages.py.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import threading
import zipfile
from pathlib import Path

import pytest

from boinc_pymw.boinc import requirements as req
from boinc_pymw.boinc.requirements import RequirementsError
from boinc_pymw.cli import main as cli_main

LINUX = "x86_64-pc-linux-gnu"
WINDOWS = "windows_x86_64"


def make_wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any",
               requires=(), files=None) -> Path:
    """A minimal valid wheel, as pip reads one (METADATA, WHEEL, RECORD)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = dict(files or {f"{name}.py": f"VERSION = {version!r}\n"})
    files[f"{dist}/METADATA"] = ("Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version
                                 + "\n" + "".join(f"Requires-Dist: {r}\n" for r in requires))
    files[f"{dist}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: "
                              f"{'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n")
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


@pytest.fixture
def index(tmp_path, monkeypatch) -> Path:
    """A find-links folder and no index: pip sees only what a test puts there."""
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_RETRIES", "0")
    return links


def _requirements(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_resolve_pack_lock_and_reuse(tmp_path, index):
    make_wheel(index, "alpha", "1.0", requires=["beta>=2"])
    make_wheel(index, "beta", "2.0")
    make_wheel(index, "beta", "1.0")
    reqs = _requirements(tmp_path, "alpha")
    sets, lock, reused = req.resolve_packages([LINUX, WINDOWS], reqs, [], tmp_path / "cache",
                                              tmp_path / "out")
    assert not reused
    for platform in (LINUX, WINDOWS):
        assert [(w.name, w.version) for w in sets[platform].wheels] == [("alpha", "1.0"),
                                                                       ("beta", "2.0")]
        assert sets[platform].modules == ["alpha", "beta"]
        with zipfile.ZipFile(sets[platform].archive) as zf:
            names = zf.namelist()
        assert "alpha.py" in names and "beta-2.0.dist-info/METADATA" in names
        assert req.LISTING_NAME in names
    # the name carries the content's hash; the same set packs to the same name and bytes
    assert sets[LINUX].archive.name.startswith(f"boinc_pymw_packages_{LINUX}_")
    locked = lock["platforms"][LINUX]
    assert [e["name"] for e in locked] == ["alpha", "beta"]
    assert all(len(e["sha256"]) == 64 and e["size"] > 0 for e in locked)

    lock_path = tmp_path / "lock.json"
    req.write_lock(lock_path, lock)
    make_wheel(index, "beta", "3.0")          # newer upstream: the lock keeps 2.0
    again, lock2, reused = req.resolve_packages([LINUX], reqs, [], tmp_path / "cache",
                                                tmp_path / "out2", lock_path)
    assert reused and lock2["platforms"][LINUX] == locked
    assert again[LINUX].archive.read_bytes() == sets[LINUX].archive.read_bytes()
    assert again[LINUX].archive.name == sets[LINUX].archive.name
    # the lock is re-used even when the cache is gone: pip fetches by pinned hash
    import shutil

    shutil.rmtree(tmp_path / "cache")
    third, _, reused = req.resolve_packages([LINUX], reqs, [], tmp_path / "cache",
                                            tmp_path / "out3", lock_path)
    assert reused and third[LINUX].archive.read_bytes() == sets[LINUX].archive.read_bytes()
    # changed inputs: resolved anew
    make_wheel(index, "gamma", "1")
    fresh, _, reused = req.resolve_packages([LINUX], _requirements(tmp_path, "alpha", "gamma"), [],
                                            tmp_path / "cache", tmp_path / "out4", lock_path)
    assert not reused and [w.name for w in fresh[LINUX].wheels] == ["alpha", "beta", "gamma"]
    assert [w.version for w in fresh[LINUX].wheels][1] == "3.0"


def test_only_binary_wheels_an_sdist_only_package_is_named(tmp_path, index):
    (index / "sourceonly-1.0.tar.gz").write_bytes(b"not really")
    with pytest.raises(RequirementsError, match="no binary wheel of sourceonly.*sdist"):
        req.resolve_packages([LINUX], _requirements(tmp_path, "sourceonly"), [],
                             tmp_path / "cache", tmp_path / "out")


def test_no_wheel_for_one_platform(tmp_path, index):
    make_wheel(index, "winonly", "1.0", tag="cp311-cp311-win_amd64")
    sets, _, _ = req.resolve_packages([WINDOWS], _requirements(tmp_path, "winonly"), [],
                                      tmp_path / "cache", tmp_path / "out")
    assert [w.name for w in sets[WINDOWS].wheels] == ["winonly"]
    with pytest.raises(RequirementsError, match="no binary wheel of winonly"):
        req.resolve_packages([WINDOWS, LINUX], _requirements(tmp_path, "winonly"), [],
                             tmp_path / "cache", tmp_path / "out")


def test_conflicting_pins(tmp_path, index):
    make_wheel(index, "alpha", "1.0", requires=["beta==1.0"])
    make_wheel(index, "beta", "1.0")
    make_wheel(index, "beta", "2.0")
    with pytest.raises(RequirementsError, match="conflicting requirements"):
        req.resolve_packages([LINUX], _requirements(tmp_path, "alpha", "beta==2.0"), [],
                             tmp_path / "cache", tmp_path / "out")


@pytest.mark.parametrize("tag, message", [
    ("cp312-cp312-manylinux_2_17_x86_64", "runtime is CPython 3.11"),
    ("cp311-cp311-manylinux_2_39_x86_64", "not x86_64-pc-linux-gnu"),
    ("cp311-cp311-macosx_11_0_arm64", "not x86_64-pc-linux-gnu"),
    ("py2-none-any", "runtime is CPython 3.11"),
])
def test_a_local_wheel_for_another_python_or_platform(tmp_path, index, tag, message):
    wheel = make_wheel(tmp_path / "mine", "mine", "1.0", tag=tag)
    with pytest.raises(RequirementsError, match=message):
        req.resolve_packages([LINUX], None, [wheel], tmp_path / "cache", tmp_path / "out")


@pytest.mark.parametrize("tag", ["cp311-cp311-manylinux_2_17_x86_64", "cp38-abi3-manylinux2014_x86_64",
                                 "py3-none-any", "cp311-cp311-manylinux_2_36_x86_64"])
def test_wheel_tags_the_linux_runtime_takes(tmp_path, tag):
    assert req.check_wheel_file(Path(f"x-1.0-{tag}.whl"), LINUX) == ("x", "1.0")


def test_a_package_hiding_the_standard_library_is_refused(tmp_path, index):
    wheel = make_wheel(tmp_path / "mine", "shadow", "1.0", files={"json/__init__.py": "x = 1\n"})
    with pytest.raises(RequirementsError, match="hide the standard library"):
        req.resolve_packages([LINUX], None, [wheel], tmp_path / "cache", tmp_path / "out")


class _BreakingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a find-links page; the 'broken' wheel is cut off halfway through."""

    def do_GET(self):
        if "broken" in self.path:
            body = Path(self.directory, self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def test_a_download_failing_midway_leaves_nothing(tmp_path, monkeypatch, signed_project, launchers,
                                                  runtime, capsys):
    served = tmp_path / "served"
    good = make_wheel(served, "good", "1.0", requires=["broken"])
    broken = make_wheel(served, "broken", "1.0", files={"broken.py": "x = 1\n" * 5000})
    links = "".join(f'<a href="/{w.name}">{w.name}</a>\n' for w in (good, broken))
    (served / "index.html").write_text(f"<html><body>{links}</body></html>")
    handler = lambda *a, **k: _BreakingHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", f"http://127.0.0.1:{server.server_port}/index.html")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    project = signed_project
    before = sorted(p.name for p in Path(project.download_dir).iterdir())
    try:
        status = cli_main(["install-app", "--project", project.path, "--app", "numbers",
                           "--version", "1.0", "--interpreter", str(runtime),
                           "--launcher", f"{LINUX}={launchers[LINUX]}",
                           "--requirements", str(_requirements(tmp_path, "good"))])
    finally:
        server.shutdown()
    assert status != 0
    err = capsys.readouterr().err
    assert "resolving the packages for x86_64-pc-linux-gnu: pip download failed" in err, err
    assert sorted(p.name for p in Path(project.download_dir).iterdir()) == before
    assert project.db.query("SELECT id FROM app_version") == []
    apps = Path(project.path) / "apps"
    wheels = list((apps / req.WHEEL_CACHE).rglob("*")) if (apps / req.WHEEL_CACHE).exists() else []
    assert [p for p in wheels if p.is_file()] == []
    assert not (apps / "numbers").exists() and not (apps / req.LOCK_STORE).exists()


def test_install_app_packs_signs_locks_and_reuses(tmp_path, index, signed_project, launchers,
                                                  runtime, capsys):
    from boinc_pymw.boinc import signing

    make_wheel(index, "alpha", "1.0")
    code = tmp_path / "tasks.py"
    code.write_text("def run(x):\n    import alpha\n    return alpha.VERSION\n")
    reqs = _requirements(tmp_path, "alpha")
    base = ["install-app", "--project", signed_project.path, "--app", "numbers",
            "--interpreter", str(runtime), "--launcher", f"{LINUX}={launchers[LINUX]}",
            "--code", str(code), "--requirements", str(reqs), "--entry-point", "alpha:VERSION",
            "--entry-point", "tasks:run"]
    assert cli_main(base + ["--version", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "package alpha 1.0 (x86_64-pc-linux-gnu)" in out and "resolved anew" in out
    app_dir = Path(signed_project.path) / "apps" / "numbers" / "1.0" / LINUX
    [packages] = app_dir.glob("boinc_pymw_packages_*.zip")
    version_xml = (app_dir / "version.xml").read_text()
    assert "<logical_name>python_packages.zip</logical_name>" in version_xml
    assert signing.verify_file(packages, (app_dir / f"{packages.name}.sig").read_text(),
                               Path(signed_project.key_dir) / "code_sign_public")
    with zipfile.ZipFile(next(app_dir.glob("*_code.zip"))) as zf:
        lock = json.loads(zf.read(req.LOCK_NAME))
        manifest = json.loads(zf.read("boinc_pymw_entry_points.json"))
    assert [e["name"] for e in lock["platforms"][LINUX]] == ["alpha"]
    assert manifest["entry_points"] == ["alpha:VERSION", "tasks:run"]
    assert "alpha" in manifest["modules"]

    make_wheel(index, "alpha", "2.0")   # upstream moves on; the next version keeps the lock
    assert cli_main(base + ["--version", "1.1"]) == 0
    assert "re-used (same inputs)" in capsys.readouterr().out
    app_dir2 = app_dir.parent.parent / "1.1" / LINUX
    [packages2] = app_dir2.glob("boinc_pymw_packages_*.zip")
    assert packages2.name == packages.name     # same name: clients do not download it again
