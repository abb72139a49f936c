"""install-app against a real project (MariaDB), judged by BOINC's own code and rules."""

from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from boinc_pymw.boinc import app_install, signing
from boinc_pymw.cli import main as cli_main

from install_helpers import make_runtime

LINUX = "x86_64-pc-linux-gnu"
WINDOWS = "windows_x86_64"


def install(project, launchers, *args, platforms=(LINUX,)):
    argv = ["install-app", "--project", project.path]
    for platform in platforms:
        argv += ["--platform", platform, "--launcher", f"{platform}={launchers[platform]}"]
    return cli_main(argv + list(args))


def rows(project, table):
    return project.db.query(f"SELECT * FROM {table} ORDER BY id")


def tree(root: Path) -> dict:
    """Relative path -> (md5, mode, mtime) of every file under root."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): (hashlib.md5(p.read_bytes()).hexdigest(),
                                             p.stat().st_mode, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def snapshot(project) -> dict:
    root = Path(project.path)
    reread = root / "reread_db"
    return {
        "app": rows(project, "app"), "platform": rows(project, "platform"),
        "app_version": rows(project, "app_version"),
        "download": tree(Path(project.download_dir)), "apps": tree(root / "apps"),
        "templates": tree(root / "templates"),
        "reread_db": reread.stat().st_mtime_ns if reread.exists() else None,
    }


def xml_doc_text(row) -> str:
    doc = row["xml_doc"]
    return doc.decode() if isinstance(doc, bytes) else doc



# -- the BOINC client's layout: the project's files copied, slot 0 soft-linking to them -----
def soft_link(slot: Path, open_name: str, physical: str) -> None:
    """A soft link file as the client writes it: slot/<open_name> names the project file."""
    (slot / open_name).write_text(
        f"<soft_link>../../projects/localhost_proj/{physical}</soft_link>\n")


def lay_out_as_client(project, refs, tmp_path):
    """Copy the app version's files (``refs``) into a client-style project directory under
    ``tmp_path``, the main program executable, the others soft-linked from slot 0.
    Returns (client project directory, slot directory, main program)."""
    client_project = tmp_path / "client" / "projects" / "localhost_proj"
    slot = tmp_path / "client" / "slots" / "0"
    client_project.mkdir(parents=True)
    slot.mkdir(parents=True)
    main_program = None
    for ref in refs:
        copied = client_project / ref["file_name"]
        copied.write_bytes((Path(project.download_dir) / ref["file_name"]).read_bytes())
        if ref["main_program"]:
            copied.chmod(0o755)
            main_program = copied
        else:
            soft_link(slot, ref["open_name"], ref["file_name"])
    return client_project, slot, main_program

# -- what update_versions would write, derived independently from the app directory ----------
def update_versions_expectation(project, app_dir: Path, app_name: str, version_num: int):
    """file_info and app_version fields per BOINC's update_versions rules (boinc-facts §6)."""
    version = etree.parse(str(app_dir / "version.xml")).getroot()
    listed = [f.findtext("physical_name").strip() for f in version.findall("file")]
    present = sorted(p.name for p in app_dir.iterdir()
                     if p.name != "version.xml" and not p.name.endswith(".sig")
                     and not p.name.startswith("."))
    assert sorted(listed) == present, "every file of the directory is listed in version.xml"
    file_infos, file_refs = [], []
    for f in version.findall("file"):
        name = f.findtext("physical_name").strip()
        path = app_dir / name
        main = f.find("main_program") is not None
        file_infos.append({
            "name": name,
            "url": f"{project.config.download_url}/{name}",
            "executable": main or bool(path.stat().st_mode & 0o100),
            "file_signature": (app_dir / f"{name}.sig").read_text(),
            "nbytes": path.stat().st_size,
        })
        file_refs.append({
            "file_name": name,
            "open_name": (f.findtext("logical_name") or "").strip() or None,
            "copy_file": f.find("copy_file") is not None,
            "main_program": main,
        })
    app_version = {"app_name": app_name, "version_num": version_num,
                   "api_version": version.findtext("api_version")}
    return file_infos, app_version, file_refs


