"""Rendering input/output templates (libsched's view of them is in tests/oracle)."""

import pytest
from lxml import etree

from boinc_pymw.cli import main as cli_main
from boinc_pymw.templates import (InputFile, OutputFile, TemplateError, check_wu_fields,
                                  render_input_template, render_output_template,
                                  write_app_templates)


def test_input_template_structure():
    text = render_input_template(
        [InputFile("in.pkl", copy_file=True, sticky=True, no_delete=True), "data"],
        command_line="--seed 4", min_quorum=2, target_nresults=3, rsc_fpops_est=2e12,
        delay_bound=3600)
    root = etree.fromstring(text.encode())
    infos = root.findall("file_info")
    assert [i.findtext("number") for i in infos] == ["0", "1"]
    assert infos[0].find("sticky") is not None and infos[0].find("no_delete") is not None
    assert infos[1].find("sticky") is None
    refs = root.findall("workunit/file_ref")
    assert [(r.findtext("file_number"), r.findtext("open_name")) for r in refs] == [
        ("0", "in.pkl"), ("1", "data")]
    assert refs[0].find("copy_file") is not None and refs[1].find("copy_file") is None
    wu = root.find("workunit")
    assert wu.findtext("command_line") == "--seed 4"
    assert (wu.findtext("min_quorum"), wu.findtext("target_nresults")) == ("2", "3")
    assert float(wu.findtext("rsc_fpops_est")) == 2e12 and wu.findtext("delay_bound") == "3600"


def test_output_template_structure():
    text = render_output_template([OutputFile("out", max_nbytes=10**7, copy_file=True),
                                   {"open_name": "log", "optional": True, "no_validate": True}])
    root = etree.fromstring(text.encode())
    infos = root.findall("file_info")
    assert [i.find("name")[0].tag for i in infos] == ["OUTFILE_0", "OUTFILE_1"]
    assert [i.findtext("max_nbytes") for i in infos] == ["10000000", "5000000"]
    assert all(i.find("url")[0].tag == "UPLOAD_URL" for i in infos)
    refs = root.findall("result/file_ref")
    assert [r.findtext("open_name") for r in refs] == ["out", "log"]
    assert refs[0].find("copy_file") is not None and refs[0].find("optional") is None
    assert refs[1].find("optional") is not None and refs[1].find("no_validate") is not None


@pytest.mark.parametrize("name", ["a/b", "..", "", "x<y", "a&b", " lead"])
def test_bad_open_names(name):
    with pytest.raises(TemplateError):
        InputFile(name)
    with pytest.raises(TemplateError):
        render_output_template([name])


@pytest.mark.parametrize("fields, message", [
    ({"min_quorum": 0}, "must be > 0"),
    ({"min_quorum": 2.5}, "integer"),
    ({"target_nresults": "x"}, "integer"),
    ({"min_quorum": 3, "target_nresults": 2}, "min_quorum=3 exceeds target_nresults=2"),
    ({"max_error_results": 5, "max_total_results": 4}, "max_error_results=5"),
    ({"max_success_results": 5, "max_total_results": 4}, "max_success_results=5"),
    ({"target_nresults": 6, "max_success_results": 4}, "target_nresults=6"),
    ({"credit": 3}, "unknown workunit field"),
])
def test_bad_wu_fields(fields, message):
    with pytest.raises(TemplateError, match=message):
        check_wu_fields(fields)
    with pytest.raises(TemplateError):
        render_input_template(["in"], **fields)


def test_command_line_with_xml_specials_is_refused():
    with pytest.raises(TemplateError, match="command_line"):
        render_input_template(["in"], command_line="a > b")


def test_write_app_templates_writes_nothing_on_error(tmp_path):
    with pytest.raises(TemplateError):
        write_app_templates(tmp_path, "app", inputs=["in"], outputs=["bad/name"])
    assert not (tmp_path / "templates" / "app_in").exists()
    in_path, out_path = write_app_templates(tmp_path, "app", inputs=["in"], outputs=["out"])
    assert in_path == str(tmp_path / "templates" / "app_in")
    assert etree.parse(out_path).getroot().tag == "output_template"


def test_cli_render(tmp_path, capsys):
    (tmp_path / "cgi-bin").mkdir()
    from boinc_pymw.boinc.testing import write_config_xml

    write_config_xml(str(tmp_path), {"db_name": "x"})
    status = cli_main(["templates", "render", "--project", str(tmp_path), "--app", "sq",
                       "--input", "in.pkl:copy_file,sticky", "--output",
                       "out.pkl:optional,max_nbytes=2e6", "--min_quorum", "2",
                       "--target_nresults", "2", "--command-line=-v"])
    assert status == 0
    root = etree.parse(str(tmp_path / "templates" / "sq_in")).getroot()
    assert root.find("file_info/sticky") is not None
    assert root.findtext("workunit/min_quorum") == "2"
    out = etree.parse(str(tmp_path / "templates" / "sq_out")).getroot()
    assert out.findtext("file_info/max_nbytes") == "2000000"
    assert out.find("result/file_ref/optional") is not None
    assert cli_main(["templates", "render", "--project", str(tmp_path), "--app", "sq",
                     "--input", "in:bogus"]) == 1
    assert "unknown option 'bogus'" in capsys.readouterr().err


# -- two outputs under one open_name would overwrite each other (issue 13, case 6) ----------
def test_render_refuses_two_outputs_with_the_same_open_name():
    from boinc_pymw.templates import TemplateError, render_output_template

    with pytest.raises(TemplateError, match="open_name 'out'"):
        render_output_template(["out", {"open_name": "out", "optional": True}])


def test_an_output_template_with_a_repeated_open_name_is_refused_by_create_work(boinc_project):
    from boinc_pymw.boinc.create_work import CreateWorkError
    from boinc_pymw.boinc.testing import add_app
    from boinc_pymw.templates import write_app_templates

    add_app(boinc_project, "dup")
    _, out_path = write_app_templates(boinc_project, "dup", inputs=["in"], outputs=["a", "b"])
    text = open(out_path).read().replace("<open_name>b</open_name>", "<open_name>a</open_name>")
    open(out_path, "w").write(text)
    with pytest.raises(CreateWorkError, match="open_name 'a'"):
        boinc_project.create_work("dup", [("in_dup", b"x")], name="dup_1")
    assert boinc_project.db.query("SELECT id FROM workunit") == []
