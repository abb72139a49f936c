"""create-work: staging, md5 caching, rows, batches, and nothing half-done on errors.
(Row-for-row equality with libsched's create_work is in tests/oracle.)"""

import hashlib
import io
import os
import time

import pytest

from boinc_pymw.boinc import create_work as cw
from boinc_pymw.boinc.create_work import CreateWorkError, read_md5_cache
from boinc_pymw.boinc.testing import add_app
from boinc_pymw.cli import main as cli_main
from boinc_pymw.templates import InputFile, write_app_templates


@pytest.fixture
def project(boinc_project):
    add_app(boinc_project, "sq")
    write_app_templates(boinc_project, "sq", inputs=[InputFile("in", copy_file=True)],
                        outputs=["out"], min_quorum=1, target_nresults=1)
    return boinc_project


def _put(project, name, data: bytes):
    with open(os.path.join(project.download_dir, name), "wb") as f:
        f.write(data)


def _count(project, table="workunit"):
    return project.db.query_one(f"SELECT COUNT(*) AS n FROM {table}")["n"]


def test_one_workunit(project):
    _put(project, "in_1.dat", b"12345\n")
    before = int(time.time())
    wu_id = project.create_work("sq", ["in_1.dat"], name="sq_1", priority=4)
    row = project.db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))
    assert row["name"] == "sq_1" and row["priority"] == 4
    assert before <= row["transition_time"] <= int(time.time())   # transitioner picks it up
    assert (row["min_quorum"], row["target_nresults"]) == (1, 1)       # from the template
    assert row["result_template_file"] == os.path.join("templates", "sq_out")
    staged = project.download_path("in_1.dat")
    assert open(staged, "rb").read() == b"12345\n"
    md5 = hashlib.md5(b"12345\n").hexdigest()
    assert read_md5_cache(staged) == (md5, 6.0)
    assert open(staged + ".md5").read() == f"{md5} 6.000000000000000e+00\n"
    xml = row["xml_doc"].decode()
    assert f"<md5_cksum>{md5}</md5_cksum>" in xml and "<nbytes>6</nbytes>" in xml
    assert f"<url>{project.download_url('in_1.dat')}</url>" in xml


def test_sources_given_as_bytes_and_paths(project, tmp_path):
    local = tmp_path / "local.bin"
    local.write_bytes(b"from a path")
    a = project.create_work("sq", [("a.bin", b"from bytes")], name="a")
    b = project.create_work("sq", [("b.bin", str(local))], name="b")
    assert open(project.download_path("a.bin"), "rb").read() == b"from bytes"
    assert open(project.download_path("b.bin"), "rb").read() == b"from a path"
    assert a != b


def test_same_name_same_bytes_is_fine_different_bytes_is_an_error(project):
    project.create_work("sq", [("x.bin", b"v1")], name="first")
    project.create_work("sq", [("x.bin", b"v1")], name="again")
    with pytest.raises(CreateWorkError, match="immutable"):
        project.create_work("sq", [("x.bin", b"v2")], name="changed")
    assert _count(project) == 2
    assert open(project.download_path("x.bin"), "rb").read() == b"v1"


def test_md5_cache_is_used_and_stale_cache_ignored(project):
    _put(project, "c.dat", b"content")
    path = project.download_path("c.dat", create=True)
    with open(path, "wb") as f:
        f.write(b"content")
    with open(path + ".md5", "w") as f:
        f.write("0123456789abcdef0123456789abcdef 7\n")    # trusted, like BOINC
    wu = project.create_work("sq", ["c.dat"], name="cached")
    xml = project.db.query_one("SELECT xml_doc FROM workunit WHERE id=%s", (wu,))["xml_doc"]
    assert b"0123456789abcdef0123456789abcdef" in xml
    old = time.time() - 100
    os.utime(path + ".md5", (old, old))                    # older than the file: stale
    wu = project.create_work("sq", ["c.dat"], name="recomputed")
    xml = project.db.query_one("SELECT xml_doc FROM workunit WHERE id=%s", (wu,))["xml_doc"]
    assert hashlib.md5(b"content").hexdigest().encode() in xml


def test_no_md5_files_without_cache_md5_info(make_boinc_project):
    p = make_boinc_project(cache_md5_info=False, uldl_dir_fanout=0)
    add_app(p, "sq")
    write_app_templates(p, "sq", inputs=["in"])
    p.create_work("sq", [("f.bin", b"abc")], name="w")
    assert os.path.exists(os.path.join(p.download_dir, "f.bin"))   # fan-out 0: top level
    assert not os.path.exists(os.path.join(p.download_dir, "f.bin.md5"))


