"""The slot runner against an app linked with BOINC's own API library."""

import shutil

import pytest

from boinc_pymw.local.slots import (
    ERR_FILE_MISSING, ERR_RSC_LIMIT_EXCEEDED, BoincClientRunner, SlotError, SlotFile, SlotJob,
    SlotRunner,
    app_version_files, resolve_filename,
)


def make_job(tmp_path, app, mode, text="hello", **kw):
    src = tmp_path / f"input_{mode}_{text}"
    src.write_text(text + "\n")
    return SlotJob(
        app_name="bapp", wu_name=f"wu_{mode}", result_name=f"wu_{mode}_0",
        main_program="bapp_1.00", app_files=[SlotFile("bapp_1.00", app)],
        input_files=[SlotFile(src.name, src, "in.txt")],
        output_files=[SlotFile(f"wu_{mode}_0_r1_0", None, "out.txt", max_nbytes=1000)],
        command_line=[mode], **kw)


@pytest.fixture
def runner(tmp_path):
    return SlotRunner(tmp_path / "client")


def test_app_runs_under_the_boinc_api_not_standalone(tmp_path, runner, boinc_api_app):
    seen = []
    outcome = runner.run(make_job(tmp_path, boinc_api_app, "ok"), slot=0, on_progress=seen.append)
    assert outcome.success, outcome.message + outcome.stderr
    out = outcome.outputs["wu_ok_0_r1_0"].read_text()
    # the input came through a link file, and boinc_init found init_data.xml + shared memory
    assert out == "hello|standalone=0\n"
    assert "called boinc_finish(0)" in outcome.stderr
    assert 0.5 in seen  # the app reported progress through the shared memory
    slot = runner.slot_dir(0)
    assert (slot / "in.txt").read_text().startswith("<soft_link>../../projects/")
    assert resolve_filename("in.txt", slot).read_text() == "hello\n"


def test_nonzero_exit_is_an_error_with_stderr(tmp_path, runner, boinc_api_app):
    outcome = runner.run(make_job(tmp_path, boinc_api_app, "fail"))
    assert not outcome.success
    assert outcome.exit_status == 3
    assert "exited with code 3" in outcome.message
    assert "mode fail" in outcome.stderr


def test_crash_reports_the_signal(tmp_path, runner, boinc_api_app):
    outcome = runner.run(make_job(tmp_path, boinc_api_app, "crash"))
    assert not outcome.success
    # BOINC's diagnostics catch SIGSEGV and exit with their own status, or the
    # signal kills the process: either way it is an error, and stderr says so
    assert outcome.signal is not None or outcome.exit_status != 0
    assert "mode crash" in outcome.stderr


def test_exit_zero_without_boinc_finish_is_not_success(tmp_path, runner, boinc_api_app):
    outcome = runner.run(make_job(tmp_path, boinc_api_app, "nofinish"))
    assert not outcome.success
    assert "no 'finished' file" in outcome.message


def test_missing_output_is_an_error(tmp_path, runner, boinc_api_app):
    outcome = runner.run(make_job(tmp_path, boinc_api_app, "nooutput"))
    assert not outcome.success
    assert outcome.exit_status == ERR_FILE_MISSING
    assert "out.txt" in outcome.message


def test_time_limit_stops_the_job(tmp_path, runner, boinc_api_app):
    outcome = runner.run(make_job(tmp_path, boinc_api_app, "sleep", time_limit=2.5))
    assert not outcome.success
    assert outcome.exit_status == ERR_RSC_LIMIT_EXCEEDED


def test_copy_file_inputs_and_outputs(tmp_path, runner, boinc_api_app):
    job = make_job(tmp_path, boinc_api_app, "ok", text="copied")
    job.input_files[0].copy_file = True
    job.output_files[0].copy_file = True
    outcome = runner.run(job, slot=1)
    assert outcome.success, outcome.message
    assert (runner.slot_dir(1) / "in.txt").read_text() == "copied\n"
    assert outcome.outputs["wu_ok_0_r1_0"].read_text() == "copied|standalone=0\n"


def test_files_are_immutable(tmp_path, runner, boinc_api_app):
    runner.run(make_job(tmp_path, boinc_api_app, "ok"))
    other = tmp_path / "elsewhere"
    other.mkdir()
    clash = other / "input_ok_hello"
    clash.write_text("other bytes\n")
    job = make_job(tmp_path, boinc_api_app, "ok")
    job.input_files[0].source = clash
    with pytest.raises(SlotError, match="immutable"):
        runner.run(job)


def test_app_version_directory(tmp_path, boinc_api_app):
    vdir = tmp_path / "apps" / "bapp" / "1.00" / "x86_64-pc-linux-gnu"
    vdir.mkdir(parents=True)
    shutil.copy2(boinc_api_app, vdir / "bapp_1.00")
    (vdir / "helper.dat").write_text("x")
    (vdir / "bapp_1.00.sig").write_text("sig")
    with pytest.raises(SlotError, match="main_program"):
        app_version_files(vdir)
    (vdir / "version.xml").write_text(
        "<version><file><physical_name>bapp_1.00</physical_name><main_program/></file>"
        "<file><physical_name>helper.dat</physical_name><logical_name>helper</logical_name>"
        "<copy_file/></file></version>")
    main, files = app_version_files(vdir)
    assert main == "bapp_1.00"
    by_name = {f.physical_name: f for f in files}
    assert set(by_name) == {"bapp_1.00", "helper.dat"}
    assert by_name["helper.dat"].open_name == "helper" and by_name["helper.dat"].copy_file


@pytest.mark.parametrize("mode, ok, status, message", [
    ("ok", True, 0, ""),
    ("fail", False, 3, "process exited with code 3"),
    ("crash", False, None, "process exited with code"),
    ("nooutput", False, ERR_FILE_MISSING, "out.txt"),
    ("nofinish", False, None, "without finishing the job"),
])
def test_under_the_real_boinc_client(tmp_path, boinc_api_app, mode, ok, status, message):
    if not shutil.which("boinc"):
        pytest.skip("needs the BOINC client (boinc-client; scripts/setup.sh installs it)")
    runner = BoincClientRunner(tmp_path / "client")
    outcome = runner.run(make_job(tmp_path, boinc_api_app, mode))
    assert outcome.success is ok, outcome.message
    if status is not None:
        assert outcome.exit_status == status
    assert message in outcome.message
    assert f"mode {mode}" in outcome.stderr          # the app's stderr.txt came back
    if ok:
        # under the real client the app is not standalone either
        assert outcome.outputs["wu_ok_0_r1_0"].read_text() == "hello|standalone=0\n"
