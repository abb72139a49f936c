"""A small layer over mysqlclient for a BOINC project's database.

Why not an ORM: BOINC's daemons are defined by the exact SQL they issue, and
ours must do to the database what BOINC's C++ daemons do. So callers write
SQL; this layer adds what every caller needs:

* parameterised queries only (``%s`` placeholders, never string formatting
  of values);
* autocommit by default (as BOINC's daemons run), explicit ``transaction()``
  where a group of writes must land together;
* a lost connection is reopened once and logged; a second failure raises
  :class:`DatabaseError`. A statement inside a transaction is never retried
  (the transaction is gone with the connection), it raises at once.
"""

from __future__ import annotations

import contextlib
import dataclasses as _dc
import logging
from typing import Any, Iterable, Iterator, Optional, Sequence

from ..errors import BoincPymwError
from .states import (AssimilateState, ClientState, FileDeleteState, Outcome, ServerState,
                     ValidateState, WuError)

log = logging.getLogger("boinc_pymw.db")

# mysqlclient / MariaDB client error codes that mean "the connection is gone".
_CONNECTION_LOST = {2002, 2003, 2006, 2013, 2055, 4031}


class DatabaseError(BoincPymwError):
    """The database could not be reached or rejected a statement."""


class Database:
    """One connection to a BOINC project database."""

    def __init__(self, name: str, host: str = "localhost", user: str = "root",
                 passwd: str = "", port: int = 3306, *, connect_timeout: int = 10):
        self.name = name
        self.host = host or "localhost"
        self.user = user
        self.passwd = passwd or ""
        self.port = int(port or 3306)
        self.connect_timeout = connect_timeout
        self._conn = None
        self._in_transaction = False

    @classmethod
    def from_config(cls, config) -> "Database":
        """Open the database named by a parsed config.xml (db_name, db_host, ...)."""
        host, _, port = (config.db_host or "localhost").partition(":")
        return cls(config.db_name, host=host, user=config.db_user,
                   passwd=config.db_passwd, port=int(port or 3306))

    # -- connection -----------------------------------------------------------
    def connect(self) -> "Database":
        import MySQLdb

        try:
            self._conn = MySQLdb.connect(
                host=self.host, user=self.user, passwd=self.passwd, db=self.name,
                port=self.port, connect_timeout=self.connect_timeout,
                charset="utf8mb4", autocommit=True,
            )
        except MySQLdb.Error as exc:
            self._conn = None
            raise DatabaseError(
                f"cannot connect to database {self.name!r} at {self.host}:{self.port} "
                f"as {self.user!r}: {exc}"
            ) from exc
        return self

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def __enter__(self):
        if self._conn is None:
            self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def connection(self):
        if self._conn is None:
            self.connect()
        return self._conn

    # -- statements -------------------------------------------------------------
    def _run(self, op: str, sql: str, params: Any = None, *, many: bool = False):
        import MySQLdb

        attempts = 1 if self._in_transaction else 2
        for attempt in range(attempts):
            try:
                cursor = self.connection.cursor()
                try:
                    if many:
                        cursor.executemany(sql, params)
                    else:
                        cursor.execute(sql, params)
                    if op == "rows":
                        names = [d[0] for d in cursor.description or ()]
                        return [dict(zip(names, row)) for row in cursor.fetchall()]
                    if op == "insert":
                        return cursor.lastrowid
                    return cursor.rowcount
                finally:
                    cursor.close()
            except MySQLdb.OperationalError as exc:
                code = exc.args[0] if exc.args else None
                if code in _CONNECTION_LOST and attempt + 1 < attempts:
                    log.warning("database connection lost (%s); reconnecting once", exc)
                    self.close()
                    continue
                if code in _CONNECTION_LOST:
                    self.close()
                raise DatabaseError(f"database error: {exc}") from exc
            except MySQLdb.Error as exc:
                raise DatabaseError(f"database error: {exc} [{sql.strip()[:200]}]") from exc
            except DatabaseError:
                if attempt + 1 < attempts:
                    continue
                raise

    def query(self, sql: str, params: Any = None) -> list[dict]:
        """Rows of a SELECT as dicts (column name -> value)."""
        return self._run("rows", sql, params)

    def query_one(self, sql: str, params: Any = None) -> Optional[dict]:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Any = None) -> int:
        """Run a write; returns the number of affected rows."""
        return self._run("count", sql, params)

    def executemany(self, sql: str, seq_of_params: Sequence) -> int:
        return self._run("count", sql, seq_of_params, many=True)

    def insert(self, table: str, row: dict) -> int:
        """INSERT one row given as a dict; returns the new id."""
        columns = ", ".join(f"`{c}`" for c in row)
        marks = ", ".join(["%s"] * len(row))
        return self._run("insert", f"INSERT INTO `{table}` ({columns}) VALUES ({marks})",
                         list(row.values()))

    def insert_many(self, table: str, rows: Iterable[dict]) -> int:
        """Multi-row INSERT of dicts sharing the same keys; returns rows inserted."""
        rows = list(rows)
        if not rows:
            return 0
        columns = list(rows[0])
        sql = (f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) "
               f"VALUES ({', '.join(['%s'] * len(columns))})")
        return self.executemany(sql, [[r[c] for c in columns] for r in rows])

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Database"]:
        """Group writes: all land (COMMIT) or none (ROLLBACK on any exception)."""
        if self._in_transaction:
            yield self
            return
        self.execute("START TRANSACTION")
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._in_transaction = False
            with contextlib.suppress(Exception):
                self._conn.rollback()
            raise
        else:
            self._in_transaction = False
            try:
                self.connection.commit()
            except Exception as exc:
                raise DatabaseError(f"commit failed: {exc}") from exc


