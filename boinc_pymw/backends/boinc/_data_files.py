"""PyMW's ``data_files`` on the BOINC back ends: extra input files of a workunit.

``Master.submit_task(fn, ..., data_files=["words.txt"])`` sends
``run_in_task_directory(fn, args, kwargs, files)``. A BOINC task already
runs in a directory of its own (the client's slot, the worker's cwd), so
the call is sent as plain ``fn(*args)`` and each data file becomes one more
input file of its workunit::

    words.txt (on the master)
        |  md5 of its bytes (cached by path, inode, size and mtime)
        v
    physical name pymw_<md5>_words.txt   BOINC files are immutable: the same
        |                                name always means the same bytes, so a
        |                                file shared by many workunits is staged once
        v
    input template of the workunit = the app's template plus, per data file,
        <file_info> and <file_ref><open_name>words.txt</open_name><copy_file/>
        |   (copy_file: a real copy in the slot, not a BOINC soft-link file,
        v    so open("words.txt") in the task reads the data)
    slot: input.json, words.txt, ...  --> the task runs with the slot as cwd

Names are checked before anything is staged: a base name may not be one of
the slot's own files (the job's input/output, the runtime's archives, the
client's files), and data files larger than the workunit's disk bound are
refused (the client would abort the task).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from ...errors import BoincPymwError
from ..base import WorkItem
from ..task_directory import DataFile, run_in_task_directory

#: files a BOINC client or the boinc_pymw worker keeps in a task's slot
#: (lib/filenames.h, lib/app_ipc.h, launcher/README.md, checkpoint.py)
SLOT_FILE_NAMES = frozenset({
    "init_data.xml", "boinc_finish_called", "boinc_temporary_exit", "trickle_up.xml",
    "stderr.txt", "stdout.txt", "boinc_lockfile", "boinc_mmap_file", "boinc_task_state.xml",
    "python_runtime.zip", "python_packages.zip", "app_code.zip", "pymw_checkpoint.json",
})
#: create_work's default rsc_disk_bound (tools/backend_lib.h, 1.4 and 1.6)
DEFAULT_DISK_BOUND = 1e9
#: physical names: the web RPCs' is_valid_filename (A-Z a-z 0-9 _ . -)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
#: bytes of a physical name (names.FILE_NAME_BYTES)
_PHYSICAL_MAX = 240


class DataFileError(BoincPymwError, ValueError):
    """A data file that cannot go with a workunit (name, size, unreadable)."""


@dataclass(frozen=True)
class DataInput:
    """One data file as a workunit input: opened in the slot as ``open_name``."""

    open_name: str
    physical_name: str
    path: str
    md5: str
    nbytes: int


def physical_name(open_name: str, md5: str) -> str:
    """``pymw_<md5>_<base name>``: named by content, readable by people."""
    stem = f"pymw_{md5}_"
    return stem + _UNSAFE.sub("_", open_name)[:_PHYSICAL_MAX - len(stem)]


class _Md5Cache:
    """md5 of files by (path, device, inode, size, mtime): a data file given to
    thousands of tasks is read once, and read again only when it changed."""

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self._known: dict = {}
        self._lock = threading.Lock()

    def md5(self, path: str) -> tuple:
        st = os.stat(path)
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known, st.st_size
        digest = hashlib.md5()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        with self._lock:
            if len(self._known) >= self.limit:
                self._known.clear()
            self._known[key] = digest.hexdigest()
        return self._known[key], st.st_size


MD5 = _Md5Cache()


def split_call(item: WorkItem) -> tuple:
    """``(fn, args, kwargs, data files)`` of a work item; data files are those of
    ``Master.submit_task(data_files=...)``, else ``()``."""
    if item.fn is run_in_task_directory:
        fn, args, kwargs, files = item.args
        return fn, tuple(args), dict(kwargs), tuple(files)
    return item.fn, item.args, item.kwargs, ()


def data_inputs(files: Sequence[DataFile], reserved: Iterable[str] = ()) -> tuple:
    """Check ``files`` and describe them as workunit inputs (reads each once to name it).

    ``reserved``: the open names of the app's own input and output files.
    """
    from ... import names

    taken = set(reserved) | SLOT_FILE_NAMES
    seen: set = set()
    inputs = []
    for f in files:
        try:
            names.check_file_name("data file name", f.name)
        except names.BadName as exc:
            raise DataFileError(f"data file {f.path or f.name}: {exc}") from None
        if f.name in taken:
            raise DataFileError(
                f"data file {f.path or f.name}: its name {f.name!r} is taken in the task's "
                f"directory (the job's own files or BOINC's); rename it")
        if f.name in seen:
            raise DataFileError(f"two data files are named {f.name!r}")
        seen.add(f.name)
        if f.path is None:
            raise DataFileError(f"data file {f.name!r}: the BOINC back ends stage files "
                                f"from a path")
        try:
            md5, nbytes = MD5.md5(f.path)
        except OSError as exc:
            raise DataFileError(f"data file {f.path} cannot be read: "
                                f"{exc.strerror or exc}") from None
        inputs.append(DataInput(f.name, physical_name(f.name, md5), f.path, md5, nbytes))
    return tuple(inputs)


def check_disk_bound(inputs: Sequence[DataInput], disk_bound: Optional[float]) -> None:
    """Data files together larger than the workunit's ``rsc_disk_bound`` would make
    every client abort the task (disk usage limit exceeded): refuse them here."""
    bound = float(disk_bound or DEFAULT_DISK_BOUND)
    total = sum(i.nbytes for i in inputs)
    if total > bound:
        raise DataFileError(
            f"the data files of this task hold {total} bytes, more than the workunit's "
            f"disk bound rsc_disk_bound={bound:.0f} (clients would abort it): ship less "
            f"data, or raise rsc_disk_bound in the app's input template")


# -- templates ------------------------------------------------------------------------------
def _parse(text: str, source: str):
    from ..._xml import parse_document

    return parse_document(text, source, "input_template", BoincPymwError)


def open_names(template_text: str, root_tag: str, source: str = "template") -> set:
    """The open names of an input (``root_tag`` "input_template") or output
    ("output_template") template's ``<file_ref>``s."""
    from ..._xml import parse_document

    root = parse_document(template_text, source, root_tag, BoincPymwError)
    return {(ref.findtext("open_name") or "").strip() for ref in root.iter("file_ref")} - {""}


