"""libsched's process_input_template accepts our rendered templates and derives
the same xml_doc (and workunit fields) as our create_work."""

import gzip
import os

import pytest

from boinc_pymw.boinc.testing import add_app
from boinc_pymw.templates import InputFile, render_input_template, write_app_templates
from oracle import parse_fields, run_oracle

RENDERED = {
    "one_file": dict(inputs=["in"]),
    "options": dict(inputs=[InputFile("in.pkl", copy_file=True, sticky=True, no_delete=True),
                            InputFile("data", report_on_rpc=True), "third"],
                    command_line="--seed 17 -v", min_quorum=2, target_nresults=3,
                    max_error_results=4, max_total_results=8, max_success_results=5,
                    rsc_fpops_est=2.5e12, rsc_fpops_bound=5e13, rsc_memory_bound=1e9,
                    rsc_disk_bound=2e9, rsc_bandwidth_bound=1e6, delay_bound=3600),
    "gzip": dict(inputs=[InputFile("in", gzip=True, copy_file=True)]),
    "no_files": dict(inputs=[], command_line="run"),
}

HANDWRITTEN = {
    "copied_elements": """<input_template>
  <file_info><number>0</number><sticky/><custom a="b">  keep  me </custom></file_info>
  <workunit>
    <file_ref><file_number>0</file_number><copy_file/><note>x</note></file_ref>
    <credit>5</credit>
    <nested>
      <inner>1</inner>
    </nested>
    <min_quorum>1</min_quorum><target_nresults>1</target_nresults>
    <size_class>1</size_class>
  </workunit>
</input_template>
""",
}

FIELDS = ("rsc_fpops_est", "rsc_fpops_bound", "rsc_memory_bound", "rsc_disk_bound",
          "rsc_bandwidth_bound", "delay_bound", "min_quorum", "target_nresults",
          "max_error_results", "max_total_results", "max_success_results")


def _stage_inputs(project, n, tag):
    names = []
    for i in range(n):
        name = f"{tag}_{i}.dat"
        data = f"input {i} of {tag}\n".encode() * (i + 1)
        with open(os.path.join(project.download_dir, name), "wb") as f:
            f.write(data)
        names.append(name)
    return names


def _gzip_beside(project, name):
    path = project.download_path(name, create=True)
    with open(os.path.join(project.download_dir, name), "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data)
    with gzip.open(path + ".gz", "wb") as f:
        f.write(data)


def _compare(oracle_exe, project, template_path, names, ours_first, command_line=None):
    env = {"ORACLE_COMMAND_LINE": command_line} if command_line else None

    def boinc():
        return parse_fields(run_oracle(oracle_exe, "template", project.path, template_path,
                                       *names, env=env))

    if not ours_first:
        theirs = boinc()
    wu_id = project.create_work("app", names, os.path.relpath(template_path, project.path),
                                "templates/app_out", name="wu_" + os.path.basename(template_path),
                                command_line=command_line)
    row = project.db.query_one("SELECT * FROM workunit WHERE id=%s", (wu_id,))
    if ours_first:
        theirs = boinc()
    assert theirs["retval"] == "0"
    assert row["xml_doc"].decode() == theirs["xml_doc"]
    return row, theirs


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "boinc-first"])
@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_rendered_templates(oracle_exe, boinc_project, variant, ours_first):
    add_app(boinc_project, "app")
    spec = dict(RENDERED[variant])
    write_app_templates(boinc_project, "app", **spec)
    names = _stage_inputs(boinc_project, len(spec["inputs"]), variant)
    if variant == "gzip":
        _gzip_beside(boinc_project, names[0])
    template = os.path.join(boinc_project.templates_dir, "app_in")
    row, theirs = _compare(oracle_exe, boinc_project, template, names, ours_first)
    for field in FIELDS:
        if field in spec:  # the template set it: BOINC parsed the same value
            assert float(theirs[field]) == float(row[field]) == float(spec[field]), field


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "boinc-first"])
def test_handwritten_template_and_job_command_line(oracle_exe, boinc_project, ours_first):
    add_app(boinc_project, "app")
    write_app_templates(boinc_project, "app", inputs=["x"])
    path = os.path.join(boinc_project.templates_dir, "hand_in")
    with open(path, "w") as f:
        f.write(HANDWRITTEN["copied_elements"])
    names = _stage_inputs(boinc_project, 1, "hand")
    row, theirs = _compare(oracle_exe, boinc_project, path, names, ours_first,
                           command_line="--from-job 1")
    assert row["size_class"] == int(theirs["size_class"]) == 1
    assert row["min_quorum"] == int(theirs["min_quorum"]) == 1


