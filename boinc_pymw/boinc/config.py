"""A typed view of a BOINC project's ``config.xml``.

BOINC's daemons read ``<boinc><config>...</config><daemons/><tasks/></boinc>``
with SCHED_CONFIG::parse_file; this module reads the same file with lxml and
exposes the keys a toolkit needs as attributes of :class:`ProjectConfig`
(every other ``<config>`` element stays reachable through ``config.get``).

Booleans follow BOINC's parser: ``<cache_md5_info/>`` and
``<cache_md5_info>1</cache_md5_info>`` are true, ``0`` is false.
Relative directories are taken relative to the project directory.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from typing import Optional

from .._xml import parse_document
from ..errors import BoincPymwError


class ConfigError(BoincPymwError):
    """config.xml is missing or malformed; the message names the file and why."""


@dataclass
class Daemon:
    """One ``<daemons><daemon>`` entry, as bin/start reads it."""

    cmd: str
    host: Optional[str] = None
    disabled: bool = False
    output: Optional[str] = None
    pid_file: Optional[str] = None
    lock_file: Optional[str] = None
    use_shell: bool = False

    @property
    def program(self) -> str:
        """Base name of the first word of cmd (bin/start names logs/locks after it)."""
        first = self.cmd.split()[0] if self.cmd.split() else ""
        return os.path.basename(first)


@dataclass
class Task:
    """One ``<tasks><task>`` entry: a command bin/start --cron runs every period."""

    cmd: str
    period: str = ""
    output: Optional[str] = None
    disabled: bool = False
    always_run: bool = False
    host: Optional[str] = None

    @property
    def period_seconds(self) -> float:
        """``<period>`` ("24 hours", "5 min", "1 day", "30 seconds") in seconds."""
        return parse_period(self.period)


_PERIOD_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 7 * 86400, "week": 7 * 86400, "weeks": 7 * 86400,
}


def parse_period(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text or "")
    if not match:
        raise ConfigError(f"cannot parse task period {text!r} (expected e.g. '24 hours')")
    number, unit = float(match.group(1)), match.group(2).lower() or "seconds"
    if unit not in _PERIOD_UNITS:
        raise ConfigError(f"unknown unit {unit!r} in task period {text!r}")
    return number * _PERIOD_UNITS[unit]


def _flag(text: Optional[str]) -> bool:
    """BOINC's boolean: present and empty, or a non-zero number, is true."""
    if text is None:
        return False
    text = text.strip()
    if text == "":
        return True
    try:
        return float(text) != 0
    except ValueError:
        return text.lower() in ("true", "yes")


