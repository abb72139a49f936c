"""``boinc_pymw daemon add|remove|list``: a project's ``<daemons>`` in config.xml.

Edits only the ``<daemons>`` element (lxml, no entities, comments and the
rest of the file kept as they are). Each added daemon gets its own
``<output>``, ``<lock_file>`` and ``<pid_file>`` named after the program,
the app and the ``--mod`` share, because bin/start refuses to start a second
daemon whose lock file is taken (two apps' validators would collide).

The ready daemons can be named by kind (``bitwise_validator``,
``numeric_validator``, ``result_store_assimilator``, ``script_validator``,
``script_assimilator``); a small launcher ``bin/pymw_<kind>`` that runs
them with this Python is written into the project::

    boinc_pymw daemon add bitwise_validator --app myapp -d 3
    boinc_pymw daemon add my_validator.py --app myapp --mod 2 0
    boinc_pymw daemon list
    boinc_pymw daemon remove pymw_bitwise_validator --app myapp -d 3

``daemon quarantine`` lists the workunits the daemons set aside after their
handler failed on them (``<project>/quarantine/``), and ``--release WU``
lets them try one again::

    boinc_pymw daemon quarantine [--app myapp] [--release myapp_17]
"""

from __future__ import annotations

import argparse
import os
import shlex
import stat
import sys
import tempfile

COMMAND = "daemon"
HELP = ("add, remove or list daemons in a BOINC project's config.xml; list or release "
        "the workunits they set aside")

#: kind -> (module, leading arguments)
BUILTIN_DAEMONS = {
    "bitwise_validator": ("boinc_pymw.daemons.bitwise_validator", []),
    "numeric_validator": ("boinc_pymw.daemons.numeric_validator", []),
    "result_store_assimilator": ("boinc_pymw.daemons.result_store", []),
    "script_validator": ("boinc_pymw.daemons.script_adapters", ["validator"]),
    "script_assimilator": ("boinc_pymw.daemons.script_adapters", ["assimilator"]),
}


def add_arguments(parser) -> None:
    parser.add_argument("--project", default=None,
                        help="project directory (default: $BOINC_PROJECT_DIR, ., ..)")
    sub = parser.add_subparsers(dest="daemon_action", metavar="ACTION", required=True)
    sub.add_parser("list", help="show the <daemons> entries")
    add = sub.add_parser("add", help="add a <daemon> (CMD as bin/start will run it)")
    add.add_argument("--host", default=None, help="<host> (default: config's host)")
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    add.add_argument("--output", default=None, help="log file name (default derived from CMD)")
    add.add_argument("--lock_file", default=None)
    add.add_argument("--pid_file", default=None)
    add.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD ...")
    remove = sub.add_parser("remove", help="remove the <daemon> whose <cmd> is CMD")
    remove.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD ...")
    quarantine = sub.add_parser("quarantine",
                                help="list the workunits set aside after handler failures")
    quarantine.add_argument("--app", default=None, help="only this app")
    quarantine.add_argument("--release", action="append", default=[], metavar="WU",
                            help="let the daemons try this workunit (name or id) again")


# -- config.xml ---------------------------------------------------------------------------
def _parser():
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           remove_blank_text=False)


