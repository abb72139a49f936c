"""Render BOINC input (workunit) and output (result) templates from jinja2.

The templates live in ``app_templates/`` (``input_template.xml.j2``,
``output_template.xml.j2``); this module fills them from small typed
descriptions of the files, checks the values BOINC would choke on (XML
special characters, inconsistent quorum numbers) before anything is
written, and writes them where BOINC expects them::

    from boinc_pymw.templates import InputFile, OutputFile, write_app_templates
    write_app_templates(project, "myapp",
                        inputs=[InputFile("in.pkl", copy_file=True)],
                        outputs=[OutputFile("out.pkl", max_nbytes=10**7)],
                        min_quorum=2, target_nresults=2)
    # -> <project>/templates/myapp_in and myapp_out (BOINC's default names)

tests/oracle checks that libsched's process_input_template accepts what
``render_input_template`` produces and derives the same xml_doc as our
create-work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Optional, Union

from . import names
from ._xml import parse_document
from .errors import BoincPymwError


class TemplateError(BoincPymwError, ValueError):
    """A template value BOINC would reject or misread."""


#: Workunit fields an input template may carry, with their types; BOINC's
#: process_input_template moves them into workunit columns (not xml_doc).
TEMPLATE_WU_FIELDS = {
    "rsc_fpops_est": float,
    "rsc_fpops_bound": float,
    "rsc_memory_bound": float,
    "rsc_disk_bound": float,
    "rsc_bandwidth_bound": float,
    "delay_bound": int,
    "min_quorum": int,
    "target_nresults": int,
    "max_error_results": int,
    "max_total_results": int,
    "max_success_results": int,
}

#: BOINC's sample output template uses 5 MB; a result file larger than
#: max_nbytes is refused by the upload handler.
DEFAULT_MAX_NBYTES = 5_000_000

_XML_SPECIAL = set("<>&")


def check_xml_text(what: str, value: str) -> str:
    """``value`` goes into XML unescaped (BOINC's parser does not unescape)."""
    value = str(value)
    bad = _XML_SPECIAL & set(value)
    if bad:
        raise TemplateError(f"{what} {value!r} contains {''.join(sorted(bad))!r}; "
                            f"BOINC templates cannot carry <, > or &")
    return value


def check_file_name(what: str, name: str) -> str:
    """A BOINC file name, by the rules of :mod:`boinc_pymw.names` (length in
    bytes, no control characters, separators, '..' or XML specials)."""
    try:
        return names.check_file_name(what, name)
    except names.BadName as exc:
        raise TemplateError(str(exc)) from None


@dataclass
class InputFile:
    """One input file of a workunit, as the application opens it."""

    open_name: str
    copy_file: bool = False      # copy into the slot dir instead of a soft link
    sticky: bool = False         # client keeps it after the workunit ends
    no_delete: bool = False      # file_deleter leaves it in the download dir
    report_on_rpc: bool = False  # client reports it in scheduler requests
    gzip: bool = False           # serve name.gz too (must be staged beside it)

    def __post_init__(self):
        check_file_name("input open_name", self.open_name)


@dataclass
class OutputFile:
    """One output file of a result, as the application writes it."""

    open_name: str
    max_nbytes: int = DEFAULT_MAX_NBYTES
    copy_file: bool = False      # the app writes it in the slot dir; client copies it back
    optional: bool = False       # a missing file is not an error
    no_validate: bool = False    # the validator ignores it

    def __post_init__(self):
        check_file_name("output open_name", self.open_name)
        if not float(self.max_nbytes) > 0:
            raise TemplateError(f"output {self.open_name!r}: max_nbytes must be > 0, "
                                f"not {self.max_nbytes!r}")


FileSpec = Union[str, dict, InputFile, OutputFile]


def _as(cls, spec):
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, str):
        return cls(spec)
    if isinstance(spec, dict):
        try:
            return cls(**spec)
        except TypeError as exc:
            raise TemplateError(f"bad {cls.__name__} description {spec!r}: {exc}") from None
    raise TemplateError(f"cannot make a {cls.__name__} from {spec!r}")


def check_wu_fields(fields: dict, *, relations: bool = True) -> dict:
    """Type-check template/workunit fields and (``relations``) the quorum rules.

    BOINC refuses zero replication numbers, max_error_results or
    max_success_results above max_total_results, and target_nresults above
    max_success_results; a min_quorum above target_nresults would never be
    reached, so it is refused as well.
    """
    checked = {}
    for name, value in fields.items():
        if name not in TEMPLATE_WU_FIELDS:
            raise TemplateError(f"unknown workunit field {name!r} (known: "
                                f"{', '.join(TEMPLATE_WU_FIELDS)})")
        kind = TEMPLATE_WU_FIELDS[name]
        try:
            number = kind(value)
            if kind is int and float(value) != number:
                raise ValueError
        except (TypeError, ValueError):
            raise TemplateError(f"{name} must be {'an integer' if kind is int else 'a number'}, "
                                f"not {value!r}") from None
        if number <= 0:
            raise TemplateError(f"{name} must be > 0, not {value!r}")
        checked[name] = number
    if relations:
        check_replication(checked)
    return checked