@pytest.mark.parametrize("files, name, message", [
    (["missing.dat"], "w", "not found"),
    ([("../evil", b"x")], "w", "not a plain file name"),
    ([("sub/dir", b"x")], "w", "not a plain file name"),
    ([("ok", b"x")], "bad/name", "not a plain file name"),
    ([("ok", b"x")], "..", "not a plain file name"),
    ([("ok", b"x"), ("ok2", b"y")], "w", "defines 1 input file"),
    ([], "w", "defines 1 input file"),
])
def test_bad_input_writes_nothing(project, files, name, message):
    with pytest.raises(CreateWorkError, match=message):
        project.create_work("sq", files, name=name)
    assert _count(project) == 0


@pytest.mark.parametrize("fields, message", [
    ({"min_quorum": 0}, "must be > 0"),
    ({"max_error_results": 11}, "max_error_results=11 exceeds max_total_results=1"),
    ({"min_quorum": 3, "target_nresults": 2}, "min_quorum=3 exceeds target_nresults=2"),
    ({"max_success_results": 2, "target_nresults": 1, "max_total_results": 1},
     "max_success_results=2 exceeds max_total_results=1"),
    ({"colour": "red"}, "unknown workunit field"),
])
def test_invalid_quorum_numbers(boinc_project, fields, message):
    add_app(boinc_project, "sq")
    write_app_templates(boinc_project, "sq", inputs=["in"])    # no quorum in the template
    with pytest.raises(CreateWorkError, match=message):
        boinc_project.create_work("sq", [("in", b"x")], name="w", **fields)
    assert _count(boinc_project) == 0


def test_defaults_and_target_raising_the_maxima(boinc_project):
    add_app(boinc_project, "sq")
    write_app_templates(boinc_project, "sq", inputs=["in"])
    one = boinc_project.create_work("sq", [("in", b"x")], name="one")
    three = boinc_project.create_work("sq", [("in", b"x")], name="three", min_quorum=2,
                                      target_nresults=3, max_error_results=1)
    cols = "min_quorum, target_nresults, max_error_results, max_total_results, max_success_results"
    rows = {r["name"]: r for r in boinc_project.db.query(f"SELECT name, {cols} FROM workunit")}
    assert [rows["one"][c] for c in cols.split(", ")] == [1, 1, 1, 1, 1]
    assert [rows["three"][c] for c in cols.split(", ")] == [2, 3, 1, 3, 3]


def test_template_naming_an_undefined_file(project):
    bad = ("<input_template><file_info></file_info><workunit>"
           "<file_ref><open_name>a</open_name></file_ref>"
           "<file_ref><open_name>b</open_name></file_ref></workunit></input_template>")
    with pytest.raises(CreateWorkError, match="undefined file"):
        project.create_work("sq", [("a", b"1")], bad, name="w")
    with pytest.raises(CreateWorkError, match="malformed XML"):
        project.create_work("sq", [("a", b"1")], "<input_template><workunit>", name="w")
    with pytest.raises(CreateWorkError, match="no such file"):
        project.create_work("sq", [("a", b"1")], None, "templates/none_out", name="w")
    with pytest.raises(CreateWorkError, match="inside the project"):
        project.create_work("sq", [("a", b"1")], None, "/etc/passwd", name="w")
    assert _count(project) == 0


def test_template_command_line_and_job_command_line_conflict(project):
    write_app_templates(project, "sq", inputs=["in"], command_line="-t")
    with pytest.raises(CreateWorkError, match="command_line"):
        project.create_work("sq", [("a", b"1")], name="w", command_line="-j")


def test_unknown_app_and_database_down(project):
    with pytest.raises(CreateWorkError, match="no application named 'nope'"):
        project.create_work("nope", [("a", b"1")], name="w")
    from boinc_pymw.boinc import DatabaseError, Project
    from boinc_pymw.boinc.testing import write_config_xml

    values = dict(project.config.values, db_host="127.0.0.1:1")   # nothing listens there
    write_config_xml(project.path, values)
    down = Project(project.path)
    with pytest.raises(DatabaseError, match="cannot connect"):
        down.create_work("sq", [("staged_never", b"1")], name="w")
    assert not os.path.exists(down.download_path("staged_never"))   # nothing staged