# -- typed rows ---------------------------------------------------------------------------------
#
# Small records for the rows a toolkit reads. ``Record.from_row(dict)`` takes
# a row from ``Database.query`` (extra columns are ignored, so ``SELECT *``
# keeps working when BOINC adds columns), turns blobs into text and state
# integers into the enums of :mod:`boinc_pymw.boinc.states`.


class Record:
    """Base of the typed rows; subclasses are dataclasses named after the table."""

    table: str = ""
    _enums: dict = {}

    @classmethod
    def from_row(cls, row: dict):
        values = {}
        for f in _dc.fields(cls):
            if f.name not in row:
                continue
            value = row[f.name]
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("utf-8", "replace")
            enum = cls._enums.get(f.name)
            if enum is not None and value is not None:
                try:
                    value = enum(value)
                except ValueError:
                    pass  # a value BOINC added after us: keep the integer
            values[f.name] = value
        return cls(**values)


@_dc.dataclass
class Platform(Record):
    table = "platform"
    id: int = 0
    create_time: int = 0
    name: str = ""
    user_friendly_name: str = ""
    deprecated: int = 0


@_dc.dataclass
class App(Record):
    table = "app"
    id: int = 0
    create_time: int = 0
    name: str = ""
    min_version: int = 0
    deprecated: int = 0
    user_friendly_name: str = ""
    homogeneous_redundancy: int = 0
    weight: float = 1.0
    beta: int = 0
    target_nresults: int = 0
    min_avg_pfc: float = 1.0
    host_scale_check: int = 0
    homogeneous_app_version: int = 0
    non_cpu_intensive: int = 0
    locality_scheduling: int = 0
    n_size_classes: int = 0
    fraction_done_exact: int = 0


@_dc.dataclass
class AppVersion(Record):
    table = "app_version"
    id: int = 0
    create_time: int = 0
    appid: int = 0
    version_num: int = 0
    platformid: int = 0
    xml_doc: str = ""
    min_core_version: int = 0
    max_core_version: int = 0
    deprecated: int = 0
    plan_class: str = ""
    pfc_n: float = 0.0
    pfc_avg: float = 0.0
    pfc_scale: float = 0.0
    expavg_credit: float = 0.0
    expavg_time: float = 0.0
    beta: int = 0


