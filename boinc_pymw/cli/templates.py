"""``boinc_pymw templates render``: write an app's input and output templates.

File specs are ``OPEN_NAME[:flag,flag,key=value]``, e.g.
``--input in.pkl:copy_file,sticky`` or ``--output out.pkl:optional,max_nbytes=1e7``.
"""

from __future__ import annotations

import sys

COMMAND = "templates"
HELP = "render BOINC input/output templates into a project's templates/ directory"

_INPUT_FLAGS = ("copy_file", "sticky", "no_delete", "report_on_rpc", "gzip")
_OUTPUT_FLAGS = ("copy_file", "optional", "no_validate")


def add_arguments(parser) -> None:
    from ..templates import TEMPLATE_WU_FIELDS

    sub = parser.add_subparsers(dest="templates_action", metavar="ACTION", required=True)
    render = sub.add_parser(
        "render", help="write templates/<app>_in and templates/<app>_out",
        description="Render the workunit (input) and result (output) templates for APP "
                    "and write them as templates/APP_in and templates/APP_out of the "
                    "project (BOINC's default names for create_work).")
    render.add_argument("--app", required=True, help="application name")
    render.add_argument("--project", default=None,
                        help="project directory (default: $BOINC_PROJECT_DIR, ., ..)")
    render.add_argument("--input", action="append", default=[], metavar="SPEC",
                        help="an input file, in create-work order: OPEN_NAME[:"
                             + ",".join(_INPUT_FLAGS) + "]")
    render.add_argument("--output", action="append", default=[], metavar="SPEC",
                        help="an output file: OPEN_NAME[:" + ",".join(_OUTPUT_FLAGS)
                             + ",max_nbytes=N]")
    render.add_argument("--command-line", dest="command_line", default=None,
                        help="command line passed to the application")
    for name in TEMPLATE_WU_FIELDS:
        render.add_argument(f"--{name}", default=None, metavar="N")
    render.add_argument("--stdout", action="store_true",
                        help="print both templates instead of writing files")


def parse_spec(spec: str, flags: tuple, allow_max_nbytes: bool) -> dict:
    """``name:flag,key=value`` -> dict of InputFile/OutputFile arguments."""
    from ..templates import TemplateError

    name, _, options = spec.partition(":")
    result = {"open_name": name}
    for option in filter(None, (o.strip() for o in options.split(","))):
        key, eq, value = option.partition("=")
        if key in flags and not eq:
            result[key] = True
        elif allow_max_nbytes and key == "max_nbytes" and eq:
            result[key] = value
        else:
            allowed = ", ".join(flags + (("max_nbytes=N",) if allow_max_nbytes else ()))
            raise TemplateError(f"{spec!r}: unknown option {option!r} (allowed: {allowed})")
    return result


def run(args) -> int:
    from ..boinc.project import Project
    from ..templates import (TEMPLATE_WU_FIELDS, TemplateError, render_input_template,
                             render_output_template, write_app_templates)

    inputs = [parse_spec(s, _INPUT_FLAGS, False) for s in args.input]
    outputs = [parse_spec(s, _OUTPUT_FLAGS, True) for s in args.output] or ["out"]
    for spec in outputs:
        if isinstance(spec, dict) and "max_nbytes" in spec:
            try:
                spec["max_nbytes"] = float(spec["max_nbytes"])
            except ValueError:
                raise TemplateError(f"max_nbytes must be a number, not "
                                    f"{spec['max_nbytes']!r}") from None
    fields = {n: getattr(args, n) for n in TEMPLATE_WU_FIELDS if getattr(args, n) is not None}
    if args.stdout:
        sys.stdout.write(render_input_template(inputs, args.command_line, **fields))
        sys.stdout.write(render_output_template(outputs))
        return 0
    project = Project(args.project)
    for path in write_app_templates(project, args.app, inputs, outputs,
                                    command_line=args.command_line, **fields):
        print(f"wrote {path}")
    return 0