def test_batch(project, monkeypatch):
    calls = []
    real_stage = cw.Stager._stage
    monkeypatch.setattr(cw.Stager, "_stage",
                        lambda self, name, *a, **k: calls.append(name) or real_stage(
                            self, name, *a, **k))
    jobs = [{"files": [(f"in_{i}", b"%d" % i)]} for i in range(50)]
    jobs += [{"files": [("shared", b"same for all")]} for _ in range(50)]
    result = project.create_batch(jobs, app="sq", batch_name="b1", priority=2)
    assert len(result.workunit_ids) == 100 and len(set(result.workunit_ids)) == 100
    rows = project.db.query("SELECT id, name, batch, priority FROM workunit ORDER BY id")
    assert [r["id"] for r in rows] == result.workunit_ids
    assert [r["name"] for r in rows] == [f"b1_{i}" for i in range(100)]
    assert {(r["batch"], r["priority"]) for r in rows} == {(result.batch_id, 2)}
    batch = project.db.query_one("SELECT * FROM batch WHERE id=%s", (result.batch_id,))
    assert (batch["njobs"], batch["name"], batch["state"]) == (100, "b1", 1)
    assert sorted(calls) == sorted({c for c in calls})      # staged (and md5) once each
    assert len(calls) == 51


def test_batch_split_into_several_inserts(project, monkeypatch):
    monkeypatch.setattr(cw, "INSERT_CHUNK_BYTES", 3000)     # a few rows per statement
    monkeypatch.setattr(cw, "PIPELINE_JOBS", 7)             # and several pipeline steps
    project.create_work("sq", [("other", b"o")], name="before")
    result = project.create_batch([{"files": [(f"k{i}", b"%d" % i)]} for i in range(40)],
                                  app="sq", batch_name="chunks")
    rows = project.db.query("SELECT id, name FROM workunit WHERE batch=%s ORDER BY id",
                            (result.batch_id,))
    assert [r["id"] for r in rows] == result.workunit_ids
    assert [r["name"] for r in rows] == [f"chunks_{i}" for i in range(40)]


def test_batch_joining_an_existing_batch(project):
    first = project.create_batch([{"files": [("a", b"a")]}], app="sq", batch_name="b")
    more = project.create_batch([{"files": [("b", b"b")]}, {"files": [("c", b"c")]}],
                                app="sq", batch_name="b_more", batch_id=first.batch_id)
    assert more.batch_id == first.batch_id and len(more.workunit_ids) == 2
    assert None not in more.workunit_ids and first.workunit_ids[0] not in more.workunit_ids
    assert project.db.query_one("SELECT njobs FROM batch WHERE id=%s",
                                (first.batch_id,)) == {"njobs": 3}
    with pytest.raises(CreateWorkError, match="no batch row with id 999"):
        project.create_batch([{"files": [("d", b"d")]}], app="sq", batch_id=999)
    assert _count(project) == 3


@pytest.mark.parametrize("pipeline_jobs", [1000, 2], ids=["one-chunk", "many-chunks"])
def test_jobs_joining_a_batch_inside_the_callers_transaction(project, pipeline_jobs,
                                                              monkeypatch):
    monkeypatch.setattr(cw, "PIPELINE_JOBS", pipeline_jobs)
    first = project.create_batch([{"files": [("a", b"a")]}], app="sq", batch_name="b")
    app = project.app("sq")

    def jobs(tag):
        return [cw.Job(app=app, files=[(f"{tag}{i}.in", b"%d" % i)], name=f"{tag}{i}",
                       fields={"priority": 3}) for i in range(5)]

    db = project.db
    with pytest.raises(RuntimeError, match="caller gives up"):
        with db.transaction():
            project.create_batch(jobs("x"), batch_id=first.batch_id)
            assert _count(project) == 6                 # visible inside the transaction
            raise RuntimeError("caller gives up")
    assert _count(project) == 1
    assert db.query_one("SELECT njobs FROM batch WHERE id=%s", (first.batch_id,)) == {"njobs": 1}
    with db.transaction():
        more = project.create_batch(jobs("y"), batch_id=first.batch_id)
    rows = db.query("SELECT id, name, batch, priority FROM workunit WHERE name LIKE %s "
                    "ORDER BY id", ("y%",))
    assert [r["id"] for r in rows] == more.workunit_ids
    assert [r["name"] for r in rows] == [f"y{i}" for i in range(5)]
    assert {(r["batch"], r["priority"]) for r in rows} == {(first.batch_id, 3)}
    assert db.query_one("SELECT njobs FROM batch WHERE id=%s", (first.batch_id,)) == {"njobs": 6}


