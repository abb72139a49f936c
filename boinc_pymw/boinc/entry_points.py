"""An app version's entry points: the functions a workunit may name.

The rule is the worker's (``boinc_pymw/worker/entry_points.py``): a job can
call only a public function of the app's own signed code. ``install-app``
writes the list into the code zip as ``boinc_pymw_entry_points.json``:

* by default, every public top-level ``def`` of every public module shipped
  with ``--code`` (read with ``ast``; nothing is imported);
* with ``--entry-point pkg.mod:name`` (repeatable), exactly those names. They
  may name any public object of the code (a class, a ``functools.partial``,
  a decorated function) or of a package the app version carries
  (``--requirements``), e.g. ``numpy:linalg.det``.

The Master side checks a call before submitting it::

    points = entry_points_of("apps/myapp/1.0/x86_64-pc-linux-gnu")   # or a code zip
    check_entry_point("tasks:square", points)     # raises EntryPointRefused
"""

from __future__ import annotations

import ast
import json
import os
import zipfile
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from ..worker.entry_points import (MANIFEST_FORMAT, MANIFEST_NAME, EntryPointRefused,
                                   EntryPoints, default_entry_points, is_standard_module,
                                   module_files, split_reference)

__all__ = ["MANIFEST_NAME", "EntryPointRefused", "EntryPoints", "build_manifest",
           "check_entry_point", "entry_points_of"]

CODE_ARCHIVE_NAME = "app_code.zip"


def _top_level_names(source: bytes) -> Optional[set]:
    """Names bound at a module's top level, or None when it cannot tell (star import)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        else:  # if/try blocks at the top level: count what they bind, loosely
            for sub in ast.walk(node):
                if isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    names.add(sub.name)
                elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
    return names


def build_manifest(sources: Mapping[str, bytes], declared: Optional[Sequence[str]] = None,
                   carried_modules: Iterable[str] = ()) -> dict:
    """The manifest for code whose files are ``sources`` (archive name -> bytes).

    Raises EntryPointRefused for a module with a standard-library name, or a
    declared name that is private, not shipped or not defined."""
    files = module_files(sources)
    tops = {m.partition(".")[0] for m in files}
    clashing = sorted(t for t in tops if is_standard_module(t))
    if clashing:
        raise EntryPointRefused(
            f"the code ships module {clashing[0]!r}, a name of Python's standard library or of "
            "the runtime: the worker never calls such a module; rename it")
    carried = set(carried_modules)
    if declared is None:
        points = default_entry_points({m: sources[f] for m, f in files.items()})
        modules = tops
    else:
        points, modules = [], set(tops)
        for reference in dict.fromkeys(declared):
            module, qualname = split_reference(reference)
            top = module.partition(".")[0]
            if is_standard_module(module):
                raise EntryPointRefused(f"entry point {reference}: {top} is part of Python or of "
                                        "the runtime; only the app's own code can be called")
            if module in files:
                bound = _top_level_names(sources[files[module]])
                first = qualname.partition(".")[0]
                if bound is not None and first not in bound:
                    raise EntryPointRefused(f"entry point {reference}: {module} defines no "
                                            f"{first!r} at its top level")
            elif top in carried:
                modules.add(top)
            else:
                raise EntryPointRefused(
                    f"entry point {reference}: module {module} is neither in the code "
                    f"({', '.join(sorted(files)) or 'none'}) nor in the packages the app "
                    f"version carries ({', '.join(sorted(carried)) or 'none'})")
            points.append(reference)
    return {"format": MANIFEST_FORMAT, "modules": sorted(modules), "entry_points": sorted(points)}


def manifest_bytes(manifest: Mapping) -> bytes:
    """The manifest as stored in the code zip (stable bytes: same inputs, same zip)."""
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def _code_zip_of(app_version_dir: Path) -> Optional[Path]:
    """The file with logical name app_code.zip in an app version directory's version.xml."""
    from lxml import etree

    version_xml = app_version_dir / "version.xml"
    if not version_xml.is_file():
        raise EntryPointRefused(f"{app_version_dir} has no version.xml: not an app version directory")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(version_xml), parser).getroot()
    for ref in root.iter("file"):
        if (ref.findtext("logical_name") or "").strip() == CODE_ARCHIVE_NAME:
            name = (ref.findtext("physical_name") or "").strip()
            path = app_version_dir / name
            if not name or os.sep in name or not path.is_file():
                raise EntryPointRefused(f"{version_xml}: {CODE_ARCHIVE_NAME} is {name!r}, "
                                        "which is not a file of that directory")
            return path
    return None


def entry_points_of(location: Union[str, os.PathLike]) -> EntryPoints:
    """The entry points of an app version directory (``apps/NAME/X.Y/PLATFORM``), a code
    zip or a code directory: its manifest, else the default rule on its sources."""
    path = Path(location)
    if path.is_dir() and (path / "version.xml").is_file():
        code = _code_zip_of(path)
        if code is None:
            return EntryPoints((), (), declared=False)
        path = code
    if not path.exists():
        raise EntryPointRefused(f"{path} does not exist")
    try:
        return EntryPoints.of_code([path])
    except (OSError, zipfile.BadZipFile) as exc:
        raise EntryPointRefused(f"cannot read the code {path}: {exc}") from None


def check_entry_point(reference: str, entry_points: Union[EntryPoints, Mapping]) -> None:
    """Raise EntryPointRefused unless the worker would call ``reference``."""
    if not isinstance(entry_points, EntryPoints):
        entry_points = EntryPoints.from_manifest(entry_points)
    entry_points.check(reference)