def parse_xml_doc(text: str):
    root = etree.fromstring(f"<xml_doc>{text}</xml_doc>")
    file_infos = [{
        "name": fi.findtext("name"),
        "url": fi.findtext("url"),
        "executable": fi.find("executable") is not None,
        "file_signature": fi.findtext("file_signature").lstrip("\n").replace("\n    ", "\n")
        if fi.find("file_signature") is not None else None,
        "nbytes": int(fi.findtext("nbytes")),
    } for fi in root.findall("file_info")]
    av = root.find("app_version")
    app_version = {"app_name": av.findtext("app_name"), "version_num": int(av.findtext("version_num")),
                   "api_version": av.findtext("api_version")}
    file_refs = [{
        "file_name": fr.findtext("file_name"),
        "open_name": fr.findtext("open_name"),
        "copy_file": fr.find("copy_file") is not None,
        "main_program": fr.find("main_program") is not None,
    } for fr in av.findall("file_ref")]
    assert [c.tag for c in root] == ["file_info"] * len(file_infos) + ["app_version"]
    return file_infos, app_version, file_refs


# -- the happy path ------------------------------------------------------------------------------
def test_install_registers_stages_signs_and_reports(signed_project, launchers, runtime, task_code, capsys):
    project = signed_project
    assert install(project, launchers, "--app", "squares", "--version", "1.02",
                   "--code", str(task_code), "--interpreter", str(runtime)) == 0
    table = capsys.readouterr().out
    assert "app squares" in table and "created" in table and "reread_db" in table

    [app] = rows(project, "app")
    [platform] = rows(project, "platform")
    [av] = rows(project, "app_version")
    assert (app["name"], platform["name"]) == ("squares", LINUX)
    assert (av["appid"], av["platformid"], av["version_num"], av["plan_class"], av["beta"]) == \
        (app["id"], platform["id"], 102, "", 0)

    app_dir = Path(project.path) / "apps" / "squares" / "1.02" / LINUX
    names = {f["name"] for f in parse_xml_doc(xml_doc_text(av))[0]}
    assert names == {"squares_1.02_x86_64-pc-linux-gnu", "squares_1.02_code.zip",
                     next(n for n in names if n.startswith("boinc_pymw_runtime_"))}
    for name in names:   # staged at the top of download_dir, same bytes as the app directory
        assert (Path(project.download_dir) / name).read_bytes() == (app_dir / name).read_bytes()
        assert signing.verify_file(app_dir / name, (app_dir / f"{name}.sig").read_text(),
                                   Path(project.key_dir) / "code_sign_public")
    assert (Path(project.path) / "reread_db").exists()
    assert (Path(project.path) / "templates" / "squares_in").read_text().count("input.json") == 1
    assert "output.json" in (Path(project.path) / "templates" / "squares_out").read_text()

    with zipfile.ZipFile(app_dir / "squares_1.02_code.zip") as zf:
        assert zf.namelist() == ["boinc_pymw_entry_points.json", "squares/__init__.py",
                                 "squares/helpers.py"]


def test_xml_doc_is_what_update_versions_writes_field_by_field(signed_project, launchers, runtime,
                                                                 task_code):
    project = signed_project
    assert install(project, launchers, "--app", "squares", "--version", "3.7",
                   "--code", str(task_code), "--interpreter", str(runtime)) == 0
    [av] = rows(project, "app_version")
    app_dir = Path(project.path) / "apps" / "squares" / "3.7" / LINUX
    expected = update_versions_expectation(project, app_dir, "squares", 307)
    ours = parse_xml_doc(xml_doc_text(av))
    for want, got in zip(expected[0], ours[0]):          # file_info, field by field
        for key in want:
            assert got[key] == want[key], (want["name"], key)
    assert ours[1] == expected[1] == {"app_name": "squares", "version_num": 307, "api_version": "7.20.5"}
    assert ours[2] == expected[2]
    assert [r["main_program"] for r in ours[2]].count(True) == 1


