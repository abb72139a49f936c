"""``boinc_pymw install-app``: build, sign, stage and register an app version."""

from __future__ import annotations

COMMAND = "install-app"
HELP = "install a boinc-pymw app version into a BOINC project (like update_versions)"


def add_arguments(parser) -> None:
    parser.add_argument("--project", metavar="DIR",
                        help="project directory (default: $BOINC_PROJECT_DIR, '.', '..')")
    parser.add_argument("--app", required=True, metavar="NAME", help="application name")
    parser.add_argument("--version", dest="app_version", required=True, metavar="X.Y",
                        help="app version; version_num = 100*X + Y")
    parser.add_argument("--platform", dest="platforms", action="append", metavar="P",
                        help="BOINC platform (repeatable; default x86_64-pc-linux-gnu; "
                             "also windows_x86_64)")
    parser.add_argument("--code", action="extend", nargs="+", default=[], metavar="PKG_OR_FILES",
                        help="the task code: Python packages, modules or folders "
                             "(zipped as the app's app_code.zip)")
    parser.add_argument("--entry-point", dest="entry_points", action="append", metavar="MOD:NAME",
                        help="a function workunits may call (repeatable; default: every public "
                             "top-level function of --code); nothing else runs on volunteers")
    parser.add_argument("--requirements", metavar="FILE",
                        help="pip requirement lines: binary wheels for each platform, packed "
                             "into one signed file the launcher unpacks (lock re-used)")
    parser.add_argument("--wheel", dest="wheels", action="append", default=[], metavar="PATH",
                        help="a local wheel to pack with the requirements (repeatable)")
    parser.add_argument("--interpreter", metavar="DIR",
                        help="portable interpreter from 'boinc_pymw build-interpreter' "
                             "(a runtime dir or zip, or a dir with one per platform)")
    parser.add_argument("--sign-with", metavar="KEY",
                        help="code-signing private key (default: <key_dir>/code_sign_private)")
    parser.add_argument("--unsigned", action="store_true",
                        help="do not sign (only for test projects whose clients allow unsigned apps)")
    parser.add_argument("--launcher", action="append", default=[], metavar="PLATFORM=FILE",
                        help="use a prebuilt launcher for PLATFORM (default: build it once "
                             "per project)")
    parser.add_argument("--api-version", metavar="V",
                        help="BOINC API version for version.xml (default: from the runtime, "
                             "else 7.20.5)")
    parser.add_argument("--user-friendly-name", metavar="TEXT",
                        help="the app's name as volunteers see it (new apps only)")
    parser.add_argument("--plan-class", metavar="NAME",
                        help="install under this plan class (apps/APP/X.Y/PLATFORM__NAME) and add "
                             "its entry to plan_class_spec.xml: mt (all the host's cores), "
                             "nvidia_gpu (one NVIDIA GPU), or a class the project's "
                             "plan_class_spec.xml defines. Default for Linux: glibcX_Y, the "
                             "runtime's glibc floor")
    parser.add_argument("--no-glibc-floor", dest="glibc_floor", action="store_false",
                        help="do not keep the Linux version off hosts with an older glibc than "
                             "the runtime needs (no default plan class, no os_regex)")


def _launchers(items) -> dict:
    from ..boinc.app_install import InstallError

    launchers = {}
    for item in items:
        platform, sep, path = item.partition("=")
        if not sep or not platform or not path:
            raise InstallError(f"--launcher {item!r}: expected PLATFORM=FILE")
        launchers[platform] = path
    return launchers


def run(args) -> int:
    from ..boinc.app_install import install_app
    from ..boinc.project import Project

    project = Project(args.project)
    try:
        report = install_app(
            project, args.app, args.app_version, args.platforms or ["x86_64-pc-linux-gnu"],
            code=args.code, interpreter=args.interpreter, sign_with=args.sign_with,
            unsigned=args.unsigned, launchers=_launchers(args.launcher),
            plan_class=args.plan_class, glibc_floor=args.glibc_floor,
            api_version=args.api_version, user_friendly_name=args.user_friendly_name,
            entry_points=args.entry_points, requirements=args.requirements, wheels=args.wheels)
    finally:
        project.close()
    print(report.table())
    if not report.changed:
        print("nothing to do: this app version is already installed")
    return 0
