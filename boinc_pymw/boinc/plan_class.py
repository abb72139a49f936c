"""Plan classes: which hosts get an app version, and what its tasks are given.

BOINC's scheduler picks an app version for a host by platform, then by plan
class: with a ``plan_class_spec.xml`` in the project directory, each class is
an entry there (sched/plan_class_spec.cpp); without that file only the
scheduler's built-in classes exist. Note that the file *replaces* the
built-in classes: once it exists, a plan class without an entry is unknown
and its versions are never sent.

boinc-pymw writes three kinds of entries, each marked by a comment naming
boinc_pymw so that a later run can tell them from entries an admin wrote
(which it never changes):

* ``glibcX_Y``: the default class of a Linux version. Its ``<os_regex>``
  only admits hosts whose reported OS version names a glibc at or above the
  runtime's floor (a Linux client reports e.g. ``[5.15.0-91-generic|libc
  2.35 (Ubuntu GLIBC 2.35-0ubuntu3)]``; server 1.4.7 has no numeric libc
  test, only ``os_regex``);
* ``mt``: a multi-threaded CPU version (``max_threads``; the task is told
  how many threads it got through init_data.xml's ``ncpus``);
* ``nvidia_gpu``: one NVIDIA GPU per task (the task learns the device the
  client assigned through init_data.xml's ``gpu_device_num``).

``mt`` and ``nvidia_gpu`` carry the glibc floor too when a Linux runtime is
installed under them; their regex also admits Windows hosts (whose OS
version ends in ``(NN.NN.NNNN.NN)`` and never names a libc), so one class can
serve both platforms.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

from ..errors import BoincPymwError

SPEC_FILE = "plan_class_spec.xml"
MARK = "written by boinc_pymw install-app"

#: Classes boinc-pymw can write an entry for, and what that entry says.
MT = "mt"
NVIDIA_GPU = "nvidia_gpu"
#: Upper bound on threads for ``mt`` (the scheduler gives min(this, host's usable CPUs)).
MT_MAX_THREADS = 64
#: BOINC's XML_PARSER reads os_regex into a 256-byte buffer.
OS_REGEX_MAX = 255
#: A Windows client's os_version ends in "(major.minor.build.revision)".
_WINDOWS_OS_VERSION = r"\(([0-9]+\.){3}[0-9]+\)$"


class PlanClassError(BoincPymwError):
    """A plan class cannot be installed as asked; nothing was changed."""


# -- the glibc floor -------------------------------------------------------------------------
def parse_glibc(version: str) -> tuple:
    match = re.fullmatch(r"(\d{1,3})\.(\d{1,3})", str(version).strip())
    if not match:
        raise PlanClassError(f"glibc version {version!r}: expected MAJOR.MINOR, e.g. 2.36")
    return int(match.group(1)), int(match.group(2))


def glibc_class_name(floor: str) -> str:
    """The default plan class of a Linux version needing glibc ``floor``: glibc2_36."""
    major, minor = parse_glibc(floor)
    return f"glibc{major}_{minor}"


def _at_least(n: int) -> str:
    """POSIX ERE for a decimal number (no leading zeros) >= n: the same number of
    digits with a larger digit somewhere, or more digits."""
    digits = str(n)
    width = len(digits)
    last = digits[-1]
    parts = [digits[:-1] + (f"[{last}-9]" if last != "9" else "9")]
    for i in range(width - 2, -1, -1):
        low = int(digits[i]) + 1
        if low <= 9:
            parts.append(digits[:i] + (f"[{low}-9]" if low < 9 else "9") + "[0-9]" * (width - 1 - i))
    parts.append("[1-9]" + "[0-9]" * width + "[0-9]*")
    return "(" + "|".join(parts) + ")"


def glibc_os_regex(floor: str, *, windows: bool = True) -> str:
    """``os_regex`` admitting Linux hosts with glibc >= ``floor`` (and Windows hosts)."""
    major, minor = parse_glibc(floor)
    linux = rf"libc ({major}\.{_at_least(minor)}|{_at_least(major + 1)}\.[0-9])"
    regex = f"{linux}|{_WINDOWS_OS_VERSION}" if windows else linux
    assert len(regex) <= OS_REGEX_MAX, regex
    return regex


def host_glibc(os_version: str) -> Optional[tuple]:
    """The glibc a client reported in its OS version, as (major, minor), or None."""
    match = re.search(r"libc (\d+)\.(\d+)", os_version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


# -- entries -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One ``<plan_class>`` of plan_class_spec.xml boinc-pymw can write."""

    name: str
    children: tuple            # (tag, text or None for an empty element), in order

    def xml(self, indent: str = "    ") -> str:
        body = "".join(f"{indent}{indent}<{tag}/>\n" if text is None
                       else f"{indent}{indent}<{tag}>{text}</{tag}>\n"
                       for tag, text in self.children)
        return (f"{indent}<!-- {MARK}: {self.name} -->\n"
                f"{indent}<plan_class>\n{indent}{indent}<name>{self.name}</name>\n"
                f"{body}{indent}</plan_class>\n")

    def value(self, tag: str) -> Optional[str]:
        for t, text in self.children:
            if t == tag:
                return text
        return None