@pytest.mark.parametrize("pipeline_jobs", [1000, 4], ids=["one-chunk", "many-chunks"])
@pytest.mark.parametrize("breakage", ["missing file", "duplicate name", "existing name",
                                      "bad quorum"])
def test_failed_batch_leaves_no_rows(project, breakage, pipeline_jobs, monkeypatch):
    monkeypatch.setattr(cw, "PIPELINE_JOBS", pipeline_jobs)   # chunks already inserted roll back
    project.create_work("sq", [("pre", b"p")], name="taken")
    jobs = [{"files": [(f"in_{i}", b"%d" % i)], "name": f"j{i}"} for i in range(20)]
    if breakage == "missing file":
        jobs[13]["files"] = ["nowhere.dat"]
    elif breakage == "duplicate name":
        jobs[13]["name"] = "j3"
    elif breakage == "existing name":
        jobs[13]["name"] = "taken"           # only the database knows: rolled back
    else:
        jobs[13]["min_quorum"] = -1
    with pytest.raises((CreateWorkError, Exception)) as info:
        project.create_batch(jobs, app="sq")
    assert ("taken" in str(info.value)) if breakage == "existing name" else True
    assert _count(project) == 1 and _count(project, "batch") == 0


def test_cli_single_and_stdin(project, monkeypatch, capsys):
    _put(project, "one.dat", b"1")
    assert cli_main(["create-work", "--project", project.path, "--appname", "sq",
                     "--wu_name", "cli_1", "--priority", "5", "one.dat"]) == 0
    assert "created workunit" in capsys.readouterr().out
    assert project.db.query_one("SELECT priority FROM workunit WHERE name='cli_1'") == {
        "priority": 5}
    for i in range(3):
        _put(project, f"s{i}.dat", b"s%d" % i)
    lines = "--wu_name x0 s0.dat\n\n# comment\ns1.dat --command_line '-n 2'\ns2.dat\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert cli_main(["create-work", "--project", project.path, "--appname", "sq", "--stdin",
                     "--batch_name", "cb", "--delay_bound", "999"]) == 0
    rows = project.db.query("SELECT name, delay_bound, xml_doc FROM workunit "
                            "WHERE name<>'cli_1' ORDER BY id")
    assert [r["name"] for r in rows] == ["x0", "cb_1", "cb_2"]
    assert {r["delay_bound"] for r in rows} == {999}
    assert b"<command_line>\n-n 2\n</command_line>" in rows[1]["xml_doc"]
    monkeypatch.setattr("sys.stdin", io.StringIO("s0.dat --bogus\n"))
    assert cli_main(["create-work", "--project", project.path, "--appname", "sq",
                     "--stdin"]) == 1
    assert "stdin line 1: unknown option(s) --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("tmpfile", [True, False], ids=["O_TMPFILE", "temporary-name"])
def test_batch_staging_in_threads_keeps_names_whole_and_files_immutable(project, tmpfile,
                                                                         monkeypatch):
    """A batch's inputs are staged by a few threads (Stager.prefetch) as unnamed files
    linked to their names, or via a temporary name where O_TMPFILE is missing: each
    file is complete, 0644 under any umask, nothing else is left in the hierarchy,
    and a name taken by other bytes is still refused with nothing written."""
    monkeypatch.setattr(cw, "_TMPFILE_OK", [tmpfile])
    project.create_work("sq", [("taken.in", b"old bytes")], name="before")
    jobs = [{"files": [(f"p{i}.in", b"%d" % i * 100)]} for i in range(40)]
    old = os.umask(0o077)
    try:
        result = project.create_batch(jobs, app="sq", batch_name="threads")
        with pytest.raises(CreateWorkError, match="immutable"):
            project.create_batch(jobs[:20] + [{"files": [("taken.in", b"new bytes")]}],
                                 app="sq", batch_name="clash")
    finally:
        os.umask(old)
    assert len(result.workunit_ids) == 40 and _count(project) == 41
    for i in range(40):
        path, data = project.download_path(f"p{i}.in"), b"%d" % i * 100
        assert open(path, "rb").read() == data
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
        assert read_md5_cache(path) == (hashlib.md5(data).hexdigest(), float(len(data)))
    assert open(project.download_path("taken.in"), "rb").read() == b"old bytes"
    left = [n for _r, _d, names in os.walk(project.download_dir) for n in names
            if not n.endswith((".in", ".in.md5"))]
    assert left == []