def test_boinc_parses_the_xml_doc_and_accepts_every_signature(signed_project, launchers, runtime,
                                                               task_code, tmp_path, boinc_crypt):
    project = signed_project
    assert install(project, launchers, "--app", "squares", "--version", "1.0",
                   "--code", str(task_code), "--interpreter", str(runtime)) == 0
    [av] = rows(project, "app_version")
    doc = tmp_path / "xml_doc.xml"
    doc.write_text(xml_doc_text(av))
    lines = boinc_crypt.parse_xml_doc(doc, Path(project.key_dir) / "code_sign_public",
                                      project.download_dir)
    assert not [line for line in lines if "unexpected" in line]
    signatures = [line for line in lines if " signature " in line]
    assert len(signatures) == 3 and all(line.endswith(" valid") for line in signatures)
    assert all(line.endswith(" 1") for line in lines if " size_matches " in line)
    assert "app_version version_num 100" in lines
    assert "file_ref 0 main_program 1" in lines
    assert "file_ref 1 open_name python_runtime.zip" in lines
    assert "file_ref 2 open_name app_code.zip" in lines

    # a file changed after signing is refused by BOINC's check
    runtime_name = next(line.split()[1] for line in lines if "python_runtime" not in line
                        and line.startswith("file_info boinc_pymw_runtime_"))
    staged = Path(project.download_dir) / runtime_name
    staged.write_bytes(staged.read_bytes() + b"tampered")
    lines = boinc_crypt.parse_xml_doc(doc, Path(project.key_dir) / "code_sign_public",
                                      project.download_dir)
    assert f"file_info {runtime_name} signature invalid" in lines