def test_constant_file(oracle_exe, boinc_project):
    """A <physical_name> file already in the hierarchy with its .md5."""
    from boinc_pymw.boinc.create_work import write_md5_cache

    add_app(boinc_project, "app")
    write_app_templates(boinc_project, "app", inputs=["x"])
    path = boinc_project.download_path("shared.bin", create=True)
    with open(path, "wb") as f:
        f.write(b"shared data\n")
    write_md5_cache(path, "a1b2" * 8, 12.0)   # BOINC trusts the cache; so must we
    template = os.path.join(boinc_project.templates_dir, "const_in")
    with open(template, "w") as f:
        f.write("<input_template><file_info><physical_name>shared.bin</physical_name>"
                "</file_info><file_info></file_info><workunit><file_ref><open_name>s</open_name>"
                "</file_ref><file_ref><open_name>j</open_name></file_ref></workunit>"
                "</input_template>")
    names = _stage_inputs(boinc_project, 1, "const")
    row, theirs = _compare(oracle_exe, boinc_project, template, names, True)
    assert "<md5_cksum>" + "a1b2" * 8 in theirs["xml_doc"]


def test_rendered_template_is_accepted_verbatim(oracle_exe, boinc_project):
    """render_input_template's text straight into process_input_template."""
    text = render_input_template([InputFile("a", sticky=True), "b"], command_line="-q",
                                 min_quorum=1, target_nresults=1)
    template = os.path.join(boinc_project.path, "t_in")
    with open(template, "w") as f:
        f.write(text)
    names = _stage_inputs(boinc_project, 2, "verbatim")
    theirs = parse_fields(run_oracle(oracle_exe, "template", boinc_project.path, template,
                                     *names))
    assert theirs["retval"] == "0"
    assert "<open_name>a</open_name>" in theirs["xml_doc"]
    assert "<command_line>\n-q\n</command_line>" in theirs["xml_doc"]
    assert theirs["min_quorum"] == "1"


def test_boinc_transitioner_makes_a_result_from_our_templates(oracle_exe, boinc_project):
    """libsched's create_result (the transitioner's) on our workunit and output template."""
    from lxml import etree

    from boinc_pymw.boinc.db import Result
    from boinc_pymw.boinc.states import ServerState
    from boinc_pymw.templates import OutputFile

    app_id = add_app(boinc_project, "app")
    write_app_templates(boinc_project, "app", inputs=["in"],
                        outputs=[OutputFile("out", max_nbytes=1e7, copy_file=True),
                                 OutputFile("log", optional=True, no_validate=True)])
    wu_id = boinc_project.create_work("app", [("in.bin", b"abc")], name="tr_wu")
    theirs = parse_fields(run_oracle(oracle_exe, "create_result", boinc_project.path, wu_id,
                                     "0"))
    row = boinc_project.db.query_one("SELECT * FROM result WHERE id=%s", (int(theirs["id"]),))
    result = Result.from_row(row)
    assert result.name == "tr_wu_0" and result.workunitid == wu_id and result.appid == app_id
    assert result.server_state is ServerState.UNSENT
    doc = etree.fromstring(f"<r>{result.xml_doc_in}</r>".encode())
    names = [el.findtext("name") for el in doc.findall("file_info")]
    assert len(names) == 2 and all(n.startswith("tr_wu_0_r") for n in names)
    assert [n.rsplit("_", 1)[1] for n in names] == ["0", "1"]
    assert {el.findtext("url") for el in doc.findall("file_info")} == {
        boinc_project.config.upload_url}
    assert [el.findtext("max_nbytes") for el in doc.findall("file_info")] == [
        "10000000", "5000000"]
    refs = doc.findall("result/file_ref")
    assert [(r.findtext("file_name"), r.findtext("open_name")) for r in refs] == [
        (names[0], "out"), (names[1], "log")]
    assert refs[0].find("copy_file") is not None
    assert refs[1].find("optional") is not None and refs[1].find("no_validate") is not None