@dataclass
class ProjectConfig:
    """The parsed config.xml of one project."""

    path: str                                   # the config.xml file
    project_dir: str
    values: dict = field(default_factory=dict)  # <config> child -> text ("" for <x/>)
    daemons: list = field(default_factory=list)
    tasks: list = field(default_factory=list)

    # -- generic access ---------------------------------------------------------
    def get(self, key: str, default=None):
        return self.values.get(key, default)

    def flag(self, key: str) -> bool:
        return _flag(self.values.get(key))

    def _int(self, key: str, default: int) -> int:
        text = self.values.get(key)
        if text is None or text.strip() == "":
            return default
        try:
            return int(float(text))
        except ValueError:
            raise ConfigError(f"{self.path}: <{key}> must be a number, not {text!r}") from None

    def _dir(self, key: str, default: str) -> str:
        value = self.values.get(key) or default
        return os.path.normpath(os.path.join(self.project_dir, value))

    # -- database -----------------------------------------------------------------
    @property
    def db_name(self) -> str:
        return self.values.get("db_name", "")

    @property
    def db_host(self) -> str:
        host = self.values.get("db_host", "") or "localhost"
        # As SCHED_CONFIG: the machine's own name means the local server.
        return "localhost" if host == socket.gethostname() else host

    @property
    def db_user(self) -> str:
        return self.values.get("db_user", "")

    @property
    def db_passwd(self) -> str:
        return self.values.get("db_passwd", "")

    # -- project identity -------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return self.values.get("master_url", "")

    @property
    def long_name(self) -> str:
        return self.values.get("long_name", "")

    @property
    def host(self) -> str:
        return self.values.get("host", "")

    # -- files ---------------------------------------------------------------------------
    @property
    def download_dir(self) -> str:
        return self._dir("download_dir", "download")

    @property
    def upload_dir(self) -> str:
        return self._dir("upload_dir", "upload")

    @property
    def key_dir(self) -> str:
        return self._dir("key_dir", "keys")

    @property
    def download_url(self) -> str:
        # Verbatim, as BOINC uses it: a trailing '/' gives '//' in URLs there too.
        return self.values.get("download_url", "")

    @property
    def upload_url(self) -> str:
        return self.values.get("upload_url", "")

    @property
    def uldl_dir_fanout(self) -> int:
        fanout = self._int("uldl_dir_fanout", 0)
        if fanout < 0:
            raise ConfigError(f"{self.path}: <uldl_dir_fanout> must be >= 0, not {fanout}")
        return fanout

    @property
    def cache_md5_info(self) -> bool:
        return self.flag("cache_md5_info")

    @property
    def dont_generate_upload_certificates(self) -> bool:
        return self.flag("dont_generate_upload_certificates")

    @property
    def ignore_upload_certificates(self) -> bool:
        return self.flag("ignore_upload_certificates")

    @property
    def delete_delay_hours(self) -> float:
        text = self.values.get("delete_delay_hours")
        return float(text) if text not in (None, "") else 0.0

    # -- reading ----------------------------------------------------------------------
    @classmethod
    def read(cls, path: str) -> "ProjectConfig":
        """Parse ``path`` (a config.xml); errors name the file and the problem."""
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: no such file (a BOINC project directory has config.xml)")
        with open(path, "rb") as f:
            root = parse_document(f.read(), path, "boinc", ConfigError)
        config_el = root.find("config")
        if config_el is None:
            raise ConfigError(f"{path}: no <config> section inside <boinc>")
        values = {}
        for child in config_el:
            if isinstance(child.tag, str):
                values[child.tag] = (child.text or "").strip()
        project_dir = values.get("project_dir") or os.path.dirname(path)
        config = cls(path=path, project_dir=os.path.abspath(project_dir), values=values)
        config.daemons = [cls._daemon(el, path) for el in root.findall("daemons/daemon")]
        config.tasks = [cls._task(el, path) for el in root.findall("tasks/task")]
        return config

    @staticmethod
    def _text(el, tag: str) -> Optional[str]:
        child = el.find(tag)
        if child is None:
            return None
        return (child.text or "").strip()

    @classmethod
    def _daemon(cls, el, path: str) -> Daemon:
        cmd = cls._text(el, "cmd")
        if not cmd:
            raise ConfigError(f"{path}: a <daemon> has no <cmd>")
        return Daemon(cmd=cmd, host=cls._text(el, "host") or None,
                      disabled=_flag(cls._text(el, "disabled")),
                      output=cls._text(el, "output") or None,
                      pid_file=cls._text(el, "pid_file") or None,
                      lock_file=cls._text(el, "lock_file") or None,
                      use_shell=_flag(cls._text(el, "use_shell")))

    @classmethod
    def _task(cls, el, path: str) -> Task:
        cmd = cls._text(el, "cmd")
        if not cmd:
            raise ConfigError(f"{path}: a <task> has no <cmd>")
        period = cls._text(el, "period") or ""
        try:  # fail now, naming the file, rather than at cron time
            parse_period(period)
        except ConfigError as exc:
            raise ConfigError(f"{path}: <task> {cmd!r}: {exc}") from None
        return Task(cmd=cmd, period=period, output=cls._text(el, "output") or None,
                    disabled=_flag(cls._text(el, "disabled")),
                    always_run=_flag(cls._text(el, "always_run")),
                    host=cls._text(el, "host") or None)
