"""Which account a remote Master submits as: its authenticator, found safely.

In order: the ``authenticator=`` option (``--authenticator``), the
``BOINC_PYMW_AUTHENTICATOR`` environment variable, then a credentials file
(``credentials=`` / ``--credentials``, default
``~/.config/boinc_pymw/credentials``). The file must belong to the user and
be closed to everyone else (``chmod 600``), like an ssh key; each line is
``AUTHENTICATOR`` or ``PROJECT_URL AUTHENTICATOR`` (``#`` starts a comment),
and a line naming the project's URL wins over a bare one.

The authenticator is never printed or logged. A plain ``http://`` URL to a
host other than this machine sends it in clear text: that gets a warning.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Optional

from ...errors import BoincPymwError
from ._rpc import is_local_host

ENV_AUTHENTICATOR = "BOINC_PYMW_AUTHENTICATOR"


class CredentialsError(BoincPymwError):
    """No usable authenticator, or a credentials file others could read."""


class InsecureTransportWarning(UserWarning):
    """The authenticator would travel unencrypted over the network."""


def default_credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "boinc_pymw" / "credentials"


def _same_project(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def read_credentials_file(path: Path, url: str) -> Optional[str]:
    """The authenticator for ``url`` in ``path`` (None when the file has none)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"credentials file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "r", encoding="utf-8") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CredentialsError(f"credentials file {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise CredentialsError(f"credentials file {path} belongs to another user; "
                                   f"refusing to use it")
        if info.st_mode & 0o077:
            raise CredentialsError(
                f"credentials file {path} can be read or changed by other users "
                f"(mode {stat.S_IMODE(info.st_mode):03o}); refusing to use it: chmod 600 {path}")
        text = fh.read()
    bare = None
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) == 1:
            bare = bare or words[0]
        elif len(words) == 2:
            if _same_project(words[0], url):
                return words[1]
        else:
            raise CredentialsError(f"credentials file {path}, line {number}: expected "
                                   f"'AUTHENTICATOR' or 'PROJECT_URL AUTHENTICATOR'")
    return bare


def find_authenticator(url: str, authenticator: Optional[str] = None,
                       credentials: Optional[os.PathLike] = None) -> str:
    """The account's authenticator for ``url`` (see the module docstring)."""
    if authenticator:
        return authenticator
    if os.environ.get(ENV_AUTHENTICATOR):
        return os.environ[ENV_AUTHENTICATOR].strip()
    path = Path(credentials) if credentials else default_credentials_path()
    found = read_credentials_file(path, url)
    if found:
        return found
    if credentials:
        raise CredentialsError(f"credentials file {path} has no authenticator for {url}")
    raise CredentialsError(
        f"no authenticator for {url}: give --authenticator, set ${ENV_AUTHENTICATOR}, or "
        f"write it into {path} (mode 600); it is the account key shown on the "
        f"project's account page")


def warn_if_insecure(url: str) -> None:
    """Warn when the authenticator would cross the network unencrypted."""
    if url.lower().startswith("http://") and not is_local_host(url):
        warnings.warn(f"{url} is plain http to another host: the account's authenticator "
                      f"travels unencrypted; use https://", InsecureTransportWarning,
                      stacklevel=3)
