"""install-app --plan-class: update_versions' PLATFORM__CLASS layout, app_version.plan_class,
plan_class_spec.xml entries (merged, never changing the admin's), and the Linux
runtime's glibc floor as a host requirement (os_regex, matched here with the
C library's own POSIX regexec, as BOINC's scheduler does)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from pathlib import Path

import pytest

from boinc_pymw.boinc import app_install, plan_class
from boinc_pymw.boinc.testing import add_app, add_platform

from install_helpers import make_runtime

LINUX = "x86_64-pc-linux-gnu"
WINDOWS = "windows_x86_64"


# -- the os_regex, judged by POSIX regcomp/regexec (REG_EXTENDED | REG_NOSUB) --------------------
class PosixRegex:
    def __init__(self, pattern: str):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self.buf = ctypes.create_string_buffer(256)          # sizeof(regex_t) is 64 on glibc
        assert self.libc.regcomp(self.buf, pattern.encode(), 1 | 8) == 0, pattern

    def matches(self, text: str) -> bool:
        return self.libc.regexec(self.buf, text.encode(), 0, None, 0) == 0


OS_VERSIONS = {   # what 7.x clients report (client/hostinfo_unix.cpp), and a Windows one
    "[6.1.0-18-amd64|libc 2.36 (Debian GLIBC 2.36-9+deb12u4)]": True,            # Debian 12
    "22.04 [5.15.0-91-generic|libc 2.35 (Ubuntu GLIBC 2.35-0ubuntu3)]": False,   # Ubuntu 22.04
    "21.3 [5.15.0-91-generic|libc 2.35 (Ubuntu GLIBC 2.35-0ubuntu3.6)]": False,  # Mint 21
    "24.04 [6.8.0-31-generic|libc 2.39 (Ubuntu GLIBC 2.39-0ubuntu8)]": True,     # Ubuntu 24.04
    "9.3 [5.14.0-362.el9.x86_64|libc 2.34 (GNU libc)]": False,                    # RHEL/Alma 9
    "8.9 [4.18.0-513.el8.x86_64|libc 2.28 (GNU libc)]": False,                    # RHEL/Rocky 8
    "40 [6.8.5-301.fc40.x86_64|libc 2.39 (GNU libc)]": True,                      # Fedora 40
    "[6.9.1-arch1-1|libc 2.40 (GNU libc)]": True,
    "[7.0.0|libc 2.100 (GNU libc)]": True,
    "[7.0.0|libc 3.0 (GNU libc)]": True,
    "[6.1.0|libc 2.3 (GNU libc)]": False,
    "[6.1.0|libc 2.4 (GNU libc)]": False,
    "4.9.0-8-amd64": False,                                      # no libc reported: refused
    "Professional x64 Edition, (10.00.19045.00)": True,          # Windows: never names a libc
}


def test_glibc_floor_admits_exactly_the_hosts_that_can_run_the_runtime():
    regex = plan_class.glibc_os_regex("2.36")
    assert len(regex) <= 255                                    # BOINC parses it into 256 bytes
    posix = PosixRegex(regex)
    for os_version, admitted in OS_VERSIONS.items():
        assert posix.matches(os_version) is admitted, os_version


@pytest.mark.parametrize("floor", ["2.17", "2.28", "2.31", "2.35", "2.36", "2.39", "2.40", "3.0"])
def test_glibc_floor_regex_for_any_floor(floor):
    posix = PosixRegex(plan_class.glibc_os_regex(floor))
    fmaj, fmin = map(int, floor.split("."))
    for major in (1, 2, 3, 10):
        for minor in range(0, 120):
            text = f"[6.1.0|libc {major}.{minor} (GNU libc)]"
            assert posix.matches(text) is ((major, minor) >= (fmaj, fmin)), (floor, text)


# -- installing under a plan class -------------------------------------------------------------
@pytest.fixture
def glibc_runtime(tmp_path):
    path = make_runtime(tmp_path / "rt236")
    manifest = json.loads((path / "runtime.json").read_text())
    manifest["minimum_glibc"] = "2.36"
    (path / "runtime.json").write_text(json.dumps(manifest))
    return path


def _install(project, launchers, runtime, platforms=(LINUX,), **kwargs):
    return app_install.install_app(project, "squares", "1.0", list(platforms),
                                   interpreter=runtime, unsigned=True,
                                   launchers={p: launchers[p] for p in platforms}, **kwargs)


def _spec(project) -> Path:
    return Path(project.path) / "plan_class_spec.xml"


def _entries(project) -> dict:
    return plan_class.SpecFile.read(project.path).entries


def test_a_linux_runtime_carries_its_glibc_floor_by_default(boinc_project, launchers,
                                                            glibc_runtime):
    report = _install(boinc_project, launchers, glibc_runtime)
    [av] = boinc_project.db.query("SELECT * FROM app_version")
    assert av["plan_class"] == "glibc2_36"
    version_dir = Path(boinc_project.path) / "apps" / "squares" / "1.0"
    assert [p.name for p in version_dir.iterdir()] == [f"{LINUX}__glibc2_36"]
    assert (version_dir / f"{LINUX}__glibc2_36" / "version.xml").is_file()
    entry = _entries(boinc_project)["glibc2_36"]
    assert entry["os_regex"] == plan_class.glibc_os_regex("2.36")
    assert ("plan_class_spec.xml glibc2_36", "added") in report.rows
    before = _spec(boinc_project).read_bytes()
    again = _install(boinc_project, launchers, glibc_runtime)     # the same inputs: no change
    assert not again.changed and _spec(boinc_project).read_bytes() == before


def test_no_glibc_floor_keeps_the_plain_layout(boinc_project, launchers, glibc_runtime):
    _install(boinc_project, launchers, glibc_runtime, glibc_floor=False)
    [av] = boinc_project.db.query("SELECT plan_class FROM app_version")
    assert av["plan_class"] == ""
    assert (Path(boinc_project.path) / "apps" / "squares" / "1.0" / LINUX).is_dir()
    assert not _spec(boinc_project).exists()


def test_mt_for_linux_and_windows_shares_one_entry(boinc_project, launchers, glibc_runtime,
                                                    tmp_path):
    runtimes = tmp_path / "runtimes"
    runtimes.mkdir()
    (runtimes / LINUX).symlink_to(glibc_runtime)
    make_runtime(runtimes / WINDOWS, WINDOWS)
    _install(boinc_project, launchers, runtimes, platforms=(LINUX, WINDOWS), plan_class="mt")
    rows = boinc_project.db.query("SELECT plan_class FROM app_version ORDER BY id")
    assert [r["plan_class"] for r in rows] == ["mt", "mt"]
    version_dir = Path(boinc_project.path) / "apps" / "squares" / "1.0"
    assert sorted(p.name for p in version_dir.iterdir()) == sorted([f"{LINUX}__mt", f"{WINDOWS}__mt"])
    entries = _entries(boinc_project)
    assert list(entries) == ["mt"]
    assert entries["mt"]["max_threads"] == str(plan_class.MT_MAX_THREADS)
    posix = PosixRegex(entries["mt"]["os_regex"])
    assert posix.matches("Professional x64 Edition, (10.00.19045.00)")
    assert not posix.matches("22.04 [5.15.0-91-generic|libc 2.35 (Ubuntu GLIBC 2.35-0ubuntu3)]")


def test_nvidia_gpu_entry(boinc_project, launchers, runtime):
    _install(boinc_project, launchers, runtime, plan_class="nvidia_gpu")
    entry = _entries(boinc_project)["nvidia_gpu"]
    assert entry["gpu_type"] == "nvidia" and entry["ngpus"] == "1"
    assert "os_regex" not in entry                 # this runtime records no glibc floor


ADMIN_SPEC = """<?xml version="1.0"?>
<!-- the admin's own classes -->
<plan_classes>
  <plan_class>
    <name>mt</name>
    <min_ncpus>4</min_ncpus>
    <max_threads>8</max_threads>
  </plan_class>
  <plan_class> <name>sse4</name> <cpu_feature>sse4_1</cpu_feature> </plan_class>