def test_the_staged_app_version_runs_through_the_launcher(signed_project, launchers, runtime, tmp_path):
    """Lay the files out as the BOINC client does (project dir + slot soft links) and start it."""
    project = signed_project
    assert install(project, launchers, "--app", "squares", "--version", "1.0",
                   "--interpreter", str(runtime)) == 0
    [av] = rows(project, "app_version")
    _, _, refs = parse_xml_doc(xml_doc_text(av))
    _, slot, main_program = lay_out_as_client(project, refs, tmp_path)
    done = subprocess.run([str(main_program), "--some-arg"], cwd=slot, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "runtime ran with: -m boinc_pymw.worker --some-arg"


# -- idempotence and versions ------------------------------------------------------------------
def test_running_twice_changes_nothing(signed_project, launchers, runtime, task_code, capsys):
    project = signed_project
    args = ("--app", "squares", "--version", "1.0", "--code", str(task_code),
            "--interpreter", str(runtime))
    assert install(project, launchers, *args) == 0
    before = snapshot(project)
    capsys.readouterr()
    assert install(project, launchers, *args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert snapshot(project) == before


def test_a_new_version_keeps_the_old_one(signed_project, launchers, runtime, task_code):
    project = signed_project
    assert install(project, launchers, "--app", "squares", "--version", "1.0",
                   "--code", str(task_code), "--interpreter", str(runtime)) == 0
    old = snapshot(project)
    (task_code / "helpers.py").write_text("ANSWER = 43\n")
    assert install(project, launchers, "--app", "squares", "--version", "1.1",
                   "--code", str(task_code), "--interpreter", str(runtime)) == 0
    new = snapshot(project)
    assert [r["version_num"] for r in new["app_version"]] == [100, 101]
    assert new["app_version"][0] == old["app_version"][0]
    assert len(new["app"]) == len(new["platform"]) == 1
    for name, state in old["download"].items():      # old files untouched
        assert new["download"][name] == state
    runtime_files = [n for n in new["download"] if n.startswith("boinc_pymw_runtime_")]
    assert len(runtime_files) == 1, "the same runtime is shared, not staged twice"
    assert "squares_1.1_code.zip" in new["download"]


def test_changed_code_under_an_installed_version_is_refused(signed_project, launchers, runtime,
                                                           task_code, capsys):
    project = signed_project
    args = ("--app", "squares", "--version", "1.0", "--code", str(task_code),
            "--interpreter", str(runtime))
    assert install(project, launchers, *args) == 0
    before = snapshot(project)
    (task_code / "helpers.py").write_text("ANSWER = 43\n")
    assert install(project, launchers, *args) == 1
    assert "already installed" in capsys.readouterr().err
    assert snapshot(project) == before


def test_two_platforms_in_one_run(signed_project, launchers, tmp_path, task_code):
    project = signed_project
    runtimes = tmp_path / "runtimes"
    make_runtime(runtimes / LINUX, LINUX)
    make_runtime(runtimes / WINDOWS, WINDOWS)
    (runtimes / WINDOWS / "python.exe").write_bytes(b"MZ stand-in")
    assert install(project, launchers, "--app", "squares", "--version", "2.0", "--code",
                   str(task_code), "--interpreter", str(runtimes), platforms=(LINUX, WINDOWS)) == 0
    versions = {r["platformid"]: r for r in rows(project, "app_version")}
    platforms = {r["name"]: r["id"] for r in rows(project, "platform")}
    assert set(platforms) == {LINUX, WINDOWS}
    windows_doc = parse_xml_doc(xml_doc_text(versions[platforms[WINDOWS]]))
    [main] = [r["file_name"] for r in windows_doc[2] if r["main_program"]]
    assert main == "squares_2.0_windows_x86_64.exe"
    assert (Path(project.download_dir) / main).read_bytes()[:2] == b"MZ"
    linux_doc = parse_xml_doc(xml_doc_text(versions[platforms[LINUX]]))
    runtime_names = {r["file_name"] for doc in (linux_doc, windows_doc) for r in doc[2]
                     if r["open_name"] == "python_runtime.zip"}
    assert len(runtime_names) == 2


def test_unsigned_install_for_test_projects(boinc_project, launchers, runtime):
    project = boinc_project   # no keys at all
    assert install(project, launchers, "--app", "squares", "--version", "1.0", "--unsigned",
                   "--interpreter", str(runtime)) == 0
    [av] = rows(project, "app_version")
    assert "<file_signature>" not in xml_doc_text(av)
    app_dir = Path(project.path) / "apps" / "squares" / "1.0" / LINUX
    assert not list(app_dir.glob("*.sig"))


def test_sign_with_another_key(boinc_project, launchers, runtime, tmp_path, boinc_crypt):
    project = boinc_project
    keys = tmp_path / "offline_keys"
    signing.generate_keys(keys)
    # the project holds only the public half, as a project signing offline does
    (Path(project.key_dir) / "code_sign_public").write_bytes((keys / "code_sign_public").read_bytes())
    assert install(project, launchers, "--app", "squares", "--version", "1.0",
                   "--sign-with", str(keys / "code_sign_private"), "--interpreter", str(runtime)) == 0
    app_dir = Path(project.path) / "apps" / "squares" / "1.0" / LINUX
    for sig in app_dir.glob("*.sig"):
        assert boinc_crypt.accepts(app_dir / sig.stem, sig, keys / "code_sign_public")


def test_existing_templates_are_kept(signed_project, launchers, runtime):
    project = signed_project
    mine = Path(project.path) / "templates" / "squares_in"
    mine.write_text("<input_template><!-- mine --></input_template>\n")
    assert install(project, launchers, "--app", "squares", "--version", "1.0",
                   "--interpreter", str(runtime)) == 0
    assert "mine" in mine.read_text()
    assert (Path(project.path) / "templates" / "squares_out").exists()


# -- errors: a clear message and nothing half-installed ---------------------------------------
def assert_nothing_installed(project, before):
    after = snapshot(project)
    for key in ("app", "platform", "app_version", "download", "templates", "reread_db"):
        assert after[key] == before[key], key
    assert not (Path(project.path) / "apps" / "squares").exists()
    assert not [n for n in os.listdir(Path(project.path) / "apps") if n.startswith(".install-")]


@pytest.mark.parametrize("case, message", [
    ("no keys", "keys generate"),
    ("missing interpreter", "missing interpreter"),
    ("interpreter without config", "boinc_pymw_runtime.cfg"),
    ("unknown platform", "unknown platform 'sparc-sun-solaris'"),
    ("interpreter for another platform", "built for x86_64-pc-linux-gnu, not windows_x86_64"),
    ("bad version", "expected X.Y"),
    ("missing code", "does not exist"),
])
def test_bad_input_is_refused_with_nothing_written(boinc_project, launchers, runtime, tmp_path,
                                                   capsys, case, message):
    project = boinc_project
    if case != "no keys":
        signing.generate_keys(project.key_dir)
    args = {"app": "squares", "version": "1.0", "interpreter": str(runtime), "platform": LINUX}
    extra = []
    if case == "missing interpreter":
        args["interpreter"] = str(tmp_path / "nowhere")
    elif case == "interpreter without config":
        (tmp_path / "empty").mkdir()
        args["interpreter"] = str(tmp_path / "empty")
    elif case == "unknown platform":
        args["platform"] = "sparc-sun-solaris"
    elif case == "interpreter for another platform":
        args["platform"] = WINDOWS
    elif case == "bad version":
        args["version"] = "1.2.3"
    elif case == "missing code":
        extra = ["--code", str(tmp_path / "no_such_module.py")]
    before = snapshot(project)
    argv = ["install-app", "--project", project.path, "--app", args["app"], "--version",
            args["version"], "--interpreter", args["interpreter"], "--platform", args["platform"],
            "--launcher", f"{args['platform']}={launchers.get(args['platform'], launchers[LINUX])}"
            ] + extra
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert "install-app: error:" in err and message in err
    assert_nothing_installed(project, before)


def test_no_project_is_a_clear_error(tmp_path, capsys):
    assert cli_main(["install-app", "--project", str(tmp_path), "--app", "a", "--version", "1.0"]) == 1
    assert "not a BOINC project directory" in capsys.readouterr().err


def test_database_down_is_a_clear_error_with_nothing_written(make_boinc_project, launchers, runtime,
                                                            capsys):
    project = make_boinc_project()
    signing.generate_keys(project.key_dir)
    before = {"download": tree(Path(project.download_dir)),
              "templates": tree(Path(project.path) / "templates")}
    config = Path(project.path) / "config.xml"
    config.write_text(config.read_text().replace("<db_host>127.0.0.1</db_host>",
                                                 "<db_host>127.0.0.1:1</db_host>"))
    assert install(project, launchers, "--app", "squares", "--version", "1.0",
                   "--interpreter", str(runtime)) == 1
    assert "cannot connect to database" in capsys.readouterr().err
    assert tree(Path(project.download_dir)) == before["download"]
    assert tree(Path(project.path) / "templates") == before["templates"]
    assert not (Path(project.path) / "apps" / "squares").exists()
    assert not (Path(project.path) / "reread_db").exists()


def test_a_download_dir_name_clash_is_refused_before_anything_changes(signed_project, launchers,
                                                                      runtime, task_code, capsys):
    project = signed_project
    clash = Path(project.download_dir) / "squares_1.0_code.zip"
    clash.write_bytes(b"somebody else's file")
    before = snapshot(project)
    assert install(project, launchers, "--app", "squares", "--version", "1.0",
                   "--code", str(task_code), "--interpreter", str(runtime)) == 1
    assert "immutable" in capsys.readouterr().err
    assert_nothing_installed(project, before)
    assert clash.read_bytes() == b"somebody else's file"


def test_a_database_failure_mid_install_rolls_back_and_removes_staged_files(signed_project, launchers,
                                                                            runtime, task_code,
                                                                            capsys):
    project = signed_project
    # files get their real names and the app and platform rows are inserted, then the
    # app_version insert fails inside the transaction: all of it must be undone
    project.db.execute("ALTER TABLE app_version ADD CONSTRAINT refuse CHECK (version_num < 0)")
    before = snapshot(project)
    assert install(project, launchers, "--app", "squares", "--version", "1.0",
                   "--code", str(task_code), "--interpreter", str(runtime)) == 1
    assert "database error" in capsys.readouterr().err
    assert_nothing_installed(project, before)


# -- pieces ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, number", [("1.0", 100), ("1.02", 102), ("1.5", 105), ("1.50", 150),
                                          ("12.34", 1234), ("0.1", 1)])
