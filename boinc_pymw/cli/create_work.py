"""``boinc_pymw create-work``: BOINC's create_work, with its flags, in Python.

One workunit::

    boinc_pymw create-work --appname sq --wu_name sq_1 in_1.dat

Many (one transaction, one batch row; each stdin line is parsed like a
command line with per-job ``--wu_name``, ``--wu_template``,
``--result_template``, ``--command_line`` (appended to the global one),
``--priority`` and the input file names)::

    printf -- '--wu_name a in_a.dat\\n--wu_name b in_b.dat\\n' |
        boinc_pymw create-work --appname sq --stdin
"""

from __future__ import annotations

import argparse
import shlex
import sys

COMMAND = "create-work"
HELP = "create workunits (BOINC's create_work flags; --stdin for bulk)"

_FLOAT_FIELDS = ("rsc_fpops_est", "rsc_fpops_bound", "rsc_memory_bound", "rsc_disk_bound",
                 "rsc_bandwidth_bound", "opaque")
_INT_FIELDS = ("delay_bound", "min_quorum", "target_nresults", "max_error_results",
               "max_total_results", "max_success_results", "priority", "hr_class",
               "size_class", "app_version_num")


def add_arguments(parser) -> None:
    parser.add_argument("--appname", required=True, help="application name")
    parser.add_argument("--project", "--config_dir", dest="project", default=None,
                        help="project directory (default: $BOINC_PROJECT_DIR, ., ..)")
    parser.add_argument("--wu_name", default=None,
                        help="workunit name (with --stdin: the base of the default names)")
    parser.add_argument("--wu_template", default=None,
                        help="input template, relative to the project (default templates/APP_in)")
    parser.add_argument("--result_template", default=None,
                        help="output template inside the project (default templates/APP_out)")
    parser.add_argument("--command_line", default=None, help="application command line")
    parser.add_argument("--batch", type=int, default=None,
                        help="existing batch id (single workunit mode)")
    parser.add_argument("--batch_name", default=None,
                        help="name of the batch row --stdin creates")
    parser.add_argument("--keywords", default=None)
    for name in _FLOAT_FIELDS:
        parser.add_argument(f"--{name}", type=float, default=None, metavar="X")
    for name in _INT_FIELDS:
        parser.add_argument(f"--{name}", type=int, default=None, metavar="N")
    parser.add_argument("--stdin", action="store_true",
                        help="read one job per line from standard input")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("infiles", nargs="*", metavar="FILE",
                        help="input files (names in the download directory), in template order")


def _line_parser() -> argparse.ArgumentParser:
    line = argparse.ArgumentParser(prog="create-work --stdin line", add_help=False,
                                   exit_on_error=False)
    line.add_argument("--wu_name")
    line.add_argument("--wu_template")
    line.add_argument("--result_template")
    line.add_argument("--command_line")
    line.add_argument("--priority", type=int)
    line.add_argument("infiles", nargs="*")
    return line


def _fields(args) -> dict:
    fields = {}
    for name in _FLOAT_FIELDS + _INT_FIELDS + ("keywords",):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    return fields


def parse_stdin_jobs(lines, args) -> list:
    """Jobs (dicts for create_batch) from --stdin lines; errors name the line."""
    from ..boinc.create_work import CreateWorkError

    parser, jobs = _line_parser(), []
    for lineno, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            opts, unknown = parser.parse_known_args(shlex.split(text))
        except (argparse.ArgumentError, ValueError) as exc:
            raise CreateWorkError(f"stdin line {lineno}: {exc}") from None
        if unknown:
            raise CreateWorkError(f"stdin line {lineno}: unknown option(s) {' '.join(unknown)}")
        job = {"files": opts.infiles}
        if opts.wu_name:
            job["name"] = opts.wu_name
        if opts.wu_template:
            job["input_template"] = opts.wu_template
        if opts.result_template:
            job["result_template"] = opts.result_template
        command_line = " ".join(c for c in (args.command_line, opts.command_line) if c)
        if command_line:
            job["command_line"] = command_line
        if opts.priority is not None:
            job["priority"] = opts.priority
        jobs.append(job)
    return jobs


def run(args) -> int:
    from ..boinc.create_work import CreateWorkError
    from ..boinc.project import Project

    project = Project(args.project)
    fields = _fields(args)
    if args.stdin:
        if args.infiles:
            raise CreateWorkError("with --stdin, give input files on the stdin lines")
        if args.batch is not None:
            raise CreateWorkError("--stdin creates its own batch row; drop --batch")
        jobs = parse_stdin_jobs(sys.stdin, args)
        defaults = dict(fields, app=args.appname, input_template=args.wu_template,
                        result_template=args.result_template)
        if args.command_line:
            for job in jobs:
                job.setdefault("command_line", args.command_line)
        result = project.create_batch(jobs, batch_name=args.batch_name or args.wu_name,
                                      **defaults)
        print(f"batch {result.batch_id}: created {len(result.workunit_ids)} workunits "
              f"(ids {min(result.workunit_ids)}..{max(result.workunit_ids)})")
        return 0
    wu_id = project.create_work(args.appname, args.infiles, args.wu_template,
                                args.result_template, name=args.wu_name, batch=args.batch,
                                command_line=args.command_line, **fields)
    print(f"created workunit {wu_id}")
    return 0