def check_replication(f: dict) -> None:
    """The relations between replication numbers that are present in ``f``."""
    def over(a, b):
        return a in f and b in f and f[a] > f[b]

    for small, big in (("max_error_results", "max_total_results"),
                       ("max_success_results", "max_total_results"),
                       ("target_nresults", "max_success_results"),
                       ("min_quorum", "target_nresults")):
        if over(small, big):
            raise TemplateError(f"invalid quorum numbers: {small}={f[small]} exceeds "
                                f"{big}={f[big]}")


def _format(value) -> str:
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def _environment():
    import jinja2

    import boinc_pymw.app_templates as package

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.dirname(package.__file__)),
        autoescape=False,  # values are checked by check_xml_text instead
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_input_template(inputs: Iterable[FileSpec] = (), command_line: Optional[str] = None,
                          **wu_fields) -> str:
    """The text of an input template for ``inputs`` (in create-work file order)."""
    files = [_as(InputFile, spec) for spec in inputs]
    if command_line is not None:
        command_line = check_xml_text("command_line", command_line).strip()
    fields = check_wu_fields(wu_fields)
    ordered = [(name, _format(fields[name])) for name in TEMPLATE_WU_FIELDS if name in fields]
    return _environment().get_template("input_template.xml.j2").render(
        files=files, command_line=command_line or None, wu_fields=ordered)


def render_output_template(outputs: Iterable[FileSpec]) -> str:
    """The text of an output (result) template for ``outputs``."""
    files = [_as(OutputFile, spec) for spec in outputs]
    if not files:
        raise TemplateError("an output template needs at least one output file")
    _check_unique_open_names("output template", [f.open_name for f in files])
    rendered = [dict(vars(f), max_nbytes=_format(float(f.max_nbytes))) for f in files]
    return _environment().get_template("output_template.xml.j2").render(outputs=rendered)


def _check_unique_open_names(source: str, open_names: list) -> None:
    """Two outputs opened under one name overwrite each other (in the slot, and in
    the results store, which files outputs by open name)."""
    seen = set()
    for name in open_names:
        if name in seen:
            raise TemplateError(f"{source}: two output files have the open_name {name!r}; "
                                f"each output needs its own name")
        seen.add(name)


def check_output_template(text: str, source: str = "output template") -> None:
    """Refuse an output template BOINC would mis-handle: malformed XML, no
    ``<result>``, or two ``<file_ref>``s with the same open_name."""
    root = parse_document(text, source, "output_template", TemplateError)
    result = root.find("result")
    if result is None:
        raise TemplateError(f"{source}: no <result> element")
    open_names = []
    for ref in result.findall("file_ref"):
        name = (ref.findtext("open_name") or "").strip()
        if not name:      # the client then opens the file by its physical name: unique
            continue
        open_names.append(check_file_name(f"{source}: <open_name>", name))
    _check_unique_open_names(source, open_names)


def template_paths(project_dir: str, app: str) -> tuple:
    """BOINC's default template locations: templates/<app>_in and templates/<app>_out."""
    check_file_name("app name", app)
    base = os.path.join(project_dir, "templates")
    return os.path.join(base, f"{app}_in"), os.path.join(base, f"{app}_out")


def write_app_templates(project, app: str, inputs: Iterable[FileSpec] = (),
                        outputs: Iterable[FileSpec] = ("out",),
                        command_line: Optional[str] = None, **wu_fields) -> tuple:
    """Render both templates and write them into the project's ``templates/``.

    ``project`` is a Project or a project directory. Both texts are rendered
    (and so checked) before either file is written. Returns the two paths.
    """
    project_dir = getattr(project, "path", None) or os.fspath(project)
    input_text = render_input_template(inputs, command_line=command_line, **wu_fields)
    output_text = render_output_template(outputs)
    in_path, out_path = template_paths(project_dir, app)
    templates_dir = os.path.dirname(in_path)
    if not os.path.isdir(templates_dir):
        os.makedirs(templates_dir, exist_ok=True)
        os.chmod(templates_dir, 0o771)       # as BOINC's boinc_mkdir, whatever the umask
    for path, text in ((in_path, input_text), (out_path, output_text)):
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o644)      # the project's other users read templates
            f.write(text)
        os.replace(tmp, path)
    return in_path, out_path
