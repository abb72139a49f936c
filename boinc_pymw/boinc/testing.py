"""Throw-away BOINC projects for tests (ours, and a project's own validators).

``make_project(path, db_name, **config)`` lays out what BOINC's make_project
would (config.xml, download/ upload/ keys/ cgi-bin/ bin/ templates/ log_<host>/
and friends), drops and re-creates database ``db_name`` from our
BOINC-compatible schema.sql on a MySQL/MariaDB server (127.0.0.1:3306 as
root with no password unless ``db_host``/``db_user``/``db_passwd`` say
otherwise) and returns a :class:`ThrowawayProject`, a
:class:`~boinc_pymw.boinc.project.Project` with ``drop()``.

``add_platform``/``add_app``/``add_user``/``add_team``/``add_host`` insert
complete rows (BOINC's columns are NOT NULL without defaults), so a test
can set up the world a validator or assimilator expects in a line each::

    project = make_project(tmp_path / "proj", "test_myapp")
    app_id = add_app(project, "myapp")
    user_id = add_user(project, "u@example.org")
    host_id = add_host(project, user_id)
    ...
    project.drop()
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import zlib
from typing import Iterable, Optional

from .config import Daemon, Task
from .db import Database, DatabaseError
from .project import Project
from .project_files import make_project_dir

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schema.sql")

#: Directories BOINC's make_project creates (log/pid/tmp get the host suffix).
PROJECT_DIRS = ("download", "upload", "keys", "cgi-bin", "bin", "templates",
                "html", "apps", "log_{host}", "pid_{host}", "tmp_{host}")


_db_counter = itertools.count()


def unique_db_name(prefix: str = "pymw_test") -> str:
    """A database name no other test process uses at the same time."""
    return f"{prefix}_{os.getpid()}_{next(_db_counter)}"


def short_hostname() -> str:
    """The host name as bin/start matches it: gethostname() cut at the first dot."""
    return socket.gethostname().split(".")[0]


def schema_statements(path: str = SCHEMA_PATH) -> list:
    """The SQL statements of schema.sql (comments stripped, split on ';')."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            if stripped.startswith("--"):
                continue
            lines.append(line)
    return [s.strip() for s in "".join(lines).split(";") if s.strip()]


def merged_schema_statements(path: str = SCHEMA_PATH) -> list:
    """schema.sql with each ``alter table T add ...`` folded into T's CREATE TABLE.

    The same tables and indexes, in one statement per table: creating a test
    database this way takes a fraction of the time (each ALTER rebuilds its
    table on disk).
    """
    import re

    creates, order, extra = {}, [], []
    for statement in schema_statements(path):
        words = statement.split(None, 3)
        kind = " ".join(words[:2]).lower()
        if kind == "create table":
            creates[words[2]] = statement
            order.append(words[2])
        elif kind == "alter table" and words[2] in creates:
            clauses = re.split(r",\s*(?=add\s)", words[3].strip(), flags=re.IGNORECASE)
            body = ",\n    ".join(re.sub(r"^add\s+", "", c.strip(), flags=re.IGNORECASE)
                                   for c in clauses)
            create = creates[words[2]]
            cut = create.rindex(")")
            creates[words[2]] = f"{create[:cut].rstrip()},\n    {body}\n{create[cut:]}"
        else:
            extra.append(statement)
    return [creates[t] for t in order] + extra


def _server(host: str, user: str, passwd: str) -> Database:
    host, _, port = host.partition(":")
    return Database("information_schema", host=host, user=user, passwd=passwd,
                    port=int(port or 3306))


def create_database(db_name: str, host: str = "127.0.0.1", user: str = "root",
                    passwd: str = "") -> None:
    """Drop ``db_name`` if it exists, create it, and load schema.sql into it."""
    _check_db_name(db_name)
    server = _server(host, user, passwd)
    try:
        server.execute(f"DROP DATABASE IF EXISTS `{db_name}`")
        server.execute(f"CREATE DATABASE `{db_name}` CHARACTER SET utf8mb4")
        server.execute(f"USE `{db_name}`")
        for statement in merged_schema_statements():
            server.execute(statement)
    finally:
        server.close()


