"""Untrusted outputs: every kind of bad file makes its result invalid (or retried), never
kills the daemon, never reads outside upload_dir, never resolves XML entities."""

from __future__ import annotations

import os

import pytest

from boinc_pymw.boinc.output_files import (BadOutputFile, OutputFile, TransientFileError,
                                           check_file_name, parse_file_refs, read_output,
                                           safe_xml)
from boinc_pymw.local.simulate import run_to_validation
from boinc_pymw.boinc.states import Outcome, ValidateState
from boinc_pymw.boinc.validator import Validator
from boinc_pymw.daemons.bitwise_validator import BitwiseValidator
from boinc_pymw.daemons.numeric_validator import NumericValidator

from .conftest import run_daemon


def results_of(db, wu_id):
    return db.query("SELECT * FROM result WHERE workunitid=%s ORDER BY id", (wu_id,))


def upload_path(project, result, n=0):
    return project.upload_path(parse_file_refs(result["xml_doc_in"])[n]["name"])


class SmallFiles(BitwiseValidator):
    max_output_bytes = 100


@pytest.mark.parametrize("spoil", ["missing", "empty", "oversized", "directory",
                                   "symlink_out", "bad_xml_doc_in", "traversal_name"])
def test_bad_output_marks_result_invalid_and_daemon_goes_on(world, tmp_path, spoil):
    project, db = world.project, world.db
    wu_id = run_to_validation(project, world.app_id, world.hosts[:3],
                              [[b"good"], [b"good"], [b"good"]], "wu", min_quorum=2,
                              app_version_id=world.av_id)
    other = run_to_validation(project, world.app_id, world.hosts[:1], [[b"x"]], "other",
                              min_quorum=1, app_version_id=world.av_id)
    victim = results_of(db, wu_id)[0]
    path = upload_path(project, victim)
    if spoil == "missing":
        os.unlink(path)
    elif spoil == "empty":
        open(path, "wb").close()
    elif spoil == "oversized":
        with open(path, "wb") as f:
            f.write(b"x" * 101)
    elif spoil == "directory":
        os.unlink(path)
        os.mkdir(path)
    elif spoil == "symlink_out":
        secret = tmp_path / "secret"
        secret.write_bytes(b"good")
        os.unlink(path)
        os.symlink(secret, path)
    elif spoil == "bad_xml_doc_in":
        db.execute("UPDATE result SET xml_doc_in=%s WHERE id=%s",
                   ("<result><file_ref><file_name>x", victim["id"]))
    elif spoil == "traversal_name":
        db.execute("UPDATE result SET xml_doc_in=%s WHERE id=%s",
                   ("<result><file_ref><file_name>../../etc/passwd</file_name>"
                    "<open_name>out</open_name></file_ref></result>", victim["id"]))
    assert run_daemon(SmallFiles, project) == 0
    rs = results_of(db, wu_id)
    assert (rs[0]["outcome"], rs[0]["validate_state"]) == (Outcome.VALIDATE_ERROR,
                                                           ValidateState.INVALID)
    assert [r["validate_state"] for r in rs[1:]] == [ValidateState.VALID] * 2
    assert results_of(db, other)[0]["validate_state"] == ValidateState.VALID


def test_upload_dir_unavailable_is_transient(world):
    project, db = world.project, world.db
    wu_id = run_to_validation(project, world.app_id, world.hosts[:2], [[b"a"], [b"a"]], "wu",
                              min_quorum=2, target_nresults=3, app_version_id=world.av_id)
    moved = project.upload_dir + ".away"
    os.rename(project.upload_dir, moved)
    try:
        assert run_daemon(BitwiseValidator, project) == 0
    finally:
        os.rename(moved, project.upload_dir)
    rs = results_of(db, wu_id)
    # not invalid: the outputs may be fine once the storage is back
    assert [r["outcome"] for r in rs[:2]] == [Outcome.SUCCESS] * 2
    assert all(r["validate_state"] != ValidateState.INVALID for r in rs)


def test_optional_missing_file_counts_as_empty(tmp_path):
    f = OutputFile("x", "out", str(tmp_path / "x"), optional=True)
    assert read_output(f, str(tmp_path)) is None
    with pytest.raises(BadOutputFile, match="missing"):
        read_output(OutputFile("x", "out", str(tmp_path / "x")), str(tmp_path))
    with pytest.raises(TransientFileError):
        read_output(OutputFile("x", "out", str(tmp_path / "gone" / "x")), str(tmp_path / "gone"))


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "..\\x", "a\x00b", " a", "x" * 256])
def test_unsafe_file_names_rejected(name):
    with pytest.raises(BadOutputFile):
        check_file_name(name)


def test_xml_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
           "<r>&x;</r>").encode()
    laughs = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
              b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
              b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>')
    # an entity reference is refused, never expanded (no file read, no blow-up)
    with pytest.raises(BadOutputFile, match="entities"):
        safe_xml(xxe)
    with pytest.raises(BadOutputFile, match="entities"):
        safe_xml(laughs)
    assert safe_xml(b"<r>plain &amp; simple</r>").text == "plain & simple"
    with pytest.raises(BadOutputFile):
        safe_xml(b"<unclosed>")
    # a DOCTYPE smuggled into xml_doc_in is refused outright
    with pytest.raises(BadOutputFile):
        parse_file_refs(b'<!DOCTYPE r [<!ENTITY x "y">]><result/>')


class NeverCrashes(Validator):
    """A careless init_result: volunteers' bytes make it raise ordinary exceptions."""

    def init_result(self, result):
        return int(self.read_outputs(result)[0])     # ValueError on garbage

    def compare(self, a, b):
        return a == b


def test_handler_errors_on_garbage_make_result_invalid(world):
    project, db = world.project, world.db
    wu_id = run_to_validation(project, world.app_id, world.hosts[:3],
                              [[b"\xff\xfe garbage"], [b"12"], [b"12"]], "wu", min_quorum=2,
                              app_version_id=world.av_id)
    assert run_daemon(NeverCrashes, project) == 0
    assert [r["validate_state"] for r in results_of(db, wu_id)] == [
        ValidateState.INVALID, ValidateState.VALID, ValidateState.VALID]


def test_numeric_validator_tolerance_and_garbage(world):
    project, db = world.project, world.db
    a = run_to_validation(project, world.app_id, world.hosts[:2],
                          [[b"1.0000000001 2.5\n"], [b"1.0 2.5"]], "close", min_quorum=2,
                          app_version_id=world.av_id)
    b = run_to_validation(project, world.app_id, world.hosts[:2],
                          [[b'{"x": [1.0, 2.0]}'], [b'{"x": [1.0, 2.1]}']], "far", min_quorum=2,
                          app_version_id=world.av_id)
    c = run_to_validation(project, world.app_id, world.hosts[:3],
                          [[b"\xff\xff\xff"], [b"3"], [b"3.0"]], "junk", min_quorum=2,
                          app_version_id=world.av_id)
    d = run_to_validation(project, world.app_id, world.hosts[:2],
                          [[b"[" * 100000], [b"[" * 100000]], "deep", min_quorum=2,
                          app_version_id=world.av_id)
    assert run_daemon(NumericValidator, project, "--rel_tol", "1e-6") == 0
    V, I, INC = ValidateState.VALID, ValidateState.INVALID, ValidateState.INCONCLUSIVE
    assert [r["validate_state"] for r in results_of(db, a)] == [V, V]
    assert [r["validate_state"] for r in results_of(db, b)] == [INC, INC]
    assert [r["validate_state"] for r in results_of(db, c)] == [I, V, V]
    assert [r["validate_state"] for r in results_of(db, d)] == [V, V]