def known_entry(name: str, glibc_floor: Optional[str]) -> Optional[Entry]:
    """Our entry for class ``name`` (None if boinc-pymw does not know the class).

    ``glibc_floor`` (e.g. "2.36") adds the ``os_regex`` of a Linux runtime.
    """
    children: list = []
    if name == MT:
        children.append(("max_threads", str(MT_MAX_THREADS)))
    elif name == NVIDIA_GPU:
        children += [("gpu_type", "nvidia"), ("ngpus", "1"), ("cpu_frac", "1")]
    elif re.fullmatch(r"glibc\d+_\d+", name):
        own_floor = name[len("glibc"):].replace("_", ".")
        if glibc_floor is not None and parse_glibc(glibc_floor) != parse_glibc(own_floor):
            raise PlanClassError(f"plan class {name} means glibc >= {own_floor}, but the runtime "
                                 f"needs glibc >= {glibc_floor}")
        glibc_floor = own_floor
    else:
        return None
    if glibc_floor is not None:
        children.insert(0, ("os_regex", glibc_os_regex(glibc_floor)))
    return Entry(name, tuple(children))


# -- the spec file ------------------------------------------------------------------------------
_OUR_BLOCK = re.compile(
    r"[ \t]*<!-- " + re.escape(MARK) + r": (?P<name>[^ ]+) -->\s*<plan_class>.*?</plan_class>[ \t]*\n?",
    re.S)


