"""Names are checked once (boinc_pymw.names), in bytes and characters, wherever
they enter: create-work, templates, install-app, batch names."""

import pytest

from boinc_pymw import names
from boinc_pymw.backends.boinc.calls import check_batch_name as backend_batch_name
from boinc_pymw.boinc.create_work import CreateWorkError
from boinc_pymw.boinc.testing import add_app
from boinc_pymw.templates import InputFile, OutputFile, TemplateError, write_app_templates

FOUR_BYTES = "\U0001F600"     # one character, four bytes in UTF-8


@pytest.fixture
def project(boinc_project):
    add_app(boinc_project, "sq")
    write_app_templates(boinc_project, "sq", inputs=[InputFile("in")], outputs=["out"])
    return boinc_project


@pytest.mark.parametrize("bad", [
    "a\nb", "tab\there", "esc\x1b", "del\x7f", "nel\x85", "ls\u2028", "a/b", "a\\b", "..",
    "a..b", " lead", "trail ", "x<y", "a&b", "", "a\0b",
])
def test_bad_characters_are_refused_everywhere(bad):
    for check in (names.check_workunit_name, names.check_batch_name,
                  lambda n: names.check_file_name("file", n)):
        with pytest.raises(names.BadName):
            check(bad)


def test_length_is_counted_in_bytes_and_in_characters():
    names.check_workunit_name("w" * names.WORKUNIT_NAME_CHARS)
    with pytest.raises(names.BadName, match="characters"):
        names.check_workunit_name("w" * (names.WORKUNIT_NAME_CHARS + 1))
    # 60 four-byte characters: few characters, too many bytes for a file name + suffixes
    with pytest.raises(names.BadName, match="bytes"):
        names.check_workunit_name(FOUR_BYTES * 60)
    names.check_file_name("file", FOUR_BYTES * 60)                # 240 bytes: fits
    with pytest.raises(names.BadName, match="bytes"):
        names.check_file_name("file", FOUR_BYTES * 60 + "x")


def test_every_suffix_still_fits_a_path_component():
    wu = "w" * names.WORKUNIT_NAME_BYTES
    longest_result_file = f"{wu}_{2**31 - 1}_99"                  # <wu>_<n>_<i>
    assert len(longest_result_file.encode()) + len(".md5") <= names.PATH_COMPONENT_BYTES
    store_temp = f".{wu}.json.abcdefgh.tmp"                        # write_atomic's temp file
    assert len(store_temp.encode()) <= names.PATH_COMPONENT_BYTES
    f = "f" * names.FILE_NAME_BYTES
    assert len(f"{f}.gz.md5".encode()) <= names.PATH_COMPONENT_BYTES


def test_results_store_names_cannot_collide():
    """The store keeps <wu>.json beside <wu>/: 'coll' and 'coll.json' would clash."""
    names.check_workunit_name("coll")
    for bad in ("coll.json", "coll.JSON", ".hidden"):
        with pytest.raises(names.BadName):
            names.check_workunit_name(bad)


def test_create_work_refuses_a_long_non_ascii_input_name_cleanly(project):
    long_name = FOUR_BYTES * 64                                    # 256 bytes: ENAMETOOLONG
    with pytest.raises(CreateWorkError, match="bytes"):
        project.create_work("sq", [(long_name, b"x")], name="wu_long")
    assert project.db.query("SELECT id FROM workunit") == []


def test_create_work_refuses_bad_workunit_names(project):
    for bad in ("two\nlines", FOUR_BYTES * 60, "w" * 181, "coll.json"):
        with pytest.raises(CreateWorkError):
            project.create_work("sq", [("in_ok", b"x")], name=bad)
    with pytest.raises(CreateWorkError, match="batch name"):
        project.create_batch([{"files": [("in_b", b"x")]}], app="sq", batch_name="b\r")
    assert project.db.query("SELECT id FROM workunit") == []
    assert project.db.query("SELECT id FROM batch") == []


def test_templates_refuse_bad_open_names():
    with pytest.raises(TemplateError, match="control character"):
        InputFile("in\n")
    with pytest.raises(TemplateError, match="bytes"):
        OutputFile(FOUR_BYTES * 61)


def test_backend_batch_names_follow_the_same_rules():
    assert backend_batch_name("pymw_20261201_1") == "pymw_20261201_1"
    for bad in ("a..b", "b.json"):
        with pytest.raises(names.BadName):
            backend_batch_name(bad)


def test_app_and_plan_class_names():
    names.check_app_name("squares-2.v1")
    names.check_plan_class("mt")
    for bad in ("sp ace", "é", "a" * 50, "x__y", ".dot"):
        with pytest.raises(names.BadName):
            names.check_app_name(bad) if bad != "x__y" else names.check_plan_class(bad)