def read_config(path: str):
    from lxml import etree

    from ..boinc.config import ConfigError

    try:
        return etree.parse(path, _parser())
    except (OSError, etree.XMLSyntaxError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _prolog_and_epilog(data: bytes) -> tuple[bytes, bytes]:
    """The bytes before the root element (declaration, comments) and after it, verbatim."""
    i = 0
    while True:
        while i < len(data) and data[i:i + 1].isspace():
            i += 1
        for opener, closer in ((b"<?", b"?>"), (b"<!--", b"-->"), (b"<!", b">")):
            if data.startswith(opener, i):
                i = data.index(closer, i) + len(closer)
                break
        else:
            break
    end = data.rstrip()
    tail = data[len(end):]
    return data[:i], tail


def write_config(tree, path: str) -> None:
    """Write back atomically; what lies outside the root element is kept byte for byte."""
    from lxml import etree

    with open(path, "rb") as f:
        prolog, epilog = _prolog_and_epilog(f.read())
    encoding = tree.docinfo.encoding or "utf-8"
    text = prolog + etree.tostring(tree.getroot(), encoding=encoding,
                                   xml_declaration=False) + (epilog or b"\n")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config.xml.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _daemon_fields(el) -> dict:
    return {child.tag: (child.text or "").strip() for child in el if isinstance(child.tag, str)}


def list_daemons(tree) -> list[dict]:
    return [_daemon_fields(el) for el in tree.getroot().findall("daemons/daemon")]


def normalize_cmd(words) -> str:
    return " ".join(shlex.quote(w) for w in words)


def derived_base(words: list) -> str:
    """``<program>_<app>[_mod<N>_<R>]``: distinct per app and --mod share."""
    base = os.path.basename(words[0])
    for i, w in enumerate(words):
        if w.lstrip("-") == "app" and i + 1 < len(words):
            base += f"_{words[i + 1]}"
        if w.lstrip("-") == "mod" and i + 2 < len(words):
            base += f"_mod{words[i + 1]}_{words[i + 2]}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)


def _indent_of(el, fallback: str) -> str:
    prev = el.getprevious()
    text = prev.tail if prev is not None else el.getparent().text
    return text if text and text.strip() == "" else fallback


def add_daemon(tree, cmd: str, *, output=None, lock_file=None, pid_file=None, host=None,
               disabled=False) -> dict:
    from lxml import etree

    from ..errors import BoincPymwError

    root = tree.getroot()
    words = shlex.split(cmd)
    base = derived_base(words)
    entry = {"cmd": cmd, "output": output or f"{base}.log",
             "lock_file": lock_file or f"{base}.lock", "pid_file": pid_file or f"{base}.pid"}
    if host:
        entry["host"] = host
    if disabled:
        entry["disabled"] = "1"
    for existing in list_daemons(tree):
        if shlex.split(existing.get("cmd", "")) == words:
            raise BoincPymwError(f"config.xml already has a daemon {cmd!r}")
        for key in ("output", "lock_file", "pid_file"):
            if existing.get(key) and existing.get(key) == entry[key]:
                raise BoincPymwError(f"<{key}>{entry[key]}</{key}> is already used by "
                                     f"{existing.get('cmd')!r}; give another --{key}")
    daemons = root.find("daemons")
    if daemons is None:
        daemons = etree.SubElement(root, "daemons")
        last = daemons.getprevious()
        daemons.tail = last.tail if last is not None and last.tail else "\n"
        if last is not None:
            last.tail = "\n" + (last.tail or "\n").split("\n")[-1]
        daemons.text = "\n    "
    existing_items = daemons.findall("daemon")
    item_indent = (_indent_of(existing_items[0], "\n    ") if existing_items
                   else (daemons.text if daemons.text and not daemons.text.strip() else "\n    "))
    child_indent = item_indent + "    "
    if existing_items:
        first_children = list(existing_items[0])
        if first_children:
            child_indent = existing_items[0].text or child_indent
    closing = item_indent[:-4] if item_indent.endswith("    ") else "\n"
    el = etree.Element("daemon")
    el.text = child_indent
    for i, (key, value) in enumerate(entry.items()):
        child = etree.SubElement(el, key)
        child.text = value
        child.tail = child_indent if i < len(entry) - 1 else item_indent
    if len(daemons):
        last = daemons[-1]
        el.tail = last.tail
        last.tail = item_indent
        daemons.append(el)
    else:
        daemons.text = item_indent
        el.tail = closing
        daemons.append(el)
    return entry


def remove_daemon(tree, cmd: str) -> int:
    words = shlex.split(cmd)
    removed = 0
    for el in tree.getroot().findall("daemons/daemon"):
        if shlex.split(_daemon_fields(el).get("cmd", "")) == words:
            parent = el.getparent()
            prev = el.getprevious()
            if prev is not None:
                prev.tail = el.tail
            else:
                parent.text = el.tail if len(parent) > 1 else (el.tail or "")
            parent.remove(el)
            removed += 1
    return removed


def install_launcher(project_dir: str, kind: str) -> str:
    """Write ``bin/pymw_<kind>``: runs the ready daemon with this Python."""
    module, lead = BUILTIN_DAEMONS[kind]
    name = f"pymw_{kind}"
    path = os.path.join(project_dir, "bin", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    argv = [sys.executable, "-m", module, *lead]
    script = ("#!/bin/sh\n# boinc_pymw ready daemon; started by bin/start from tmp_<host>\n"
              f"exec {' '.join(shlex.quote(a) for a in argv)} \"$@\"\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write(script)
    os.chmod(path, 0o755)
    return name


def quarantine_files(project_dir: str, app=None) -> list:
    """(app, kind, path) of each quarantine file of the project."""
    folder = os.path.join(project_dir, "quarantine")
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        parts = name.rsplit(".", 2)
        if len(parts) == 3 and parts[2] == "jsonl" and (app is None or parts[0] == app):
            out.append((parts[0], parts[1], os.path.join(folder, name)))
    return out


def run_quarantine(args, project_dir: str) -> int:
    from ..boinc.quarantine import Quarantine
    from ..errors import BoincPymwError

    files = quarantine_files(project_dir, args.app)
    wanted = set(args.release)
    released = set()
    for app, kind, path in files:
        q = Quarantine(path, kind, app)
        for wu_id, wu_name in sorted(q.quarantined.items()):
            if wanted & {wu_name, str(wu_id)}:
                q.release(wu_id, wu_name)
                released |= wanted & {wu_name, str(wu_id)}
                print(f"released {app} {kind}: WU#{wu_id} {wu_name}")
            elif not wanted:
                print(f"{app} {kind}: WU#{wu_id} {wu_name} set aside after "
                      f"{q.failures.get(wu_id, 0)} failures (see {path})")
    missing = wanted - released
    if missing:
        raise BoincPymwError(f"not set aside by any daemon: {', '.join(sorted(missing))}")
    if not wanted and not any(Quarantine(p, k, a).quarantined for a, k, p in files):
        print("no workunit is set aside")
    return 0


def run(args) -> int:
    from ..boinc.project import find_project_dir
    from ..errors import BoincPymwError

    project_dir = find_project_dir(args.project)
    if args.daemon_action == "quarantine":
        return run_quarantine(args, project_dir)
    path = os.path.join(project_dir, "config.xml")
    tree = read_config(path)
    if args.daemon_action == "list":
        for d in list_daemons(tree):
            flags = " (disabled)" if d.get("disabled") not in (None, "", "0") else ""
            extra = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("cmd", "disabled"))
            print(f"{d.get('cmd', '?')}{flags}" + (f"  [{extra}]" if extra else ""))
        return 0
    words = list(args.cmd)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise BoincPymwError("give the daemon's command, e.g. bitwise_validator --app myapp")
    if args.daemon_action == "add":
        if words[0] in BUILTIN_DAEMONS:
            words[0] = install_launcher(project_dir, words[0])
        entry = add_daemon(tree, normalize_cmd(words), output=args.output,
                           lock_file=args.lock_file, pid_file=args.pid_file, host=args.host,
                           disabled=args.disabled)
        write_config(tree, path)
        print(f"added <daemon> {entry['cmd']} (output {entry['output']}, "
              f"lock {entry['lock_file']}); run bin/stop && bin/start to start it")
        return 0
    if words[0] in BUILTIN_DAEMONS:
        words[0] = f"pymw_{words[0]}"
    removed = remove_daemon(tree, normalize_cmd(words))
    if not removed:
        raise BoincPymwError(f"no daemon with <cmd>{normalize_cmd(words)}</cmd> in {path}")
    write_config(tree, path)
    print(f"removed {removed} <daemon> entr{'y' if removed == 1 else 'ies'}")
    return 0