@dataclass
class SpecFile:
    """plan_class_spec.xml as text, with which entries are ours."""

    path: str
    text: Optional[str]                       # None: the file does not exist
    entries: dict = field(default_factory=dict)   # name -> Entry-like dict of tag -> text
    ours: set = field(default_factory=set)

    @classmethod
    def read(cls, project_dir: str) -> "SpecFile":
        path = os.path.join(project_dir, SPEC_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return cls(path, None)
        except (OSError, UnicodeDecodeError) as exc:
            raise PlanClassError(f"cannot read {path}: {exc}") from None
        spec = cls(path, text)
        spec._parse()
        return spec

    def _parse(self) -> None:
        from lxml import etree

        try:
            root = etree.fromstring(self.text.encode("utf-8"),
                                    etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as exc:
            raise PlanClassError(f"{self.path} is not valid XML ({exc}); BOINC's scheduler "
                                 f"would refuse every plan class. Fix it first") from None
        if root.tag != "plan_classes":
            raise PlanClassError(f"{self.path}: root element is <{root.tag}>, expected "
                                 f"<plan_classes>")
        self.entries = {}
        for el in root.findall("plan_class"):
            name = (el.findtext("name") or "").strip()
            if name and name not in self.entries:       # BOINC uses the first of a name
                self.entries[name] = {c.tag: (c.text or "").strip() for c in el
                                      if isinstance(c.tag, str)}
        self.ours = {m.group("name") for m in _OUR_BLOCK.finditer(self.text)}

    def merged(self, wanted: list) -> tuple:
        """(new text, [(name, outcome)]) with ``wanted`` entries added or updated.

        An admin's entry is kept as it is; ours is replaced only to add a glibc
        floor it lacks; ours with another floor is an error.
        """
        text = self.text if self.text is not None else "<plan_classes>\n</plan_classes>\n"
        outcomes = []
        for entry in wanted:
            existing = self.entries.get(entry.name)
            if existing is None:
                close = text.rfind("</plan_classes>")
                if close < 0:
                    raise PlanClassError(f"{self.path} has no </plan_classes>")
                text = text[:close] + entry.xml() + text[close:]
                outcomes.append((entry.name, "added"))
                continue
            if entry.name not in self.ours:
                note = ""
                floor = entry.value("os_regex")
                if floor and not existing.get("os_regex"):
                    note = "; it has no <os_regex>, so hosts with an older glibc get this version"
                outcomes.append((entry.name, f"kept (the admin's entry{note})"))
                continue
            theirs = existing.get("os_regex")
            ours = entry.value("os_regex")
            if theirs == ours or (ours is None and theirs):
                outcomes.append((entry.name, "unchanged"))
                continue
            if theirs and ours and theirs != ours:
                raise PlanClassError(
                    f"plan class {entry.name} in {self.path} admits hosts by another glibc "
                    f"floor ({theirs!r}) than this runtime needs ({ours!r}); install it under "
                    f"another plan class name, or edit that entry by hand")
            text = _OUR_BLOCK.sub(lambda m: entry.xml() if m.group("name") == entry.name
                                  else m.group(0), text, count=0)
            outcomes.append((entry.name, "updated (glibc floor added)"))
        return text, outcomes


def write_spec(path: str, text: str) -> None:
    """Replace plan_class_spec.xml atomically, readable by the scheduler (0644)."""
    from .._atomic import write_atomic

    write_atomic(path, text.encode("utf-8"))
    os.chmod(path, 0o644)


# -- what a host gets: the scheduler's answer, for boinc-local ----------------------------------
@dataclass(frozen=True)
class HostUsage:
    """What the scheduler would give a task of a plan class on this host."""

    avg_ncpus: float = 1.0
    gpu_type: str = ""          # the client's name: "NVIDIA"
    gpu_device_num: int = -1


def local_os_version() -> str:
    """This host's OS version as a Linux BOINC client reports it (kernel and libc)."""
    release = os.uname().release
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc = ""
    version = libc.split()[-1] if libc else ""
    return f"[{release}|libc {version}]" if version else release


def nvidia_devices() -> list:
    """Device numbers of this host's NVIDIA GPUs (``nvidia-smi -L``), [] without one."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                             timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(m.group(1)) for m in re.finditer(r"^GPU (\d+):", out, re.M)]


def local_host_usage(project_dir: str, plan_class: str) -> HostUsage:
    """The scheduler's decision for a ``plan_class`` version on *this* machine, from
    the project's plan_class_spec.xml (what boinc-local gives its tasks); a host the
    scheduler would refuse is an error naming the reason."""
    if not plan_class:
        return HostUsage()
    spec = SpecFile.read(project_dir)
    entry = spec.entries.get(plan_class)
    if entry is None:
        raise PlanClassError(f"plan class {plan_class!r} has no entry in "
                             f"{os.path.join(project_dir, SPEC_FILE)}: the scheduler would "
                             f"never send that version")
    regex = entry.get("os_regex")
    if regex and not re.search(regex, local_os_version()):
        raise PlanClassError(f"plan class {plan_class}: this host's OS version "
                             f"{local_os_version()!r} does not match its os_regex {regex!r}; "
                             f"the scheduler would not send that version here")
    ncpus = os.cpu_count() or 1
    if entry.get("gpu_type"):
        if entry["gpu_type"].lower() != "nvidia":
            raise PlanClassError(f"plan class {plan_class}: boinc-local emulates NVIDIA GPUs "
                                 f"only, not {entry['gpu_type']!r}")
        devices = nvidia_devices()
        if not devices:
            raise PlanClassError(f"plan class {plan_class} needs an NVIDIA GPU and this "
                                 f"machine has none (nvidia-smi -L lists no GPU)")
        return HostUsage(avg_ncpus=float(entry.get("avg_ncpus") or entry.get("cpu_frac") or 0.1),
                         gpu_type="NVIDIA", gpu_device_num=devices[0])
    if entry.get("avg_ncpus"):
        return HostUsage(avg_ncpus=float(entry["avg_ncpus"]))
    max_threads = int(entry.get("max_threads") or 1)
    return HostUsage(avg_ncpus=float(min(max_threads, ncpus)))


def plan_class_of(version_dir) -> str:
    """The plan class of ``apps/APP/X.Y/PLATFORM__CLASS`` ("" for ``PLATFORM``)."""
    name = os.path.basename(os.path.normpath(os.fspath(version_dir)))
    return name.split("__", 1)[1] if "__" in name else ""


# -- what install-app needs ------------------------------------------------------------------------
LINUX = "x86_64-pc-linux-gnu"


def classes_for(platforms, manifests: dict, plan_class: Optional[str], glibc_floor: bool) -> dict:
    """platform -> (plan class, glibc floor or None) for an install.

    ``manifests`` are the runtimes' runtime.json. A Linux runtime that records
    ``minimum_glibc`` puts its version under ``glibcX_Y`` when no plan class is
    asked for, and its floor into the class's entry otherwise (unless
    ``glibc_floor`` is False).
    """
    from ..names import BadName, check_plan_class

    if plan_class is not None:
        try:
            check_plan_class(plan_class)
        except BadName as exc:
            raise PlanClassError(str(exc)) from None
    chosen = {}
    for platform in platforms:
        floor = None
        if platform == LINUX and glibc_floor:
            floor = manifests.get(platform, {}).get("minimum_glibc") or None
            if floor is not None:
                floor = ".".join(map(str, parse_glibc(floor)))
        name = plan_class if plan_class is not None else (glibc_class_name(floor) if floor else "")
        chosen[platform] = (name, floor)
    return chosen


@dataclass
class SpecChange:
    """The plan_class_spec.xml an install needs, checked before anything is written."""

    spec: SpecFile
    new_text: Optional[str]            # None: nothing to write
    outcomes: list                     # (class name, outcome)

    def write(self) -> None:
        if self.new_text is not None:
            write_spec(self.spec.path, self.new_text)

    def undo(self) -> None:
        """Put back what was there (nothing, or the old text)."""
        if self.new_text is None:
            return
        if self.spec.text is None:
            try:
                os.unlink(self.spec.path)
            except FileNotFoundError:
                pass
        else:
            write_spec(self.spec.path, self.spec.text)


def plan_spec_change(project_dir: str, chosen: dict, db) -> SpecChange:
    """The entries the chosen classes need, merged into the project's spec file.

    Refuses a class boinc-pymw cannot write an entry for and the admin has
    not written either, and refuses to *create* the file while app versions
    of other plan classes exist (the file would hide BOINC's built-in classes
    from them).
    """
    spec = SpecFile.read(project_dir)
    floors: dict = {}
    for name, floor in chosen.values():
        if name:
            if floor is not None or name not in floors:
                floors[name] = floor if floor is not None else floors.get(name)
    wanted = []
    for name, floor in floors.items():
        entry = known_entry(name, floor)
        if entry is None:
            if name in spec.entries:
                wanted_note = ""
                if floor and not spec.entries[name].get("os_regex"):
                    wanted_note = (f"; it has no <os_regex>, so hosts with glibc below {floor} "
                                   f"get this version")
                spec_outcome = (name, f"kept (the admin's entry{wanted_note})")
                wanted.append(spec_outcome)
                continue
            raise PlanClassError(
                f"plan class {name!r} has no entry in {spec.path}, and boinc_pymw writes entries "
                f"only for {MT}, {NVIDIA_GPU} and glibcX_Y. Write a <plan_class> for it there "
                f"(see BOINC's AppPlanSpec), then install again")
        wanted.append(entry)
    entries = [w for w in wanted if isinstance(w, Entry)]
    kept = [w for w in wanted if not isinstance(w, Entry)]
    if not entries:
        return SpecChange(spec, None, kept)
    if spec.text is None:
        names = {e.name for e in entries}
        others = sorted({r["plan_class"] for r in db.query(
            "SELECT DISTINCT plan_class FROM app_version WHERE plan_class<>'' AND deprecated=0")}
            - names)
        if others:
            raise PlanClassError(
                f"the project has app versions of plan class(es) {', '.join(others)} and no "
                f"{SPEC_FILE}; creating it would make the scheduler forget its built-in classes "
                f"for them. Write {os.path.join(project_dir, SPEC_FILE)} with entries for those "
                f"classes first")
    text, outcomes = spec.merged(entries)
    changed = text != (spec.text or "")
    return SpecChange(spec, text if changed else None, kept + outcomes)
