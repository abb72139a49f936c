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
import logging
from typing import Any, Iterable, Iterator, Optional, Sequence

from ..errors import BoincPymwError

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
