"""The ``boinc_pymw`` command.

Every module in this package that defines ``COMMAND`` becomes a subcommand;
adding one is a matter of dropping in a small module with::

    COMMAND = "create-work"          # the subcommand's name
    HELP = "one line for --help"
    def add_arguments(parser): ...   # argparse options
    def run(args) -> int: ...        # exit status
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .. import __version__


def _command_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "COMMAND"):
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boinc_pymw",
        description="Master-worker computing from one machine to BOINC volunteers.",
    )
    parser.add_argument("--version", action="version", version=f"boinc_pymw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(_command_modules(), key=lambda m: m.COMMAND):
        cmd = sub.add_parser(module.COMMAND, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    """Run one subcommand; its exit status.

    A reader that stops early (``boinc_pymw results ... | head``) ends the
    command quietly, as other command-line tools do: no traceback, exit
    status 141 (128 + SIGPIPE), and nothing more is written to the pipe.
    """
    try:
        return _main(argv)
    except BrokenPipeError:
        _silence_stdout()
        return 128 + 13


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):   # stdout is not a real file
        pass


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from ..errors import BoincPymwError

    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()      # a closed pipe shows here, inside main()
        return status
    except BoincPymwError as exc:
        print(f"boinc_pymw {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