def drop_database(db_name: str, host: str = "127.0.0.1", user: str = "root",
                  passwd: str = "") -> None:
    _check_db_name(db_name)
    server = _server(host, user, passwd)
    try:
        server.execute(f"DROP DATABASE IF EXISTS `{db_name}`")
    finally:
        server.close()


def _check_db_name(db_name: str) -> None:
    # Database names cannot be query parameters; allow only a safe alphabet.
    if not db_name or not all(c.isalnum() or c == "_" for c in db_name) or len(db_name) > 64:
        raise DatabaseError(f"database name {db_name!r}: use 1-64 letters, digits or '_'")


def default_config(path: str, db_name: str) -> dict:
    """config.xml values as BOINC's make_project (py/Boinc/setup_project.py) sets them."""
    name = os.path.basename(os.path.abspath(path))
    master_url = f"http://localhost/{name}/"
    return {
        "db_name": db_name,
        "db_host": "127.0.0.1",
        "db_user": "root",
        "db_passwd": "",
        "master_url": master_url,
        "long_name": name,
        "host": short_hostname(),
        "shmem_key": "0x1111" + format(zlib.crc32(db_name.encode()) % 0xFFFF, "04x"),
        "key_dir": os.path.join(path, "keys"),
        "download_url": master_url + "download",
        "download_dir": os.path.join(path, "download"),
        "upload_url": f"http://localhost/{name}_cgi/file_upload_handler",
        "upload_dir": os.path.join(path, "upload"),
        "uldl_dir_fanout": 1024,
        "cache_md5_info": True,
        "dont_generate_upload_certificates": True,
        "ignore_upload_certificates": True,
        "delete_delay_hours": 0,
    }


def write_config_xml(path: str, values: dict, daemons: Iterable = (),
                     tasks: Iterable = ()) -> str:
    """Write ``path/config.xml``; True -> ``<x/>``, False/None -> omitted."""
    from lxml import etree

    root = etree.Element("boinc")
    config = etree.SubElement(root, "config")
    for key, value in values.items():
        if value is None or value is False:
            continue
        el = etree.SubElement(config, key)
        if value is not True:
            el.text = str(value)
    for tag, items, cls in (("daemons", daemons, Daemon), ("tasks", tasks, Task)):
        section = etree.SubElement(root, tag)
        for item in items:
            if isinstance(item, str):
                item = cls(cmd=item) if cls is Daemon else cls(cmd=item, period="1 day")
            fields = item if isinstance(item, dict) else vars(item)
            entry = etree.SubElement(section, tag[:-1])
            for key, value in fields.items():
                if value is None or value is False:
                    continue
                el = etree.SubElement(entry, key)
                if value is not True:
                    el.text = str(value)
    target = os.path.join(path, "config.xml")
    etree.ElementTree(root).write(target, pretty_print=True, encoding="utf-8")
    return target


class ThrowawayProject(Project):
    """A project made by :func:`make_project`; ``drop()`` removes its database."""

    def drop(self) -> None:
        self.close()
        c = self.config
        drop_database(c.db_name, c.values.get("db_host") or "127.0.0.1", c.db_user,
                      c.db_passwd)


def make_project(path, db_name: str, *, daemons: Iterable = (), tasks: Iterable = (),
                 **config) -> ThrowawayProject:
    """Lay out a project directory at ``path`` and (re)create its database.

    ``config`` adds or overrides config.xml ``<config>`` elements (e.g.
    ``uldl_dir_fanout=0``, ``db_host="127.0.0.1:3307"``); ``daemons`` and
    ``tasks`` are :class:`Daemon`/:class:`Task` objects, dicts, or command strings.
    """
    path = os.path.abspath(os.fspath(path))
    host = short_hostname()
    make_project_dir(path)
    for directory in PROJECT_DIRS:
        make_project_dir(os.path.join(path, directory.format(host=host)))
    os.chmod(os.path.join(path, "keys"), 0o700)       # private keys live there
    values = default_config(path, db_name)
    values.update(config)
    write_config_xml(path, values, daemons, tasks)
    create_database(db_name, str(values["db_host"]), str(values["db_user"]),
                    str(values["db_passwd"] or ""))
    return ThrowawayProject(path)


# -- rows with every NOT NULL column filled in ----------------------------------------------

