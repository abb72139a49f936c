"""``boinc_pymw run-local SCRIPT [ARGS...]``: run a Master script in the local debug mode.

The script runs in this process as ``python SCRIPT`` would run it, with
``-i boinc-local`` and the local options put in front of its own arguments
(so scripts built on ``add_arguments`` / ``Master.from_args`` pick them up)
and ``BOINC_PYMW_INTERFACE=boinc-local`` set (so ``Master()`` without an
interface does too). Every call then goes through the whole BOINC pipeline
on this machine: see ``boinc_pymw.backends.boinc.local``.
"""

from __future__ import annotations

import os
import runpy
import sys

COMMAND = "run-local"
HELP = "run a Master script through the whole BOINC pipeline on this machine (no server)"


def add_arguments(parser) -> None:
    parser.add_argument("-p", "--project", metavar="DIR",
                        help="take the app's templates and installed app version from this "
                             "project (default: the templates install-app writes, and an app "
                             "version built here)")
    parser.add_argument("--app", metavar="NAME", help="application name (default boinc_pymw)")
    parser.add_argument("--batch", metavar="NAME",
                        help="batch name (reuse one to resume an interrupted run)")
    parser.add_argument("--quorum", type=int, metavar="N", help="replicas per workunit")
    parser.add_argument("--workdir", metavar="DIR", help="where slots and results go")
    parser.add_argument("--validator", metavar="MODULE:CLASS", help="the project's validator")
    parser.add_argument("--assimilator", metavar="MODULE:CLASS",
                        help="the project's assimilator (must write the results store)")
    parser.add_argument("-n", "--workers", type=int, metavar="N", help="slots run at once")
    parser.add_argument("script", help="the Python script that uses boinc_pymw.Master")
    parser.add_argument("script_args", nargs="...", help="the script's own arguments")


def forwarded_options(args) -> list[str]:
    argv = ["-i", "boinc-local"]
    for option, value in (("--project", args.project), ("--app", args.app),
                          ("--batch", args.batch), ("--quorum", args.quorum),
                          ("--workdir", args.workdir), ("--validator", args.validator),
                          ("--assimilator", args.assimilator), ("--workers", args.workers)):
        if value is not None:
            argv += [option, str(value)]
    return argv


def run(args) -> int:
    from ..errors import BoincPymwError

    script = os.path.abspath(args.script)
    if not os.path.isfile(script):
        raise BoincPymwError(f"script {args.script} does not exist")
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    saved_env = os.environ.get("BOINC_PYMW_INTERFACE")
    sys.argv = [script, *forwarded_options(args), *args.script_args]
    sys.path.insert(0, os.path.dirname(script))
    os.environ["BOINC_PYMW_INTERFACE"] = "boinc-local"
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        if saved_env is None:
            os.environ.pop("BOINC_PYMW_INTERFACE", None)
        else:
            os.environ["BOINC_PYMW_INTERFACE"] = saved_env
    return 0
