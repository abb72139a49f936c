"""Which functions a job may name: only the entry points of the app's own signed code.

A workunit's input is not signed, and whoever can create work (a submit
account, a remote submitter) writes it. So the function it names is checked
against the app version's code, which is signed, *before anything is
imported*::

    job {"function": "pkg.mod:name"}
        -> syntax; no private part (a name starting with "_")
        -> "pkg.mod:name" is an entry point of the code:
             declared in the code's manifest (boinc_pymw_entry_points.json,
             written by install-app), or, for code without one, a public
             top-level ``def`` of a module shipped in it (read with ast, not run)
        -> the top-level module "pkg" is found in the code itself: never the
           standard library, builtins, ``boinc`` or ``boinc_pymw``, and
           nothing already imported from elsewhere
        -> import; the module and the object's own ``__module__`` must come
           from the code (or the packages the app version carries)

A refusal is a broken job (stderr, non-zero exit); nothing of the named
module ran. The manifest format::

    {"format": 1, "modules": ["pkg", "tasks"],
     "entry_points": ["pkg.mod:name", "tasks:square"]}

"modules" are the top-level modules the code ships; "entry_points" are all
that may be called.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Iterable, Mapping, Optional

from ..errors import BoincPymwError

MANIFEST_NAME = "boinc_pymw_entry_points.json"
MANIFEST_FORMAT = 1
#: Names of the runtime itself: never app code, whatever a code zip holds.
RUNTIME_MODULES = frozenset({"boinc", "boinc_pymw", "__main__", "builtins"})
_MAX_MANIFEST_BYTES = 4 << 20


class EntryPointRefused(BoincPymwError, ValueError):
    """A job names a function that the app's signed code does not offer."""


def is_standard_module(name: str) -> bool:
    """True for the standard library's, the interpreter's and the runtime's own names."""
    top = name.partition(".")[0]
    stdlib = getattr(sys, "stdlib_module_names", ())
    return top in RUNTIME_MODULES or top in stdlib or top in sys.builtin_module_names


def split_reference(reference) -> tuple[str, str]:
    """("pkg.mod", "name") of "pkg.mod:name"; refuses bad syntax and private parts."""
    if not isinstance(reference, str):
        raise EntryPointRefused(f"function reference must be a string, not {type(reference).__name__}")
    module, sep, qualname = reference.partition(":")
    parts = module.split(".") + qualname.split(".")
    if not sep or not all(p.isidentifier() for p in parts):
        raise EntryPointRefused(f"function reference must look like 'package.module:name', "
                                f"not {reference[:200]!r}")
    private = [p for p in parts if p.startswith("_")]
    if private:
        raise EntryPointRefused(f"{reference} is refused: {private[0]!r} is a private name, "
                                "and only public names can be entry points")
    return module, qualname


# -- what a code zip or directory ships -------------------------------------------------------
def _listing(root: Path) -> list[str]:
    """'/'-separated names of the files in a code zip or directory."""
    if root.is_dir():
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)
    with zipfile.ZipFile(root) as zf:
        return sorted(n for n in zf.namelist() if not n.endswith("/"))


def _read(root: Path, name: str, limit: int = 64 << 20) -> bytes:
    if root.is_dir():
        with open(root / name, "rb") as fh:
            return fh.read(limit + 1)[:limit]
    with zipfile.ZipFile(root) as zf, zf.open(name) as fh:
        return fh.read(limit + 1)[:limit]


def module_files(names: Iterable[str]) -> dict[str, str]:
    """Module name -> file name for the Python sources among ``names``."""
    modules = {}
    for name in names:
        if not name.endswith(".py"):
            continue
        parts = name[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
            if not parts:
                continue
        if all(p.isidentifier() for p in parts):
            # a package's module needs every folder above it to be a package (or a
            # namespace package: plain folders import too, so they count)
            modules[".".join(parts)] = name
    return modules


def public_functions(source: bytes, filename: str = "<code>") -> list[str]:
    """Names of the public top-level ``def`` statements (not async) of a module's source."""
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError):
        return []
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")]


def default_entry_points(modules: Mapping[str, bytes]) -> list[str]:
    """The public top-level functions of the public modules (module name -> source)."""
    points = []
    for module in sorted(modules):
        if any(p.startswith("_") for p in module.split(".")) or is_standard_module(module):
            continue
        points += [f"{module}:{fn}" for fn in public_functions(modules[module], module)]
    return points


