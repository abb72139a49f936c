"""create-work: stage input files and write workunit rows, as BOINC's create_work.

Data flow (one job or a batch of thousands)::

    job (app, files, input template, result template, fields)
      |  1. look up the app row            -> database errors surface here,
      |                                       before anything is touched
      |  2. parse each input template once  (TemplatePlan; cached per batch)
      |  3. stage each distinct file once:  download_dir/name or the given
      |     source -> dir_hier_path(name); md5 + nbytes (from the .md5 cache
      |     when cache_md5_info), same name with other bytes is an error
      |  4. build xml_doc exactly as libsched's process_input_template
      v  5. INSERT the workunit rows (multi-row, one transaction, batch row
            first) with transition_time=now so the transitioner makes results

Files are staged before any row is written and rows are written in one
transaction, so a failure leaves no workunit without its files and no part
of a batch. Staged files stay where they are: BOINC files are immutable, so a
retry reuses them.

Field precedence is BOINC's: defaults, then keyword arguments, then values
in the input template (the template wins). Defaults are those of the
project's own server release (``Project.server_release``, read from its
``db_revision`` file): 1.4's tools/backend_lib.h has min_quorum 2,
target_nresults 2, max_error_results 3, max_total_results 10,
max_success_results 6; 1.6's has 1 for each. Both have a 3600 GFLOP
estimate, 86400 GFLOP bound, 500 MB memory, 1 GB disk, 7 days delay bound.
As in 1.6, a target_nresults above a *default* max_success_results or
max_total_results raises it to match; on 1.4 it is an error, as there.
Limits given explicitly that make the quorum unreachable (max_total_results
below target_nresults, ...) are refused on both.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

from ..errors import BoincPymwError
from ..names import BadName, check_batch_name, check_workunit_name
from .._xml import parse_document
from ..templates import (TEMPLATE_WU_FIELDS, TemplateError, check_file_name, check_replication,
                         check_wu_fields)
from .hierarchy import dir_hier_path, dir_hier_url
from .md5 import md5_and_size
from .project_files import make_project_dir, make_readable

#: create_work's replication defaults by server release (tools/backend_lib.h DEFAULT_*).
REPLICATION_DEFAULTS = {
    "1.4": {"min_quorum": 2, "target_nresults": 2, "max_error_results": 3,
            "max_total_results": 10, "max_success_results": 6},
    "1.6": {"min_quorum": 1, "target_nresults": 1, "max_error_results": 1,
            "max_total_results": 1, "max_success_results": 1},
}

#: create_work's defaults in BOINC server 1.6 (tools/backend_lib.h DEFAULT_*);
#: a 1.4 project replaces the replication numbers by REPLICATION_DEFAULTS["1.4"].
WU_DEFAULTS = {
    "rsc_fpops_est": 3600e9,
    "rsc_fpops_bound": 86400e9,
    "rsc_memory_bound": 5e8,
    "rsc_disk_bound": 1e9,
    "rsc_bandwidth_bound": 0.0,
    "delay_bound": 7 * 86400,
    "min_quorum": 1,
    "target_nresults": 1,
    "max_error_results": 1,
    "max_total_results": 1,
    "max_success_results": 1,
}

#: Other workunit columns a job may set.
EXTRA_WU_FIELDS = {"priority": int, "opaque": float, "hr_class": int, "size_class": int,
                   "keywords": str, "app_version_num": int}

#: Elements process_input_template moves from <workunit> into columns.
_TEMPLATE_COLUMNS = dict(TEMPLATE_WU_FIELDS, batch=int, size_class=int)

XML_DOC_MAX = 65535

#: batch.state values (boinc_db_types.h BATCH_STATE_*).
BATCH_STATE_IN_PROGRESS = 1


class CreateWorkError(BoincPymwError):
    """A job could not be created; nothing half-done was left behind."""


# -- input template ------------------------------------------------------------------------

@dataclass
class _FileInfo:
    copied: list            # verbatim elements, in template order
    gzip: bool = False
    physical_name: Optional[str] = None   # a "constant" file already staged


@dataclass
class TemplatePlan:
    """An input template parsed once, applied to many jobs."""

    source: str
    file_infos: list
    # <workunit> children in order: ("file_ref", index, items, has_open_name),
    # ("command_line", text) or ("raw", copied xml)
    workunit: list
    columns: dict = field(default_factory=dict)   # consumed <workunit> fields
    has_command_line: bool = False

    @property
    def n_job_files(self) -> int:
        return sum(1 for f in self.file_infos if f.physical_name is None)


def _copy_element(el) -> str:
    """An element as BOINC's XML_PARSER::copy_element writes it: no attributes,
    inner text stripped of surrounding white space. (An empty element comes
    out as ``<x/>``; BOINC keeps ``<x></x>`` as written, lxml cannot tell.)"""
    from lxml import etree

    inner = (el.text or "") + "".join(
        etree.tostring(child, encoding="unicode", with_tail=True) for child in el)
    if el.text is None and len(el) == 0:
        return f"<{el.tag}/>"
    return f"<{el.tag}>{inner.strip()}</{el.tag}>"


def _elements(parent):
    return [el for el in parent if isinstance(el.tag, str)]


def parse_input_template(text: str, source: str = "<input template>") -> TemplatePlan:
    """Parse an input template; errors name the template and the problem."""
    import re

    empty = re.search(r"<(file_info|workunit|file_ref)\s*/>", text)
    if empty:
        raise CreateWorkError(f"{source}: BOINC's parser ignores an empty <{empty.group(1)}/>; "
                              f"write <{empty.group(1)}></{empty.group(1)}>")
    root = parse_document(text, source, "input_template", CreateWorkError)
    plan = TemplatePlan(source=source, file_infos=[], workunit=[])
    found_workunit = False
    for el in _elements(root):
        if el.tag == "file_info":
            plan.file_infos.append(_parse_file_info(el, source))
        elif el.tag == "workunit":
            found_workunit = True
            _parse_workunit(el, plan, source)
    if not found_workunit:
        raise CreateWorkError(f"{source}: no <workunit> element")
    refs = sum(1 for item in plan.workunit if item[0] == "file_ref")
    if refs != len(plan.file_infos):
        raise CreateWorkError(f"{source}: {refs} <file_ref>(s) but {len(plan.file_infos)} "
                              f"<file_info>(s); each input file needs one of each")
    return plan


def _parse_file_info(el, source: str) -> _FileInfo:
    info = _FileInfo(copied=[])
    for child in _elements(el):
        if child.tag == "number":
            continue
        if child.tag == "gzip":
            info.gzip = True
        elif child.tag == "physical_name":
            info.physical_name = check_file_name(f"{source}: <physical_name>",
                                                 (child.text or "").strip())
        elif child.tag in ("url", "md5_cksum", "nbytes"):
            raise CreateWorkError(f"{source}: remote input files (<{child.tag}> in "
                                  f"<file_info>) are not supported; stage the file instead")
        else:
            info.copied.append(_copy_element(child))
    return info


def _parse_workunit(el, plan: TemplatePlan, source: str) -> None:
    index = 0
    for child in _elements(el):
        if child.tag == "file_ref":
            items, has_open_name, copy_file = [], False, False
            for sub in _elements(child):
                if sub.tag in ("file_number", "file_name"):
                    continue
                if sub.tag == "open_name":
                    name = (sub.text or "").strip()
                    check_file_name(f"{source}: <open_name>", name)
                    items.append(("open_name", name))
                    has_open_name = True
                elif sub.tag == "copy_file":
                    items.append(("text", "    <copy_file/>\n"))
                    copy_file = True
                else:
                    items.append(("text", _copy_element(sub) + "\n"))
            if not has_open_name and not copy_file:
                raise CreateWorkError(f"{source}: <file_ref> number {index} has no "
                                      f"<open_name> (needed unless <copy_file/>)")
            if index >= len(plan.file_infos):
                raise CreateWorkError(f"{source}: <file_ref> number {index} names an "
                                      f"undefined file (only {len(plan.file_infos)} <file_info>)")
            plan.workunit.append(("file_ref", index, items, has_open_name))
            index += 1
        elif child.tag == "command_line":
            plan.has_command_line = True
            plan.workunit.append(("command_line", (child.text or "").strip()))
        elif child.tag in _TEMPLATE_COLUMNS:
            kind = _TEMPLATE_COLUMNS[child.tag]
            text = (child.text or "").strip()
            try:
                plan.columns[child.tag] = kind(float(text)) if kind is int else kind(text)
            except ValueError:
                raise CreateWorkError(f"{source}: <{child.tag}> must be a number, "
                                      f"not {text!r}") from None
        else:
            plan.workunit.append(("raw", _copy_element(child) + "\n"))


# -- files ---------------------------------------------------------------------------------------

@dataclass
class StagedFile:
    name: str
    path: str
    url: str
    md5: str
    nbytes: float
    gzipped_url: Optional[str] = None
    gzipped_nbytes: Optional[float] = None


def read_md5_cache(path: str) -> Optional[tuple]:
    """(md5, nbytes) from ``path.md5`` if it is a valid cache not older than the file.

    A stale cache (older than the file) is removed, as BOINC's got_md5_info does.
    """
    cache = path + ".md5"
    try:
        file_mtime = int(os.stat(path).st_mtime)
        cache_mtime = int(os.stat(cache).st_mtime)
        with open(cache, encoding="ascii") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    parts = text.split()
    if len(parts) != 2 or not text.endswith("\n") or text.count("\n") != 1:
        return None
    try:
        nbytes = float(parts[1])
    except ValueError:
        return None
    if cache_mtime < file_mtime:
        try:
            os.unlink(cache)
        except OSError:
            pass
        return None
    return parts[0], nbytes


def write_md5_cache(path: str, md5: str, nbytes: float) -> None:
    """Write ``path.md5`` as BOINC does ("%s %.15e\\n"); an existing one is left alone.

    Written in place with O_EXCL, as BOINC does: a torn cache file fails the
    format check in read_md5_cache and is simply recomputed.
    """
    try:
        fd = os.open(path + ".md5", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return
    make_readable(fd)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write("%s %.15e\n" % (md5, nbytes))


Source = Union[None, str, os.PathLike, bytes]


def ensure_public(path: str, name: str) -> None:
    """An input file someone put into the download hierarchy by hand must be
    readable by the web server (seen live: ``cp`` under umask 077 gave 0600 and
    Apache answered 403 to every client). Files in download/ are public anyway."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o004:
        return
    try:
        os.chmod(path, mode | 0o444)
    except OSError as exc:
        raise CreateWorkError(
            f"input file {name!r}: the web server cannot read {path} (mode {mode:04o}) and it "
            f"cannot be made readable ({exc.strerror or exc}): chmod a+r it") from None


