"""PyMW's data_files on the remote back end (-i boinc --url): data files are
uploaded once with job_file.php and become inputs of the job, which brings its
own input template (submit_batch's per-job <input_template>), against the
stand-in of a 1.4.7 project's PHP; the tasks really run in slots."""

import pytest

from boinc_pymw.backends.boinc._data_files import DataFileError
from boinc_pymw.backends.boinc._rpc import NO_BATCH_TEMPLATE
from boinc_pymw.boinc.output_files import safe_xml

from . import tasks
from .test_remote import drive, master, world, workunits  # noqa: F401 - the fixture
from .volunteers import Volunteers


class SlotVolunteers(Volunteers):
    """Volunteers running each task in a BOINC slot (launcher, portable interpreter),
    reporting the output files' sizes as a client does (get_output.php needs them)."""

    def compute(self, wu, result):
        import os

        super().compute(wu, result)
        row = self.db.query_one("SELECT xml_doc_in FROM result WHERE id=%s", (result["id"],))
        names = [fi.findtext("name") for fi in
                 safe_xml(row["xml_doc_in"], wrap=True).iterfind("file_info")]
        sizes = [os.path.getsize(self.project.upload_path(n)) if
                 os.path.exists(self.project.upload_path(n)) else 0 for n in names]
        self.db.execute("UPDATE result SET xml_doc_out=%s WHERE id=%s",
                        ("".join(f"<file_info>\n    <name>{n}</name>\n    <nbytes>{size}"
                                 f"</nbytes>\n</file_info>\n" for n, size in zip(names, sizes)),
                         result["id"]))


@pytest.fixture
def slots(world, task_app_version, tmp_path):
    """Volunteers that run each task in a BOINC slot."""
    return SlotVolunteers(world.project, "pymwapp", world.app_id,
                      [h["id"] if isinstance(h, dict) else h for h in
                       world.volunteers.host_ids], task_app_version, tmp_path / "slots")


def drive_slots(world, slots, futures):
    world.volunteers = slots
    drive(world, futures, timeout=300)


def test_data_files_reach_the_slot_and_are_uploaded_once(world, slots, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("one two two three three three\n")
    m = master(world)
    two = m.submit_task(tasks.count_in_file, ("two",), data_files=[str(words)])
    three = m.submit_task(tasks.count_in_file, ("three",), data_files=[str(words)])
    plain = m.submit_task(tasks.square, (4,))
    drive_slots(world, slots, [t.future for t in (two, three, plain)])
    assert [m.get_result(t)[1] for t in (two, three, plain)] == [2, 3, 16]
    m.shutdown()
    assert world.standin.requests.count("upload_files") == 1
    rows = world.project.db.query("SELECT name, xml_doc FROM workunit ORDER BY id")
    refs = [[(r.findtext("file_name"), r.findtext("open_name"), r.find("copy_file") is not None)
             for r in safe_xml(row["xml_doc"], wrap=True).iterfind("workunit/file_ref")]
            for row in rows]
    assert [len(r) for r in refs] == [2, 2, 1]
    assert refs[0][1][1:] == ("words.txt", True) and refs[0][1] == refs[1][1]
    assert refs[0][1][0].startswith("pymw_") and refs[0][1][0].endswith("_words.txt")


def test_the_batch_template_check_is_what_1_4_7_does(world, tmp_path):
    """Without the absent batch-level template, 1.4.7's validate_batch refuses a
    job with more input files than the app's template (shown on the stand-in)."""
    from boinc_pymw.backends.boinc._rpc import BoincRpcError, JobInput, JobRequest, SubmitClient

    client = SubmitClient(world.url, world.auth, timeout=5.0)
    batch_id = client.create_batch("pymwapp", "direct")
    job = JobRequest("direct_0", (JobInput("inline", "{}"), JobInput("inline", "x")))
    with pytest.raises(BoincRpcError, match="wrong # of input files for job 0: need 1, got 2"):
        client.submit_batch("pymwapp", batch_id, [job])
    template = open(f"{world.project.path}/templates/pymwapp_in").read()
    own = JobRequest("direct_0", job.inputs, template.replace(
        "</file_info>", "</file_info><file_info><number>1</number></file_info>", 1).replace(
        "</file_ref>", "</file_ref><file_ref><file_number>1</file_number>"
        "<open_name>x.txt</open_name><copy_file/></file_ref>", 1))
    client.submit_batch("pymwapp", batch_id, [own])     # sends NO_BATCH_TEMPLATE
    assert world.project.db.query_one("SELECT COUNT(*) AS n FROM workunit")["n"] == 1


def test_unusable_data_files_fail_their_call_only(world, slots, tmp_path):
    clash = tmp_path / "output.json"
    clash.write_text("{}")
    m = master(world)
    bad = m.submit_task(tasks.count_in_file, ("a",), data_files=[str(clash)])
    with pytest.raises(DataFileError, match="'output.json' is taken"):
        m.get_result(bad)
    words = tmp_path / "words.txt"
    words.write_text("a a\n")
    good = m.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    drive_slots(world, slots, [good.future])
    assert m.get_result(good)[1] == 2
    m.shutdown()
    names = [w["name"] for w in workunits(world)]
    assert len(names) == 1 and names[0].startswith(f"{m.backend.batch}_1_")


def test_a_data_file_changed_before_upload_fails_its_call(world, tmp_path, monkeypatch):
    words = tmp_path / "words.txt"
    words.write_text("a\n")
    m = master(world, submit_delay=60.0)     # held back: the file changes before upload
    task = m.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    words.write_text("b\n")
    m.shutdown(wait=True)                    # shutdown sends what is held back
    with pytest.raises(DataFileError, match="changed while it was being submitted"):
        m.get_result(task)
    assert workunits(world) == []


def test_reattaching_checks_the_data_files(world, slots, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("a b a\n")
    first = master(world, keep_batch=True)
    task = first.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    drive_slots(world, slots, [task.future])
    assert first.get_result(task)[1] == 2
    batch = first.backend.batch
    first.shutdown()
    again = master(world, batch=batch, keep_batch=True)   # same call, same file: no new job
    task = again.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    drive(world, [task.future])
    assert again.get_result(task)[1] == 2
    again.shutdown()
    assert len(workunits(world)) == 1 and world.standin.requests.count("upload_files") == 1
    words.write_text("a\n")
    third = master(world, batch=batch, keep_batch=True)
    with pytest.raises(Exception, match="call 0 differs from the job"):
        third.submit_task(tasks.count_in_file, ("a",), data_files=[str(words)])
    third.shutdown(wait=False)