def disk_bound_of(template_text: str) -> Optional[float]:
    """``<rsc_disk_bound>`` of an input template, if it sets one."""
    text = _parse(template_text, "input template").findtext("workunit/rsc_disk_bound")
    try:
        return float(text) if text and text.strip() else None
    except ValueError:
        return None


def input_template_with(template_text: str, inputs: Sequence[DataInput],
                        source: str = "input template") -> str:
    """The app's input template plus one copied input per data file, after the
    app's own files (their file numbers stay; create_work pairs files in order)."""
    from lxml import etree

    if not inputs:
        return template_text
    root = _parse(template_text, source)
    infos = root.findall("file_info")
    workunit = root.find("workunit")
    if workunit is None:
        raise BoincPymwError(f"{source}: no <workunit> element")
    refs = workunit.findall("file_ref")
    info_at = root.index(infos[-1]) + 1 if infos else root.index(workunit)
    ref_at = workunit.index(refs[-1]) + 1 if refs else 0
    for k, data in enumerate(inputs):
        number = len(infos) + k
        info = etree.Element("file_info")
        etree.SubElement(info, "number").text = str(number)
        root.insert(info_at + k, info)
        ref = etree.Element("file_ref")
        etree.SubElement(ref, "file_number").text = str(number)
        etree.SubElement(ref, "open_name").text = data.open_name
        etree.SubElement(ref, "copy_file")
        workunit.insert(ref_at + k, ref)
    return etree.tostring(root, encoding="unicode")


def data_digest(data: bytes, inputs: Sequence[DataInput]) -> bytes:
    """What fixes a call: its job document and, if any, its data files' names and md5s."""
    if not inputs:
        return data
    return data + b"\0" + "\0".join(f"{i.open_name}:{i.md5}" for i in inputs).encode()


def copy_into(data: DataInput, directory) -> str:
    """``data`` copied to ``directory/<physical name>`` once (boinc-local's download
    directory); a file that changed since it was named is refused, never staged
    under a name that promises other bytes."""
    target = os.path.join(os.fspath(directory), data.physical_name)
    if os.path.exists(target):
        return target
    tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
    digest = hashlib.md5()
    try:
        with open(data.path, "rb") as src, open(tmp, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
        if digest.hexdigest() != data.md5:
            raise DataFileError(f"data file {data.path} changed while it was being "
                                f"submitted; submit the task again")
        os.replace(tmp, target)
    except OSError as exc:
        raise DataFileError(f"data file {data.path} cannot be copied to {directory}: "
                            f"{exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def read_as_named(data: DataInput) -> bytes:
    """The bytes of ``data`` (to upload), refused if they are not the ones it was named by."""
    try:
        with open(data.path, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise DataFileError(f"data file {data.path} cannot be read: "
                            f"{exc.strerror or exc}") from None
    if hashlib.md5(content).hexdigest() != data.md5:
        raise DataFileError(f"data file {data.path} changed while it was being submitted; "
                            f"submit the task again")
    return content