def _insert(project: Project, table: str, defaults: dict, overrides: dict) -> int:
    row = dict(defaults)
    unknown = set(overrides) - set(row)
    if unknown:
        raise ValueError(f"{table} has no column(s) {sorted(unknown)}")
    row.update(overrides)
    return project.db.insert(table, row)


def add_platform(project: Project, name: str = "x86_64-pc-linux-gnu", **fields) -> int:
    return _insert(project, "platform", {
        "create_time": int(time.time()), "name": name, "user_friendly_name": name,
        "deprecated": 0}, fields)


def add_app(project: Project, name: str, **fields) -> int:
    return _insert(project, "app", {
        "create_time": int(time.time()), "name": name, "min_version": 0, "deprecated": 0,
        "user_friendly_name": name, "homogeneous_redundancy": 0, "weight": 1.0, "beta": 0,
        "target_nresults": 0, "min_avg_pfc": 1.0, "host_scale_check": 0,
        "homogeneous_app_version": 0, "non_cpu_intensive": 0, "locality_scheduling": 0,
        "n_size_classes": 0, "fraction_done_exact": 0}, fields)


def add_team(project: Project, name: str, userid: int = 0, **fields) -> int:
    return _insert(project, "team", {
        "create_time": int(time.time()), "userid": userid, "name": name,
        "name_lc": name.lower(), "url": "", "type": 1, "name_html": "", "description": "",
        "nusers": 0, "country": "", "total_credit": 0.0, "expavg_credit": 0.0,
        "expavg_time": 0.0, "seti_id": 0, "ping_user": 0, "ping_time": 0, "joinable": 1},
        fields)


def add_user(project: Project, email_addr: str, name: Optional[str] = None,
             teamid: int = 0, **fields) -> int:
    import secrets

    return _insert(project, "user", {
        "create_time": int(time.time()), "email_addr": email_addr,
        "name": name or email_addr.split("@")[0], "authenticator": secrets.token_hex(16),
        "country": "", "postal_code": "", "total_credit": 0.0, "expavg_credit": 0.0,
        "expavg_time": 0.0, "global_prefs": "", "project_prefs": "", "teamid": teamid,
        "venue": "", "url": "", "send_email": 0, "show_hosts": 0, "posts": 0, "seti_id": 0,
        "seti_nresults": 0, "seti_last_result_time": 0, "seti_total_cpu": 0.0,
        "signature": "", "has_profile": 0, "cross_project_id": secrets.token_hex(16),
        "passwd_hash": "", "email_validated": 0, "donated": 0, "login_token": "",
        "login_token_time": 0.0, "previous_email_addr": "", "email_addr_change_time": 0.0},
        fields)


def add_host(project: Project, userid: int, **fields) -> int:
    return _insert(project, "host", {
        "create_time": int(time.time()), "userid": userid, "rpc_seqno": 0, "rpc_time": 0,
        "total_credit": 0.0, "expavg_credit": 0.0, "expavg_time": 0.0, "timezone": 0,
        "domain_name": "testhost", "serialnum": "", "last_ip_addr": "127.0.0.1",
        "nsame_ip_addr": 0, "on_frac": 1.0, "connected_frac": 1.0, "active_frac": 1.0,
        "cpu_efficiency": 1.0, "duration_correction_factor": 1.0, "p_ncpus": 1,
        "p_vendor": "", "p_model": "", "p_fpops": 1e9, "p_iops": 1e9, "p_membw": 1e9,
        "os_name": "Linux", "os_version": "", "m_nbytes": 1e9, "m_cache": 1e6,
        "m_swap": 1e9, "d_total": 1e11, "d_free": 1e10, "d_boinc_used_total": 0.0,
        "d_boinc_used_project": 0.0, "d_boinc_max": 1e10, "n_bwup": 1e6, "n_bwdown": 1e6,
        "credit_per_cpu_sec": 0.0, "venue": "", "nresults_today": 0, "avg_turnaround": 0.0,
        "host_cpid": "", "external_ip_addr": "", "max_results_day": 0, "error_rate": 0.0,
        "product_name": "", "gpu_active_frac": 0.0, "p_ngpus": 0, "p_gpu_fpops": 0.0},
        fields)