def test_version_numbers_follow_update_versions(text, number):
    assert app_install.parse_version(text) == number


@pytest.mark.parametrize("text", ["1", "1.100", "a.b", "1.2.3", "-1.0", ""])
def test_bad_version_numbers(text):
    with pytest.raises(app_install.InstallError):
        app_install.parse_version(text)


def test_code_zip_is_reproducible_and_keeps_package_names(tmp_path, task_code):
    module = tmp_path / "extra.py"
    module.write_text("X = 1\n")
    a = app_install.pack_code([task_code, module], tmp_path / "a.zip")
    os.utime(module, (1, 1))
    b = app_install.pack_code([task_code, module], tmp_path / "b.zip")
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as zf:
        assert zf.namelist() == ["boinc_pymw_entry_points.json", "extra.py",
                                 "squares/__init__.py", "squares/helpers.py"]


def test_code_name_collisions_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "same.py").write_text("")
    (tmp_path / "b" / "same.py").write_text("")
    with pytest.raises(app_install.InstallError, match="would both be"):
        app_install.pack_code([tmp_path / "a" / "same.py", tmp_path / "b" / "same.py"],
                              tmp_path / "c.zip")


def test_without_launcher_option_it_is_built_once_per_project_and_reused(signed_project, runtime):
    project = signed_project
    base = ["install-app", "--project", project.path, "--app", "squares", "--interpreter", str(runtime)]
    assert cli_main(base + ["--version", "1.0"]) == 0
    assert cli_main(base + ["--version", "1.1"]) == 0
    download = Path(project.download_dir)
    first = (download / "squares_1.0_x86_64-pc-linux-gnu").read_bytes()
    assert first[:4] == b"\x7fELF"
    assert (download / "squares_1.1_x86_64-pc-linux-gnu").read_bytes() == first
    assert cli_main(base + ["--version", "1.0"]) == 0     # still the same bytes: nothing to do
    assert len(rows(project, "app_version")) == 2