#: threads of Stager.prefetch
STAGE_THREADS = 4


def _link_tmpfile(fd: int, path: str) -> None:
    """Give the unnamed file ``fd`` (O_TMPFILE) the name ``path``; FileExistsError if taken.

    ``linkat(AT_SYMLINK_FOLLOW)`` of ``/proc/self/fd/N``: Python's ``os.link``
    uses linkat only when given a dir_fd (ignored for an absolute path).
    """
    os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd, follow_symlinks=True)


def _put_new_file(directory: str, path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data``, mode 0644; False when it exists already.

    The name appears complete or not at all, and never replaces a file
    staged meanwhile: the bytes go into an unnamed file (O_TMPFILE) that is
    then linked to its name, so a crash leaves nothing behind and creating
    the file takes one directory change, not three. Where O_TMPFILE or
    /proc is missing, a temporary name beside the target is written, linked
    and removed instead.
    """
    fd = -1
    if _TMPFILE_OK[0]:
        try:
            fd = os.open(directory, os.O_WRONLY | os.O_TMPFILE, 0o644)
        except (OSError, AttributeError):
            fd = -1
    if fd >= 0:
        try:
            make_readable(fd)                            # 0644 whatever the umask
            _write_all(fd, data)
            try:
                _link_tmpfile(fd, path)
                return True
            except FileExistsError:
                return False
            except OSError:             # no /proc: remember, and use a temporary name
                _TMPFILE_OK[0] = False
        finally:
            os.close(fd)
    # The temporary name is short, so a name of FILE_NAME_BYTES still fits.
    tmp = os.path.join(directory, f".create_work.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            make_readable(fd)
            _write_all(fd, data)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


#: O_TMPFILE and /proc/self/fd work here (cleared at the first failure to link)
_TMPFILE_OK = [hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Stager:
    """Puts files into the download hierarchy once each and remembers their md5."""

    def __init__(self, project):
        self.project = project
        self.config = project.config
        self.staged: dict = {}
        self._dirs: set = set()
        self._prefetched: dict = {}     # name -> md5 written by prefetch()
        self._md5_written: set = set()  # prefetched names whose .md5 is written too

    def file_info(self, name: str, source: Source = None, *, gzip: bool = False,
                  constant: bool = False) -> StagedFile:
        key = (name, gzip)
        known = self.staged.get(key)
        if known is not None:
            if source is not None and self._source_md5(source) != known.md5:
                raise CreateWorkError(f"input file {name!r} given twice with different "
                                      f"contents (BOINC files are immutable)")
            return known
        staged = self._stage(name, source, gzip=gzip, constant=constant)
        self.staged[key] = staged
        return staged

    @staticmethod
    def _source_md5(source) -> str:
        if isinstance(source, bytes):
            return hashlib.md5(source).hexdigest()
        return md5_and_size(os.fspath(source))[0]

    def _stage(self, name: str, source: Source, *, gzip: bool, constant: bool) -> StagedFile:
        check_file_name("input file name", name)
        c = self.config
        path = dir_hier_path(name, c.download_dir, c.uldl_dir_fanout)
        md5_nbytes = None
        if source is None and not os.path.isfile(path):
            top = os.path.join(c.download_dir, name)
            if constant or not os.path.isfile(top):
                where = path if constant else f"{top} or {path}"
                raise CreateWorkError(f"input file {name!r} not found (looked for {where})")
            source = top
        if source is not None:
            try:
                md5_nbytes = self._stage_source(name, source, path)
            except OSError as exc:
                raise CreateWorkError(f"input file {name!r}: cannot stage it at {path}: "
                                      f"{exc.strerror or exc}") from None
        else:
            ensure_public(path, name)
            if c.cache_md5_info:
                md5_nbytes = read_md5_cache(path)
        if md5_nbytes is None:
            md5_nbytes = md5_and_size(path)
        if c.cache_md5_info and name not in self._md5_written:
            write_md5_cache(path, *md5_nbytes)
        self._md5_written.discard(name)
        md5, nbytes = md5_nbytes
        staged = StagedFile(name=name, path=path, md5=md5, nbytes=nbytes,
                            url=dir_hier_url(name, c.download_url, c.uldl_dir_fanout))
        if gzip:
            gz = path + ".gz"
            if not os.path.isfile(gz):
                raise CreateWorkError(f"input file {name!r} wants <gzip/> but {gz} is missing")
            staged.gzipped_url = staged.url + ".gz"
            staged.gzipped_nbytes = float(os.path.getsize(gz))
        return staged

    def _stage_source(self, name: str, source, path: str) -> tuple:
        """Copy ``source`` (a path or bytes) to ``path`` unless identical bytes are
        there already; returns the (md5, nbytes) of the staged file."""
        if isinstance(source, bytes):
            data = source
        else:
            try:
                with open(source, "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise CreateWorkError(f"input file {name!r}: cannot read {os.fspath(source)}: "
                                      f"{exc.strerror}") from None
        md5_nbytes = (hashlib.md5(data).hexdigest(), float(len(data)))
        prefetched = self._prefetched.pop(name, None)
        if prefetched == md5_nbytes[0]:
            self._md5_written.add(name)                 # and its .md5 cache
            return md5_nbytes                           # staged by prefetch() just now
        directory = os.path.dirname(path)
        if directory not in self._dirs:
            make_project_dir(directory, repair=True)    # 0771: the web server serves it
            self._dirs.add(directory)
        if not _put_new_file(directory, path, data):
            self._check_same(name, path, md5_nbytes[0])
        return md5_nbytes

    def prefetch(self, files: list) -> None:
        """Stage many ``(name, bytes)`` inputs at once, in threads.

        Creating a file waits for the file system's journal, most of all
        while another process syncs it (the result-store assimilator does,
        twice per pass): a few threads wait together instead of one after
        the other. Only the writing happens here; :meth:`file_info` still
        checks every file in job order, and a file whose staging failed here
        is staged again there, raising the usual error.
        """
        todo, seen = [], set()
        for name, data in files:
            if not isinstance(data, bytes) or name in seen or (name, False) in self.staged:
                continue
            seen.add(name)
            todo.append((name, data))
        if len(todo) < 2 * STAGE_THREADS:
            return
        c = self.config
        for name, _data in todo:     # directories first, here: make_project_dir is not
            try:                     # safe against another thread making the same one
                check_file_name("input file name", name)
                directory = os.path.dirname(dir_hier_path(name, c.download_dir,
                                                          c.uldl_dir_fanout))
                if directory not in self._dirs:
                    make_project_dir(directory, repair=True)
                    self._dirs.add(directory)
            except (OSError, TemplateError, BoincPymwError):
                pass                 # file_info will say why
        from concurrent.futures import ThreadPoolExecutor

        parts = [todo[i::STAGE_THREADS] for i in range(STAGE_THREADS)]   # one task per
        with ThreadPoolExecutor(STAGE_THREADS, thread_name_prefix="create_work_stage") as pool:
            for part, md5s in zip(parts, pool.map(self._prefetch_part, parts)):  # thread
                for (name, _data), md5 in zip(part, md5s):
                    if md5 is not None:
                        self._prefetched[name] = md5

    def _prefetch_part(self, part: list) -> list:
        return [self._prefetch_one(job_file) for job_file in part]

    def _prefetch_one(self, job_file: tuple) -> Optional[str]:
        """md5 of one file staged by prefetch (None: not staged, file_info will say why)."""
        name, data = job_file
        try:
            check_file_name("input file name", name)
            c = self.config
            path = dir_hier_path(name, c.download_dir, c.uldl_dir_fanout)
            directory = os.path.dirname(path)
            if directory not in self._dirs:
                return None                       # could not be made: file_info says why
            if not _put_new_file(directory, path, data):
                return None                       # there already: file_info compares it
            md5 = hashlib.md5(data).hexdigest()
            if c.cache_md5_info:
                write_md5_cache(path, md5, float(len(data)))
            return md5
        except (OSError, TemplateError, BoincPymwError):
            return None

    def _check_same(self, name: str, path: str, md5: str) -> None:
        cached = read_md5_cache(path) if self.config.cache_md5_info else None
        existing = cached[0] if cached else md5_and_size(path)[0]
        if existing != md5:
            raise CreateWorkError(
                f"input file {name!r} already staged at {path} with different contents "
                f"(BOINC files are immutable: use a new name)")


# -- xml_doc -----------------------------------------------------------------------------------

def _file_info_xml(info: _FileInfo, f: StagedFile) -> str:
    parts = ["<file_info>\n"]
    parts += [c + "\n" for c in info.copied]
    parts.append(f"    <name>{f.name}</name>\n    <url>{f.url}</url>\n")
    if f.gzipped_url:
        parts.append(f"    <gzipped_url>{f.gzipped_url}</gzipped_url>\n"
                     f"    <gzipped_nbytes>{f.gzipped_nbytes:.0f}</gzipped_nbytes>\n")
    parts.append(f"    <md5_cksum>{f.md5}</md5_cksum>\n    <nbytes>{f.nbytes:.0f}</nbytes>\n"
                 "</file_info>\n")
    return "".join(parts)


def build_xml_doc(plan: TemplatePlan, files: list, command_line: Optional[str] = None,
                  additional_xml: Optional[str] = None) -> str:
    """wu.xml_doc for ``files`` (StagedFile per <file_info>, in template order)."""
    out = [_file_info_xml(info, f) for info, f in zip(plan.file_infos, files)]
    out.append("<workunit>\n")
    if command_line is not None:
        out.append(f"<command_line>\n{command_line}\n</command_line>\n")
    for item in plan.workunit:
        if item[0] == "file_ref":
            _, index, items, has_open_name = item
            name = files[index].name
            out.append(f"<file_ref>\n    <file_name>{name}</file_name>\n")
            for kind, value in items:
                out.append(f"    <open_name>{value}</open_name>\n" if kind == "open_name"
                           else value)
            if not has_open_name:
                out.append(f"    <open_name>{name}</open_name>\n")
            out.append("</file_ref>\n")
        elif item[0] == "command_line":
            out.append(f"<command_line>\n{item[1]}\n</command_line>\n")
        else:
            out.append(item[1])
    if additional_xml:
        out.append(additional_xml + "\n")
    out.append("</workunit>")
    return "".join(out)


# -- jobs --------------------------------------------------------------------------------------

@dataclass
class Job:
    """One workunit to create: the arguments of :func:`create_work` as a record.

    A job of :func:`create_batch` may be a ``Job`` or a dict with the same
    keys (a dict also takes the batch's defaults). ``app`` is an app name,
    id or ``app`` row (dict); ``files`` pair, in order, with the input
    template's ``<file_info>``s (a name, or ``(name, source)`` with source a
    path or bytes); ``input_template``/``result_template`` default to
    ``templates/<app>_in``/``_out``; ``name`` is the workunit name (a Job
    needs one: only dict jobs are named ``<batch name>_<n>``); ``fields``
    are workunit columns (``min_quorum``, ``rsc_fpops_est``, ``priority``, ...).
    """

    app: Union[str, int]
    files: list
    input_template: Optional[str] = None
    result_template: Optional[str] = None
    name: Optional[str] = None
    command_line: Optional[str] = None
    additional_xml: Optional[str] = None
    fields: dict = field(default_factory=dict)


def _split_file(arg) -> tuple:
    """A job file: "name" (in download_dir or already staged), or (name, source)
    where source is a path or bytes to stage under ``name``."""
    if isinstance(arg, (tuple, list)) and len(arg) == 2:
        return str(arg[0]), arg[1]
    if isinstance(arg, (str, os.PathLike)):
        return os.fspath(arg), None
    raise CreateWorkError(f"input file {arg!r}: give a name or a (name, source) pair")


class _Context:
    """Per-call caches: apps, templates, staged files."""

    def __init__(self, project):
        self.project = project
        self.release = getattr(project, "server_release", "1.6")
        self.stager = Stager(project)
        self.apps: dict = {}
        self.plans: dict = {}
        self.result_templates: dict = {}

    def app(self, app) -> dict:
        if isinstance(app, dict):
            return app
        if app not in self.apps:
            if isinstance(app, int):
                row = self.project.db.query_one("SELECT * FROM app WHERE id=%s", (app,))
                if row is None:
                    raise CreateWorkError(f"no application with id {app}")
            else:
                try:
                    row = self.project.app(app)
                except BoincPymwError as exc:
                    if "no application" in str(exc):
                        raise CreateWorkError(str(exc)) from None
                    raise
            self.apps[app] = row
        return self.apps[app]

    def plan(self, template: Optional[str], app_name: str) -> TemplatePlan:
        if template is None:
            template = os.path.join("templates", f"{app_name}_in")
        if template not in self.plans:
            if template.lstrip().startswith("<"):
                self.plans[template] = parse_input_template(template)
            else:
                path = os.path.join(self.project.path, template)
                try:
                    with open(path, encoding="utf-8") as f:
                        text = f.read()
                except OSError as exc:
                    raise CreateWorkError(f"input template {path}: {exc.strerror}") from None
                self.plans[template] = parse_input_template(text, path)
        return self.plans[template]

    def result_template(self, template: Optional[str], app_name: str) -> str:
        """result_template_file: relative to the project dir, which must hold it."""
        if template is None:
            template = os.path.join("templates", f"{app_name}_out")
        if template not in self.result_templates:
            path = os.path.normpath(os.path.join(self.project.path, template))
            relative = os.path.relpath(path, self.project.path)
            if relative.startswith(".."):
                raise CreateWorkError(f"result template {path} must be inside the project "
                                      f"directory {self.project.path} (BOINC stores it relative)")
            if not os.path.isfile(path):
                raise CreateWorkError(f"result template {path}: no such file")
            if len(relative) > 63:
                raise CreateWorkError(f"result template path {relative!r} is longer than "
                                      f"63 characters (workunit.result_template_file)")
            _check_result_template(path)
            self.result_templates[template] = relative
        return self.result_templates[template]


def _check_result_template(path: str) -> None:
    from ..templates import check_output_template

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        check_output_template(text, f"result template {path}")
    except (OSError, UnicodeDecodeError) as exc:
        raise CreateWorkError(f"result template {path}: cannot read it: {exc}") from None
    except TemplateError as exc:
        raise CreateWorkError(str(exc)) from None


def _check_name(name: str) -> str:
    try:
        return check_workunit_name(name)
    except BadName as exc:
        raise CreateWorkError(str(exc)) from None


def _job_fields(fields: dict) -> tuple:
    """Split keyword fields into template fields (checked) and extra columns."""
    template_fields, extra = {}, {}
    for key, value in fields.items():
        if key in TEMPLATE_WU_FIELDS:
            template_fields[key] = value
        elif key in EXTRA_WU_FIELDS:
            try:
                extra[key] = EXTRA_WU_FIELDS[key](value)
            except (TypeError, ValueError):
                raise CreateWorkError(f"{key} must be {EXTRA_WU_FIELDS[key].__name__}, "
                                      f"not {value!r}") from None
        else:
            raise CreateWorkError(f"unknown workunit field {key!r}")
    try:
        template_fields = check_wu_fields(template_fields, relations=False)
    except TemplateError as exc:
        raise CreateWorkError(str(exc)) from None
    return template_fields, extra


def _prepare(ctx: _Context, job: Job, batch_id: int, now: int) -> dict:
    """Everything for one workunit row; stages its files. Raises before any DB write."""
    app = ctx.app(job.app)
    name = _check_name(job.name)
    plan = ctx.plan(job.input_template, app["name"])
    result_template_file = ctx.result_template(job.result_template, app["name"])
    if job.command_line is not None:
        from ..templates import check_xml_text

        try:
            check_xml_text("command_line", job.command_line)
        except TemplateError as exc:
            raise CreateWorkError(str(exc)) from None
        if plan.has_command_line:
            raise CreateWorkError(f"{plan.source}: the template has a <command_line>; "
                                  f"BOINC refuses a second one from the job")
    template_fields, extra = _job_fields(job.fields)
    given = [_split_file(f) for f in job.files]
    if len(given) != plan.n_job_files:
        raise CreateWorkError(f"{plan.source} defines {plan.n_job_files} input file(s) "
                              f"but the job {name!r} gives {len(given)}")
    staged, it = [], iter(given)
    for info in plan.file_infos:
        if info.physical_name is not None:
            staged.append(ctx.stager.file_info(info.physical_name, gzip=info.gzip,
                                               constant=True))
        else:
            file_name, source = next(it)
            try:
                staged.append(ctx.stager.file_info(file_name, source, gzip=info.gzip))
            except TemplateError as exc:
                raise CreateWorkError(str(exc)) from None
    xml_doc = build_xml_doc(plan, staged, job.command_line, job.additional_xml)
    if len(xml_doc.encode("utf-8")) > XML_DOC_MAX:
        raise CreateWorkError(f"workunit {name!r}: xml_doc is {len(xml_doc)} bytes, "
                              f"BOINC's limit is {XML_DOC_MAX}")
    values = dict(WU_DEFAULTS)
    values.update(REPLICATION_DEFAULTS[ctx.release])
    values.update(template_fields)
    values.update(plan.columns)                      # the template wins, as in BOINC
    if ctx.release == "1.6":
        # 1.6's process_input_template: a target above max_success/max_total raises
        # them; only defaults here, explicit contradictions are refused below.
        explicit = set(template_fields) | set(plan.columns)
        for bound in ("max_success_results", "max_total_results"):
            if bound not in explicit:
                values[bound] = max(values[bound], values["target_nresults"])
    try:
        check_replication(values)
    except TemplateError as exc:
        raise CreateWorkError(
            f"workunit {name!r}: {exc}; BOINC would never complete such a workunit "
            f"(server {ctx.release} defaults: "
            + ", ".join(f"{k} {v}" for k, v in REPLICATION_DEFAULTS[ctx.release].items())
            + ")") from None
    return {
        "create_time": now,
        "appid": app["id"],
        "name": name,
        "xml_doc": xml_doc,
        "batch": int(values.pop("batch", 0) or batch_id),
        "rsc_fpops_est": float(values["rsc_fpops_est"]),
        "rsc_fpops_bound": float(values["rsc_fpops_bound"]),
        "rsc_memory_bound": float(values["rsc_memory_bound"]),
        "rsc_disk_bound": float(values["rsc_disk_bound"]),
        "need_validate": 0,
        "canonical_resultid": 0,
        "canonical_credit": 0.0,
        "transition_time": now,
        "delay_bound": int(values["delay_bound"]),
        "error_mask": 0,
        "file_delete_state": 0,
        "assimilate_state": 0,
        "hr_class": extra.get("hr_class", 0),
        "opaque": extra.get("opaque", 0.0),
        "min_quorum": int(values["min_quorum"]),
        "target_nresults": int(values["target_nresults"]),
        "max_error_results": int(values["max_error_results"]),
        "max_total_results": int(values["max_total_results"]),
        "max_success_results": int(values["max_success_results"]),
        "result_template_file": result_template_file,
        "priority": extra.get("priority", 0),
        "rsc_bandwidth_bound": float(values["rsc_bandwidth_bound"]),
        "fileset_id": 0,
        "app_version_id": 0,
        "transitioner_flags": 0,
        "size_class": int(values.get("size_class", extra.get("size_class", -1))),
        "keywords": extra.get("keywords", ""),
        "app_version_num": extra.get("app_version_num", 0),
    }


def _as_job(job, defaults: dict, index: int, base_name: str) -> Job:
    if isinstance(job, Job):
        return job
    if not isinstance(job, dict):
        raise CreateWorkError(f"job {index}: expected a dict or Job, not {type(job).__name__}")
    spec = dict(defaults)
    spec.update(job)
    known = {"app", "files", "input_template", "result_template", "name", "command_line",
             "additional_xml"}
    fields = {k: v for k, v in spec.items() if k not in known}
    if "app" not in spec:
        raise CreateWorkError(f"job {index}: no app given")
    return Job(app=spec["app"], files=list(spec.get("files") or ()),
               input_template=spec.get("input_template"),
               result_template=spec.get("result_template"),
               name=spec.get("name") or f"{base_name}_{index}",
               command_line=spec.get("command_line"),
               additional_xml=spec.get("additional_xml"), fields=fields)


def _default_base(app) -> str:
    app_name = app if isinstance(app, str) else str(app)
    return f"{app_name}_{os.getpid()}_{int(time.time())}"


def create_work(project, app, files, input_template=None, result_template=None, name=None,
                batch=None, *, command_line=None, additional_xml=None, **wu_fields) -> int:
    """Create one workunit; returns its id.

    ``files`` pairs, in order, with the template's ``<file_info>``s: each is
    a physical name (found in download_dir or already in the hierarchy) or a
    ``(name, source)`` pair with source a path or bytes. ``input_template``
    is a path relative to the project (default ``templates/<app>_in``) or the
    template text; ``result_template`` a path inside the project (default
    ``templates/<app>_out``). ``batch`` is an existing batch id.
    """
    job = Job(app=app, files=list(files), input_template=input_template,
              result_template=result_template, name=name or _default_base(app),
              command_line=command_line, additional_xml=additional_xml, fields=wu_fields)
    ctx = _Context(project)
    ctx.app(app)                                     # database problems surface first
    row = _prepare(ctx, job, int(batch or 0), int(time.time()))
    return project.db.insert("workunit", row)


#: Upper bound on one multi-row INSERT statement (MariaDB's max_allowed_packet
#: defaults to 16 MB; BOINC's create_work --stdin uses about 1 MB).
INSERT_CHUNK_BYTES = 4 << 20


def insert_rows(db, table: str, rows: list) -> int:
    """Multi-row INSERTs of ``rows`` (dicts with the same keys), quoted by the driver;
    returns the id of the first row (every later row has a larger id).

    Columns that hold the same value in every row are quoted once, which
    halves the cost of quoting for a typical batch.
    """
    columns = list(rows[0])
    conn = db.connection
    constant = {c: conn.literal(values[0]) for c, values in zip(columns, _columns_of(rows, columns))
                if values.count(values[0]) == len(values) and len(set(map(type, values))) == 1}
    varying = [c for c in columns if c not in constant]
    head = (f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) VALUES ").encode()
    chunk, size, first_id = [], len(head), None
    literal = conn.literal
    for row in rows:
        quoted = dict(constant)
        for c in varying:
            quoted[c] = literal(row[c])
        values = b"(" + b",".join(quoted[c] for c in columns) + b")"
        if chunk and size + len(values) > INSERT_CHUNK_BYTES:
            first_id = _execute_chunk(db, head, chunk, first_id)
            chunk, size = [], len(head)
        chunk.append(values)
        size += len(values) + 1
    return _execute_chunk(db, head, chunk, first_id)


def _columns_of(rows: list, columns: list) -> list:
    """The values of each column, as tuples (compared at C speed: a batch's
    rows share most of their 31 values)."""
    if len(columns) == 1:
        return [tuple(r[columns[0]] for r in rows)]
    import operator

    return list(zip(*map(operator.itemgetter(*columns), rows)))


def _execute_chunk(db, head: bytes, chunk: list, first_id):
    db.execute(head + b",".join(chunk))
    if first_id is None:      # LAST_INSERT_ID() is the first id of the latest statement
        first_id = db.query_one("SELECT LAST_INSERT_ID() AS id")["id"]
    return first_id


@dataclass
class BatchResult:
    batch_id: int
    workunit_ids: list      # in job order


def create_batch(project, jobs: Iterable, *, batch_name: Optional[str] = None,
                 batch_id: Optional[int] = None, user_id: int = 0, description: str = "",
                 **defaults) -> BatchResult:
    """Create many workunits in one transaction, under a new batch row.

    ``jobs`` are dicts with the keys of :func:`create_work` (``files`` and
    any workunit fields; ``app`` and templates may come from ``defaults``)
    or :class:`Job` objects. Names default to ``<batch name>_<n>``. Each
    distinct file is staged and checksummed once. Either every workunit and
    the batch row are written, or none. With ``batch_id`` the workunits join
    that existing batch row (its njobs grows in the same transaction) instead
    of a new one; their ``batch`` column is ``batch_id`` whatever the
    template says.

    Called inside an open ``project.db.transaction()``, it writes as part of
    that transaction (no commit of its own): the caller's rollback takes back
    the workunits, the batch row or the njobs increment with the rest.
    Returns the batch id and the workunit ids in job order.
    """
    if batch_name is not None:
        try:
            check_batch_name(batch_name)
        except BadName as exc:
            raise CreateWorkError(str(exc)) from None
    base = batch_name or _default_base(defaults.get("app", "batch"))
    job_list = [_as_job(job, defaults, i, base) for i, job in enumerate(jobs)]
    if not job_list:
        raise CreateWorkError("create_batch: no jobs given")
    names = [j.name for j in job_list]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise CreateWorkError(f"create_batch: workunit name {dup!r} used twice")
    ctx = _Context(project)
    first_app = ctx.app(job_list[0].app)             # database problems surface first
    for job in job_list:                             # the only lookups: before any writes
        ctx.app(job.app)
    now = int(time.time())
    db = project.db
    with db.transaction():
        if batch_id is not None:
            if not db.execute("UPDATE batch SET njobs=njobs+%s WHERE id=%s",
                              (len(job_list), batch_id)):
                raise CreateWorkError(f"create_batch: no batch row with id {batch_id}")
        else:
            batch_id = db.insert("batch", {
                "user_id": user_id, "create_time": now, "logical_start_time": 0.0,
                "logical_end_time": 0.0, "est_completion_time": 0.0, "njobs": len(job_list),
                "fraction_done": 0.0, "nerror_jobs": 0, "state": BATCH_STATE_IN_PROGRESS,
                "completion_time": 0.0, "credit_estimate": 0.0, "credit_canonical": 0.0,
                "credit_total": 0.0, "name": base[:254], "app_id": first_app["id"],
                "project_state": 0, "description": description[:254], "expire_time": 0.0})
        first = _stage_and_insert(ctx, db, job_list, batch_id, now)
        ids = {r["name"]: r["id"] for r in db.query(
            "SELECT id, name FROM workunit WHERE batch=%s AND id>=%s", (batch_id, first))}
    return BatchResult(batch_id=batch_id, workunit_ids=[ids.get(n) for n in names])


#: Jobs per pipeline step of create_batch.
PIPELINE_JOBS = 1000


def _stage_and_insert(ctx: _Context, db, jobs: list, batch_id: int, now: int) -> int:
    """Stage files and build rows for one chunk of jobs while the database
    inserts the previous chunk (the server works in its own process, so the two
    overlap). Runs inside the caller's transaction: an error in any chunk rolls
    back every row; files of a chunk are staged before its rows are sent.
    Returns the id of the first row inserted.
    """
    if len(jobs) <= PIPELINE_JOBS:       # one step: nothing to overlap, no thread
        return insert_rows(db, "workunit", _rows(ctx, jobs, batch_id, now))
    from concurrent.futures import ThreadPoolExecutor

    first_id, pending = None, None
    with ThreadPoolExecutor(1, thread_name_prefix="create_batch_insert") as writer:
        for start in range(0, len(jobs), PIPELINE_JOBS):
            rows = _rows(ctx, jobs[start:start + PIPELINE_JOBS], batch_id, now)
            if pending is not None:
                done = pending.result()
                first_id = done if first_id is None else first_id
            pending = writer.submit(insert_rows, db, "workunit", rows)
        done = pending.result()
    return done if first_id is None else first_id


def _rows(ctx: _Context, jobs: list, batch_id: int, now: int) -> list:
    """The workunit rows of ``jobs`` (files staged), all in batch ``batch_id``."""
    ctx.stager.prefetch([_split_file(f) for job in jobs for f in job.files
                         if isinstance(f, (tuple, list))])
    rows = [_prepare(ctx, job, batch_id, now) for job in jobs]
    for row in rows:
        row["batch"] = batch_id
    return rows