@_dc.dataclass
class Workunit(Record):
    table = "workunit"
    _enums = {"file_delete_state": FileDeleteState, "assimilate_state": AssimilateState,
              "error_mask": WuError}
    id: int = 0
    create_time: int = 0
    appid: int = 0
    name: str = ""
    xml_doc: str = ""
    batch: int = 0
    rsc_fpops_est: float = 0.0
    rsc_fpops_bound: float = 0.0
    rsc_memory_bound: float = 0.0
    rsc_disk_bound: float = 0.0
    need_validate: int = 0
    canonical_resultid: int = 0
    canonical_credit: float = 0.0
    transition_time: int = 0
    delay_bound: int = 0
    error_mask: WuError = WuError(0)
    file_delete_state: FileDeleteState = FileDeleteState.INIT
    assimilate_state: AssimilateState = AssimilateState.INIT
    hr_class: int = 0
    opaque: float = 0.0
    min_quorum: int = 0
    target_nresults: int = 0
    max_error_results: int = 0
    max_total_results: int = 0
    max_success_results: int = 0
    result_template_file: str = ""
    priority: int = 0
    mod_time: object = None
    rsc_bandwidth_bound: float = 0.0
    fileset_id: int = 0
    app_version_id: int = 0
    transitioner_flags: int = 0
    size_class: int = -1
    keywords: str = ""
    app_version_num: int = 0


@_dc.dataclass
class Result(Record):
    table = "result"
    _enums = {"server_state": ServerState, "outcome": Outcome, "client_state": ClientState,
              "validate_state": ValidateState, "file_delete_state": FileDeleteState}
    id: int = 0
    create_time: int = 0
    workunitid: int = 0
    server_state: ServerState = ServerState.INACTIVE
    outcome: Outcome = Outcome.INIT
    client_state: ClientState = ClientState.NEW
    hostid: int = 0
    userid: int = 0
    report_deadline: int = 0
    sent_time: int = 0
    received_time: int = 0
    name: str = ""
    cpu_time: float = 0.0
    xml_doc_in: str = ""
    xml_doc_out: str = ""
    stderr_out: str = ""
    batch: int = 0
    file_delete_state: FileDeleteState = FileDeleteState.INIT
    validate_state: ValidateState = ValidateState.INIT
    claimed_credit: float = 0.0
    granted_credit: float = 0.0
    opaque: float = 0.0
    random: int = 0
    app_version_num: int = 0
    appid: int = 0
    exit_status: int = 0
    teamid: int = 0
    priority: int = 0
    mod_time: object = None
    elapsed_time: float = 0.0
    flops_estimate: float = 0.0
    app_version_id: int = 0
    runtime_outlier: int = 0
    size_class: int = -1
    peak_working_set_size: float = 0.0
    peak_swap_size: float = 0.0
    peak_disk_usage: float = 0.0


@_dc.dataclass
class Batch(Record):
    table = "batch"
    id: int = 0
    user_id: int = 0
    create_time: int = 0
    njobs: int = 0
    fraction_done: float = 0.0
    nerror_jobs: int = 0
    state: int = 0
    completion_time: float = 0.0
    credit_canonical: float = 0.0
    credit_total: float = 0.0
    name: str = ""
    app_id: int = 0
    description: str = ""


@_dc.dataclass
class Host(Record):
    """The host columns credit and scheduling decisions read."""

    table = "host"
    id: int = 0
    userid: int = 0
    total_credit: float = 0.0
    expavg_credit: float = 0.0
    expavg_time: float = 0.0
    avg_turnaround: float = 0.0
    p_fpops: float = 0.0
    p_ncpus: int = 0
    os_name: str = ""
    p_vendor: str = ""
    p_model: str = ""
    domain_name: str = ""
    max_results_day: int = 0
    error_rate: float = 0.0


@_dc.dataclass
class User(Record):
    table = "user"
    id: int = 0
    name: str = ""
    email_addr: str = ""
    teamid: int = 0
    total_credit: float = 0.0
    expavg_credit: float = 0.0
    expavg_time: float = 0.0


@_dc.dataclass
class Team(Record):
    table = "team"
    id: int = 0
    name: str = ""
    userid: int = 0
    nusers: int = 0
    total_credit: float = 0.0
    expavg_credit: float = 0.0
    expavg_time: float = 0.0