class EntryPoints:
    """The entry points of one app's code: top-level modules it ships and callable names."""

    def __init__(self, modules: Iterable[str], entry_points: Iterable[str], declared: bool):
        self.modules = frozenset(modules)
        self.entry_points = frozenset(entry_points)
        self.declared = declared    # from a manifest (True) or from the sources (False)

    @classmethod
    def of_code(cls, roots: Iterable[os.PathLike]) -> "EntryPoints":
        """Read from code zips/directories: their manifests, else their sources."""
        modules, points, declared = set(), set(), False
        for root in map(Path, roots):
            names = _listing(root)
            manifest = read_manifest(root, names)
            if manifest is not None:
                modules |= set(manifest["modules"])
                points |= set(manifest["entry_points"])
                declared = True
                continue
            files = module_files(names)
            modules |= {m.partition(".")[0] for m in files}
            points |= set(default_entry_points({m: _read(root, f) for m, f in files.items()}))
        return cls(modules, points, declared)

    @classmethod
    def from_manifest(cls, manifest: Mapping) -> "EntryPoints":
        checked = check_manifest(manifest, "the manifest")
        return cls(checked["modules"], checked["entry_points"], True)

    def check(self, reference: str, carried_modules: Iterable[str] = ()) -> tuple[str, str]:
        """Raise EntryPointRefused unless ``reference`` may be called; ("module", "name")."""
        module, qualname = split_reference(reference)
        top = module.partition(".")[0]
        if is_standard_module(module):
            raise EntryPointRefused(
                f"{reference} is refused: {top} is part of Python or of the runtime, not of the "
                "app's code; only the app version's own functions can be called")
        if reference not in self.entry_points:
            if not self.entry_points:
                raise EntryPointRefused(
                    f"{reference} is refused: the app version's code offers no entry points "
                    "(no app code, or no public top-level function in it)")
            how = (f"only the names its manifest ({MANIFEST_NAME}) lists can be called"
                   if self.declared else
                   "only public top-level functions (def) of its modules can be called")
            raise EntryPointRefused(
                f"{reference} is refused: it is not an entry point of the app version's code; {how}")
        if top not in self.modules and top not in set(carried_modules):
            raise EntryPointRefused(
                f"{reference} is refused: module {top} is not shipped in the app version's code")
        return module, qualname

    def __repr__(self) -> str:
        return f"EntryPoints({len(self.modules)} modules, {sorted(self.entry_points)!r})"


def read_manifest(root: Path, names: Optional[Iterable[str]] = None) -> Optional[dict]:
    """The checked manifest at the top of a code zip or directory, or None without one."""
    names = _listing(root) if names is None else names
    if MANIFEST_NAME not in names:
        return None
    try:
        document = json.loads(_read(root, MANIFEST_NAME, _MAX_MANIFEST_BYTES))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise EntryPointRefused(f"{root}: {MANIFEST_NAME} is unreadable: {exc}") from None
    return check_manifest(document, f"{root}: {MANIFEST_NAME}")


def check_manifest(document, where: str) -> dict:
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise EntryPointRefused(f"{where}: not a format-{MANIFEST_FORMAT} entry point manifest")
    modules, points = document.get("modules"), document.get("entry_points")
    if not (isinstance(modules, list) and all(isinstance(m, str) for m in modules)
            and isinstance(points, list) and all(isinstance(p, str) for p in points)):
        raise EntryPointRefused(f"{where}: \"modules\" and \"entry_points\" must be lists of names")
    return {"format": MANIFEST_FORMAT, "modules": modules, "entry_points": points}


# -- the import itself ----------------------------------------------------------------------
def _inside(path, roots: Iterable[str]) -> bool:
    if not path:
        return False
    path = os.path.realpath(path)
    for root in roots:
        root = os.path.realpath(root)
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def module_origin_ok(module, roots: Iterable[str]) -> bool:
    """True when ``module`` was loaded from a file inside one of ``roots``."""
    return _inside(getattr(module, "__file__", None), roots)


def import_entry_point(reference: str, entry_points: EntryPoints, roots: Iterable[os.PathLike],
                       carried: Mapping[str, os.PathLike] = None):
    """Check ``reference``, then import and return the function it names.

    ``roots``: the app's code (zips or directories, already on sys.path);
    ``carried``: top-level module -> directory, for the packages the app version
    carries. Raises EntryPointRefused (nothing imported) or ImportError/AttributeError.
    """
    import importlib

    carried = dict(carried or {})
    module_name, qualname = entry_points.check(reference, carried)
    top = module_name.partition(".")[0]
    allowed = [str(r) for r in roots] + [str(p) for p in carried.values()]
    loaded = sys.modules.get(top)
    if loaded is not None:
        if not module_origin_ok(loaded, allowed):
            raise EntryPointRefused(f"{reference} is refused: module {top} is already loaded from "
                                    "outside the app version's code")
    else:
        found = _first_path_entry(top)
        if found is None:
            raise ImportError(f"No module named {top!r}")
        if not _inside(found, allowed):
            raise EntryPointRefused(f"{reference} is refused: module {top} would be imported "
                                    f"from {found}, outside the app version's code")
    module = importlib.import_module(module_name)
    if not module_origin_ok(module, allowed):
        raise EntryPointRefused(f"{reference} is refused: module {module_name} does not come "
                                "from the app version's code")
    target = module
    for part in qualname.split("."):
        target = getattr(target, part)
    owner = sys.modules.get(getattr(target, "__module__", None) or "")
    if owner is None or not module_origin_ok(owner, allowed):
        raise EntryPointRefused(
            f"{reference} is refused: the object it names comes from "
            f"{getattr(target, '__module__', None) or 'an unknown module'}, not from the app "
            "version's code")
    return target


def _first_path_entry(top: str) -> Optional[str]:
    """Where the normal import of ``top`` would find it (the first sys.path entry)."""
    import importlib.machinery

    spec = importlib.machinery.PathFinder.find_spec(top)
    if spec is None:
        return None
    if spec.origin in (None, "namespace"):
        locations = list(spec.submodule_search_locations or ())
        return locations[0] if locations else None
    return spec.origin