def test_a_task_runs_from_the_installed_files_as_the_client_lays_them_out(
        signed_project, launchers, portable_runtime, task_code, tmp_path):
    """Real runtime + worker: the slot sees input.json, output.json, python_runtime.zip and
    app_code.zip as soft links into the project directory, as the BOINC client makes them."""
    import json

    from boinc_pymw.worker import decode_output, encode_task

    project = signed_project
    assert install(project, launchers, "--app", "squares", "--version", "1.0", "--code",
                   str(task_code), "--interpreter", str(portable_runtime)) == 0
    [av] = rows(project, "app_version")
    _, _, refs = parse_xml_doc(xml_doc_text(av))
    client_project, slot, main_program = lay_out_as_client(project, refs, tmp_path)
    (client_project / "wu_1_input").write_text(json.dumps(encode_task("squares:square", [7])))
    soft_link(slot, "input.json", "wu_1_input")
    soft_link(slot, "output.json", "wu_1_0_r0")

    done = subprocess.run([f"../../projects/localhost_proj/{main_program.name}"], cwd=slot,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert decode_output(json.loads((client_project / "wu_1_0_r0").read_text())) == 49


def test_boinc_db_code_reads_the_rows_as_written(signed_project, launchers, tmp_path, task_code,
                                                 boinc_db_rows):
    """libsched's DB_APP / DB_PLATFORM / DB_APP_VERSION (what the feeder scans) see our rows."""
    project = signed_project
    runtimes = tmp_path / "runtimes"
    make_runtime(runtimes / LINUX, LINUX)
    make_runtime(runtimes / WINDOWS, WINDOWS)
    assert install(project, launchers, "--app", "squares", "--version", "1.02", "--code",
                   str(task_code), "--interpreter", str(runtimes), "--user-friendly-name",
                   "Squares of numbers", platforms=(LINUX, WINDOWS)) == 0
    theirs = boinc_db_rows(project.path)
    [app] = [r for r in theirs if r["table"] == "app"]
    assert (app["name"], app["user_friendly_name"], app["deprecated"], app["weight"]) == \
        ("squares", "Squares of numbers", "0", "1")
    platforms = {r["name"]: r["id"] for r in theirs if r["table"] == "platform"}
    assert set(platforms) == {LINUX, WINDOWS}
    versions = [r for r in theirs if r["table"] == "app_version"]
    ours = {str(r["id"]): r for r in rows(project, "app_version")}
    assert len(versions) == 2
    for av in versions:
        assert (av["appid"], av["version_num"], av["plan_class"], av["deprecated"], av["beta"]) == \
            (app["id"], "102", "", "0", "0")
        assert av["xml_doc"] == xml_doc_text(ours[av["id"]])
    assert {av["platformid"] for av in versions} == set(platforms.values())
