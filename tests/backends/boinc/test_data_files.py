"""PyMW's data_files on -i boinc: each data file is an input file of the
workunit, named by content, opened in the slot under its base name (a real
copy), so a task that opens "words.txt" reads it. BOINC's server and
clients are played by volunteers.py; every task really runs in a slot."""

import pytest

from boinc_pymw import Master
from boinc_pymw.backends.boinc._data_files import DataFileError
from boinc_pymw.boinc.output_files import safe_xml
from boinc_pymw.templates import write_app_templates

from . import tasks


def boinc_master(world, batch):
    return Master(interface="boinc", project=world.project.path, app="pymwapp", batch=batch,
                  poll_interval=0.1)


def data_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def file_refs(db, wu_name):
    doc = db.query_one("SELECT xml_doc FROM workunit WHERE name=%s", (wu_name,))["xml_doc"]
    root = safe_xml(doc, wrap=True)
    return [(r.findtext("file_name"), r.findtext("open_name"), r.find("copy_file") is not None)
            for r in root.iterfind("workunit/file_ref")]


def test_a_task_opens_its_data_files_by_base_name(boinc_world, tmp_path):
    w = boinc_world
    words = data_file(tmp_path, "words.txt", "a b a c a\n")
    other = tmp_path / "sub"
    other.mkdir()
    more = data_file(other, "more words.txt", "b b\n")
    master = boinc_master(w, "datafiles")
    first = master.submit_task(tasks.count_in_file, ("a",), data_files=[words, more])
    second = master.submit_task(tasks.count_in_file, ("b", "more words.txt"),
                                data_files=[words, more])
    plain = master.submit_task(tasks.square, (7,))
    w.volunteers.run_until_done()
    assert master.get_result(first) == (first, 3)
    assert master.get_result(second) == (second, 2)
    assert master.get_result(plain) == (plain, 49)
    master.shutdown()
    refs = file_refs(w.project.db, "datafiles_0")
    assert [(open_name, copy) for _phys, open_name, copy in refs] == \
        [("input.json", False), ("words.txt", True), ("more words.txt", True)]
    physical = [phys for phys, _o, _c in refs[1:]]
    assert physical[0].startswith("pymw_") and physical[0].endswith("_words.txt")
    assert physical[1].endswith("_more_words.txt")      # web-RPC-safe physical name
    # the same files of another workunit are the same BOINC files, staged once
    assert [phys for phys, _o, _c in file_refs(w.project.db, "datafiles_1")[1:]] == physical
    assert len(file_refs(w.project.db, "datafiles_2")) == 1


def test_a_changed_data_file_is_a_new_boinc_file(boinc_world, tmp_path):
    w = boinc_world
    words = tmp_path / "words.txt"
    words.write_text("x\n")
    master = boinc_master(w, "changed")
    one = master.submit_task(tasks.count_in_file, ("x",), data_files=[str(words)])
    words.write_text("x x y\n")
    two = master.submit_task(tasks.count_in_file, ("x",), data_files=[str(words)])
    w.volunteers.run_until_done()
    assert master.get_result(one)[1] == 1 and master.get_result(two)[1] == 2
    master.shutdown()
    assert file_refs(w.project.db, "changed_0")[1][0] != file_refs(w.project.db, "changed_1")[1][0]


@pytest.mark.parametrize("name", ["input.json", "output.json", "init_data.xml",
                                  "stderr.txt", "python_runtime.zip", "a&b.txt"])
def test_a_name_the_slot_needs_is_refused_before_any_workunit(boinc_world, tmp_path, name):
    w = boinc_world
    master = boinc_master(w, "badname")
    task = master.submit_task(tasks.count_in_file, ("a",),
                              data_files=[data_file(tmp_path, name, "a\n")])
    with pytest.raises(DataFileError, match="data file"):
        master.get_result(task)
    master.shutdown()
    assert w.project.db.query_one("SELECT COUNT(*) AS n FROM workunit")["n"] == 0


def test_data_files_over_the_disk_bound_are_refused(boinc_world, tmp_path):
    w = boinc_world
    write_app_templates(w.project, "pymwapp", inputs=["input.json"], outputs=["output.json"],
                        min_quorum=2, target_nresults=2, max_error_results=1,
                        rsc_disk_bound=1000)
    master = boinc_master(w, "toolarge")
    small = master.submit_task(tasks.count_in_file, ("a",),
                               data_files=[data_file(tmp_path, "words.txt", "a\n")])
    big = master.submit_task(tasks.count_in_file, ("a",),
                             data_files=[data_file(tmp_path, "big.txt", "a " * 600)])
    with pytest.raises(DataFileError, match="rsc_disk_bound=1000"):
        master.get_result(big)
    w.volunteers.run_until_done()
    assert master.get_result(small)[1] == 1
    master.shutdown()
    assert [r["name"] for r in w.project.db.query("SELECT name FROM workunit")] == ["toolarge_0"]


def test_a_template_rewritten_between_calls_is_read_again(boinc_world, tmp_path):
    """The app's templates are read once, not per call, but an admin's new
    template (here a smaller disk bound) counts from the next call on."""
    w = boinc_world
    master = boinc_master(w, "retemplate")
    words = data_file(tmp_path, "words.txt", "a " * 600)
    before = master.submit_task(tasks.count_in_file, ("a",), data_files=[words])
    write_app_templates(w.project, "pymwapp", inputs=["input.json"], outputs=["output.json"],
                        min_quorum=2, target_nresults=2, max_error_results=1,
                        rsc_disk_bound=1000)
    after = master.submit_task(tasks.count_in_file, ("a",), data_files=[words])
    w.volunteers.run_until_done()
    assert master.get_result(before)[1] == 600
    with pytest.raises(DataFileError, match="rsc_disk_bound=1000"):
        master.get_result(after)
    master.shutdown()


def test_reattaching_with_other_data_is_refused(boinc_world, tmp_path):
    w = boinc_world
    words = tmp_path / "words.txt"
    words.write_text("a\n")
    master = boinc_master(w, "reattach")
    master.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    master.shutdown(wait=False)
    again = boinc_master(w, "reattach")          # the same call and data: the same workunit
    task = again.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    w.volunteers.run_until_done()
    assert again.get_result(task)[1] == 1
    again.shutdown()
    words.write_text("a a\n")
    third = boinc_master(w, "reattach")
    with pytest.raises(Exception, match="differs from the workunit reattach_0"):
        third.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    third.shutdown(wait=False)