</plan_classes>
"""


def test_the_admins_entries_are_never_changed(boinc_project, launchers, glibc_runtime):
    _spec(boinc_project).write_text(ADMIN_SPEC)
    report = _install(boinc_project, launchers, glibc_runtime, plan_class="mt")
    text = _spec(boinc_project).read_text()
    assert text == ADMIN_SPEC                      # mt is theirs: nothing added
    outcome = dict(report.rows)["plan_class_spec.xml mt"]
    assert outcome.startswith("kept (the admin's entry") and "os_regex" in outcome
    # a class of ours is added after theirs, their text untouched
    app_install.install_app(boinc_project, "squares", "2.0", [LINUX], interpreter=glibc_runtime,
                            unsigned=True, launchers={LINUX: launchers[LINUX]})
    text = _spec(boinc_project).read_text()
    assert text.startswith(ADMIN_SPEC[:ADMIN_SPEC.index("</plan_classes>")])
    assert list(_entries(boinc_project)) == ["mt", "sse4", "glibc2_36"]
    # the admin's class works for versions too, as it stands
    app_install.install_app(boinc_project, "squares", "3.0", [LINUX], interpreter=glibc_runtime,
                            unsigned=True, launchers={LINUX: launchers[LINUX]}, plan_class="sse4")
    assert (Path(boinc_project.path) / "apps" / "squares" / "3.0" / f"{LINUX}__sse4").is_dir()


def test_an_unknown_class_without_an_entry_is_refused(boinc_project, launchers, runtime):
    with pytest.raises(app_install.InstallError, match="no entry"):
        _install(boinc_project, launchers, runtime, plan_class="avx512")
    assert not _spec(boinc_project).exists()
    assert boinc_project.db.query("SELECT id FROM app_version") == []
    assert not (Path(boinc_project.path) / "apps" / "squares").exists()


def test_bad_class_names_are_refused(boinc_project, launchers, runtime):
    for bad in ("a b", "mt__x", "x" * 65, ""):
        with pytest.raises(app_install.InstallError):
            _install(boinc_project, launchers, runtime, plan_class=bad)


def test_creating_the_spec_file_would_hide_builtin_classes_of_other_versions(
        boinc_project, launchers, glibc_runtime):
    app = add_app(boinc_project, "old")
    platform = add_platform(boinc_project, LINUX)
    boinc_project.db.insert("app_version", {
        "create_time": 0, "appid": app, "version_num": 100, "platformid": platform,
        "xml_doc": "", "plan_class": "cuda", "beta": 0, "min_core_version": 0,
        "max_core_version": 0, "deprecated": 0})
    with pytest.raises(app_install.InstallError, match="cuda"):
        _install(boinc_project, launchers, glibc_runtime)
    assert not _spec(boinc_project).exists()


def test_our_entry_with_another_floor_is_not_silently_changed(boinc_project, launchers,
                                                              glibc_runtime, tmp_path):
    _install(boinc_project, launchers, glibc_runtime, plan_class="mt")
    newer = make_runtime(tmp_path / "rt238")
    manifest = json.loads((newer / "runtime.json").read_text())
    manifest["minimum_glibc"] = "2.38"
    (newer / "runtime.json").write_text(json.dumps(manifest))
    before = _spec(boinc_project).read_bytes()
    with pytest.raises(app_install.InstallError, match="another glibc floor"):
        app_install.install_app(boinc_project, "squares", "2.0", [LINUX], interpreter=newer,
                                unsigned=True, launchers={LINUX: launchers[LINUX]},
                                plan_class="mt")
    assert _spec(boinc_project).read_bytes() == before


def test_local_host_usage_follows_the_spec(tmp_path, monkeypatch):
    (tmp_path / "plan_class_spec.xml").write_text(
        "<plan_classes>" + plan_class.known_entry("mt", None).xml()
        + "<plan_class><name>two</name><avg_ncpus>2</avg_ncpus></plan_class>"
        + plan_class.known_entry("glibc99_0", None).xml()
        + plan_class.known_entry("nvidia_gpu", None).xml() + "</plan_classes>")
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert plan_class.local_host_usage(str(tmp_path), "mt").avg_ncpus == 6
    assert plan_class.local_host_usage(str(tmp_path), "two").avg_ncpus == 2
    assert plan_class.local_host_usage(str(tmp_path), "").avg_ncpus == 1
    with pytest.raises(plan_class.PlanClassError, match="does not match"):
        plan_class.local_host_usage(str(tmp_path), "glibc99_0")
    monkeypatch.setattr(plan_class, "nvidia_devices", lambda: [])
    with pytest.raises(plan_class.PlanClassError, match="NVIDIA GPU"):
        plan_class.local_host_usage(str(tmp_path), "nvidia_gpu")
    monkeypatch.setattr(plan_class, "nvidia_devices", lambda: [1, 0])
    usage = plan_class.local_host_usage(str(tmp_path), "nvidia_gpu")
    assert (usage.gpu_type, usage.gpu_device_num) == ("NVIDIA", 1)
