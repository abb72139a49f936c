"""What every BOINC server daemon shares: options, stopping, logging, the loop.

BOINC's C++ daemons (``sched/sched_util_basic.cpp``) agree on a handful of
conventions, and ours follow them so that ``bin/start`` can run a Python
daemon listed in ``config.xml`` exactly like a C++ one:

* options are accepted as ``-x`` and ``--x`` alike (BOINC's ``is_arg``);
* the daemon stops when ``<project>/stop_daemons`` exists or on SIGHUP
  (and, here, SIGTERM/SIGINT too) -- but only between two workunits, so a
  workunit is never left half done; sleeping is done in short ticks so the
  stop is noticed within a second;
* log lines carry a timestamp and the PID in BOINC's style and are filtered
  by ``-d N`` (1 critical, 2 normal, 3 debug, 4 debug and SQL);
* ``bin/start`` runs daemons with cwd ``tmp_<host>`` and appends their
  output to ``log_<host>/``; the project is found as BOINC does
  (``$BOINC_PROJECT_DIR``, ``.``, ``..``).

A subclass supplies :meth:`Daemon.do_pass` (one scan of the database) and
optionally extra options; :meth:`Daemon.main` does the rest.

No workunit stops a daemon. What goes wrong while handling one is sorted
into three kinds (:func:`is_infrastructure_fault`):

* the volunteer's or the workunit's fault (a spoiled output, numbers the
  credit formulas cannot take): BOINC's error states, logged, next workunit;
* the infrastructure's (database away or busy, disk full, storage gone):
  back off and retry the same workunit, losing and repeating nothing;
* a bug in the project's handler: logged with its traceback and counted in
  :mod:`~boinc_pymw.boinc.quarantine`; BOINC's policy (exit 1 for
  ``bin/start --cron``, or go on with ``--continue_on_error``) until the
  workunit has failed a few times, then it is set aside and the daemon goes on.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import time
import traceback
from typing import Optional, Sequence

from .db import DatabaseError
from .output_files import TransientFileError
from .quarantine import DEFAULT_LIMIT, Quarantine, quarantine_path

#: BOINC's message levels (sched/sched_msgs.h) -> Python logging levels.
MSG_CRITICAL, MSG_NORMAL, MSG_DEBUG = 1, 2, 3
_LEVELS = {MSG_CRITICAL: logging.ERROR, MSG_NORMAL: logging.INFO, MSG_DEBUG: logging.DEBUG}
#: Python level used for the SQL echo at debug level 4.
SQL_LEVEL = 5

log = logging.getLogger("boinc_pymw.daemon")


# -- what kind of failure ------------------------------------------------------------------
#: server error codes meaning "away, busy or full", not "this statement is wrong"
#: (disk/table full, out of memory, too many connections, shutdown, lock
#: timeout/deadlock, commit failure, read-only, connection killed)
_SERVER_NOT_AVAILABLE = {1021, 1037, 1038, 1040, 1041, 1053, 1114, 1180, 1205, 1213, 1290,
                         1836, 1927, 4031}
#: errno values that mean the machine, not the workunit, is in trouble
_INFRASTRUCTURE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ESTALE,
                          errno.ENOTCONN, errno.ETIMEDOUT, errno.EHOSTDOWN, errno.ENOMEDIUM,
                          errno.EAGAIN, errno.EMFILE, errno.ENFILE, errno.ENOMEM,
                          errno.EACCES, errno.EPERM}


def database_error_code(exc: BaseException) -> Optional[int]:
    """The server's or client's error number behind a DatabaseError (None if unknown)."""
    cause = exc.__cause__
    code = getattr(cause, "args", (None,))[0] if cause is not None else None
    return code if isinstance(code, int) else None


def is_statement_rejected(exc: BaseException) -> bool:
    """A DatabaseError where the server refused the statement itself (bad data, a bug).

    Retrying such a statement fails the same way forever, so it counts against
    the workunit; an unreachable, busy or full server is the infrastructure's fault.
    """
    if not isinstance(exc, DatabaseError):
        return False
    code = database_error_code(exc)
    return code is not None and not 2000 <= code < 3000 and code not in _SERVER_NOT_AVAILABLE


def is_infrastructure_fault(exc: BaseException) -> bool:
    """True for faults of the machine (database, disk, storage): retry, never blame the WU."""
    if isinstance(exc, DatabaseError):
        return not is_statement_rejected(exc)
    if isinstance(exc, TransientFileError):
        return True
    return isinstance(exc, OSError) and exc.errno in _INFRASTRUCTURE_ERRNOS


#: blob columns of the rows handed to project code (the driver returns them as bytes)
BLOB_COLUMNS = ("xml_doc", "xml_doc_in", "xml_doc_out", "stderr_out")


def text_columns(row: dict) -> dict:
    """Decode a row's blob columns to str in place (UTF-8; bad bytes become U+FFFD).

    BOINC's C++ sees these columns as C strings; handlers here get text, so
    ``"Device Emulation" in result["stderr_out"]`` works whatever the volunteer sent.
    """
    for column in BLOB_COLUMNS:
        value = row.get(column)
        if isinstance(value, (bytes, bytearray)):
            row[column] = bytes(value).decode("utf-8", "replace")
    return row


class InfrastructureFault(Exception):
    """Raised by a daemon's per-workunit code: back off, then handle the same workunit again."""


class BoincLogFormatter(logging.Formatter):
    """``2026-11-25 08:15:37.1234 [PID=1234 ]  message`` like BOINC's log_messages."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        frac = int((record.created % 1) * 10000)
        tag = ""
        if record.levelno >= logging.ERROR:
            tag = "[CRITICAL] "
        elif record.levelno <= logging.DEBUG:
            tag = "[debug] "
        text = f"{stamp}.{frac:04d} [PID={os.getpid():<5d}] {tag}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(debug_level: int, stream=None) -> None:
    """Route ``boinc_pymw`` logs to stderr in BOINC's format at ``-d`` level."""
    level = SQL_LEVEL if debug_level >= 4 else _LEVELS.get(max(1, min(debug_level, 3)))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(BoincLogFormatter())
    root = logging.getLogger("boinc_pymw")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


class BoincArgumentParser(argparse.ArgumentParser):
    """argparse that accepts every long option as ``-name`` and ``--name``."""

    def add_option(self, name: str, *aliases: str, **kwargs):
        flags = [f"--{name}", f"-{name}"]
        for alias in aliases:
            flags += [f"--{alias}", f"-{alias}"] if len(alias) > 1 else [f"-{alias}"]
        kwargs.setdefault("dest", name)
        return self.add_argument(*flags, **kwargs)


class StopSignal:
    """Stop requests: the ``stop_daemons`` trigger file or a signal."""

    def __init__(self, project_dir: Optional[str]):
        self.trigger = os.path.join(project_dir, "stop_daemons") if project_dir else None
        self.signalled: Optional[int] = None

    def install(self) -> None:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.signalled = signum

    def requested(self) -> bool:
        return self.signalled is not None or bool(self.trigger and os.path.exists(self.trigger))

    def reason(self) -> str:
        if self.signalled is not None:
            return f"signal {signal.Signals(self.signalled).name}"
        return f"trigger file {self.trigger}"

    def sleep(self, seconds: float, tick: float = 0.25) -> bool:
        """Sleep up to ``seconds``; return True early if a stop was requested."""
        deadline = time.monotonic() + seconds
        while True:
            if self.requested():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(tick, left))


class SqlEcho:
    """Database wrapper that logs each statement (BOINC's ``-d 4``)."""

    def __init__(self, db):
        self._db = db

    def __getattr__(self, name):
        attr = getattr(self._db, name)
        if name in ("query", "query_one", "execute", "executemany"):
            def echo(sql, *args, **kwargs):
                log.log(SQL_LEVEL, "SQL: %s %s", " ".join(sql.split()), args[0] if args else "")
                return attr(sql, *args, **kwargs)
            return echo
        return attr


class Daemon:
    """Base of :class:`~boinc_pymw.boinc.Assimilator` and :class:`~boinc_pymw.boinc.Validator`."""

    #: name used in log lines ("Starting <kind>")
    kind = "daemon"
    #: BOINC's default sleep between empty passes (assimilator 10 s, validator 5 s)
    default_sleep_interval = 10
    #: how long to keep trying to reach a lost database before exiting
    db_retry_seconds = 60.0
    #: log handler errors and go on (retrying later), instead of exiting
    continue_on_error = False
    #: longest pause between retries after an infrastructure fault
    max_backoff_seconds = 300.0

    def __init__(self, options: argparse.Namespace, project=None, db=None):
        self.options = options
        self.project = project
        self._db = db
        self.app: Optional[dict] = None
        project_dir = getattr(project, "path", None) or getattr(project, "project_dir", None)
        self.project_dir = project_dir
        self.stop = StopSignal(project_dir)
        if getattr(options, "continue_on_error", None):
            self.continue_on_error = True
        self._quarantine: Optional[Quarantine] = None
        self._backoff = 0.0

    # -- options --------------------------------------------------------------
    @classmethod
    def build_parser(cls) -> BoincArgumentParser:
        parser = BoincArgumentParser(
            prog=os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else cls.kind,
            description=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None,
            allow_abbrev=False,
        )
        parser.add_option("app", required=True, help="application name")
        parser.add_option("debug_level", "d", type=int, default=MSG_NORMAL,
                          help="log verbosity 1-4 (4 also prints SQL)")
        parser.add_option("mod", type=int, nargs=2, metavar=("N", "R"), default=None,
                          help="only workunits with id %% N == R")
        parser.add_option("one_pass", action="store_true", help="one pass, then exit")
        parser.add_option("one_pass_N_WU", type=int, default=0, metavar="N",
                          help="handle at most N workunits, then exit (implies --one_pass)")
        parser.add_option("sleep_interval", type=float, default=cls.default_sleep_interval,
                          help="seconds to sleep when a pass found nothing")
        parser.add_option("project_dir", default=None,
                          help="project directory (default: found as BOINC does)")
        parser.add_option("continue_on_error", action="store_true", default=None,
                          help="after a handler error go on with other workunits instead of "
                               "exiting (the workunit is retried on later passes)")
        parser.add_option("quarantine_after", type=int, default=DEFAULT_LIMIT, metavar="N",
                          help="set a workunit aside after N handler failures "
                               f"(default {DEFAULT_LIMIT})")
        parser.add_option("version", "v", action="version", version=f"{cls.kind} (boinc_pymw)")
        cls.add_arguments(parser)
        return parser

    @classmethod
    def add_arguments(cls, parser: BoincArgumentParser) -> None:
        """Hook: a daemon kind or a project's subclass adds its own options.

        Overrides call ``super().add_arguments(parser)`` first, and add options
        with ``parser.add_option("name", ...)`` so ``-name`` and ``--name`` both work.
        """

    @classmethod
    def parse_args(cls, argv: Sequence[str]) -> argparse.Namespace:
        options = cls.build_parser().parse_args(list(argv))
        if options.one_pass_N_WU:
            options.one_pass = True
        if options.mod is not None and options.mod[0] <= 0:
            raise SystemExit(f"{cls.kind}: --mod N must be positive")
        return options

    # -- entry point ---------------------------------------------------------------
    @classmethod
    def main(cls, argv: Optional[Sequence[str]] = None) -> int:
        """Parse ``sys.argv``, find the project, run the loop; returns the exit code."""
        options = cls.parse_args(sys.argv[1:] if argv is None else argv)
        setup_logging(options.debug_level)
        from .project import Project

        try:
            project = Project(options.project_dir)
        except Exception as exc:  # noqa: BLE001 - reported, then a clean exit code
            log.error("can't find or parse the project: %s", exc)
            return 1
        return cls(options, project=project).run()

    # -- database -------------------------------------------------------------------
    @property
    def db(self):
        if self._db is None:
            self._db = self.project.db
            if self.options.debug_level >= 4:
                self._db = SqlEcho(self._db)
        return self._db

    def _reconnect(self) -> bool:
        """After a lost connection: retry until it is back, a stop, or the timeout."""
        deadline = time.monotonic() + self.db_retry_seconds
        while time.monotonic() < deadline:
            if self.stop.sleep(1.0):
                return False
            try:
                self.db.close()
                self.db.connect()
                log.info("database connection restored")
                return True
            except DatabaseError as exc:
                log.debug("still no database: %s", exc)
        return False

    # -- failures ------------------------------------------------------------------------
    @property
    def quarantine(self) -> Quarantine:
        """This daemon's failure counts and set-aside workunits (see :mod:`.quarantine`)."""
        if self._quarantine is None:
            path = quarantine_path(self.project_dir or os.getcwd(), self.options.app, self.kind)
            self._quarantine = Quarantine(path, self.kind, self.options.app,
                                          getattr(self.options, "quarantine_after", DEFAULT_LIMIT))
        return self._quarantine

    def handler_failed(self, wu: dict, exc: BaseException) -> bool:
        """A handler bug on ``wu``: log, count; True to go on (the WU is skipped this pass).

        Exits (HandlerExit 1) by BOINC's policy unless ``continue_on_error`` or the
        workunit has now failed often enough to be set aside.
        """
        log.error("[WU#%s %s] handler error: %s: %s\n%s", wu["id"], wu.get("name"),
                  type(exc).__name__, exc,
                  "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        try:
            set_aside = self.quarantine.record_failure(wu, exc)
        except OSError as record_exc:
            log.error("can't write %s: %s", self.quarantine.path, record_exc)
            set_aside = False
        if set_aside:
            log.error("[WU#%s %s] failed %d times: set aside in %s; the workunit is left "
                      "for a human (boinc_pymw daemon quarantine --release to retry it)",
                      wu["id"], wu.get("name"), self.quarantine.limit, self.quarantine.path)
            return True
        if self.continue_on_error:
            return True
        log.error("[WU#%s %s] handler error; exiting", wu["id"], wu.get("name"))
        raise HandlerExit(1) from exc

    def back_off(self, what: str, exc: BaseException) -> bool:
        """Wait before retrying after an infrastructure fault; False if a stop came first."""
        self._backoff = min(self.max_backoff_seconds, max(1.0, self._backoff * 2))
        log.error("%s: %s: %s; retrying in %.0f s", what, type(exc).__name__, exc, self._backoff)
        return not self.stop.sleep(self._backoff)

    def lookup_app(self) -> dict:
        app = self.db.query_one("SELECT * FROM app WHERE name=%s", (self.options.app,))
        if app is None:
            raise LookupError(f"can't find app {self.options.app}")
        return app

    def mod_clause(self, column: str) -> tuple[str, tuple]:
        if self.options.mod is None:
            return "", ()
        n, r = self.options.mod
        return f" AND {column} %% %s = %s", (n, r)

    # -- loop -------------------------------------------------------------------------
    def do_pass(self) -> bool:
        """One scan of the database; True if it found something to do."""
        raise NotImplementedError

    def on_idle(self) -> None:
        """Hook run after a pass that found nothing (e.g. flush cached stats)."""

    def on_exit(self) -> None:
        """Hook run once before the daemon exits normally."""

    def run(self) -> int:
        """The daemon loop; returns the process exit code."""
        if self.stop.requested():
            log.info("Stop requested (%s) before start; exiting", self.stop.reason())
            return 0
        self.stop.install()
        log.info("Starting %s for app %s, debug level %d", self.kind, self.options.app,
                 self.options.debug_level)
        if self.options.mod:
            log.info("Modulus %d, remainder %d", *self.options.mod)
        try:
            while True:
                if self.stop.requested():
                    log.info("Stop requested (%s); exiting", self.stop.reason())
                    break
                try:
                    self.app = self.lookup_app()
                    did_something = self.do_pass()
                    self._backoff = 0.0
                except DatabaseError as exc:
                    if is_statement_rejected(exc) or database_error_code(exc) in _SERVER_NOT_AVAILABLE:
                        # server busy/full, or a statement outside any one workunit
                        if not self.back_off("database error", exc):
                            log.info("Stop requested (%s); exiting", self.stop.reason())
                            return 0
                        continue
                    log.error("DB connection lost (%s)", exc)
                    if not self._reconnect():
                        if self.stop.requested():
                            log.info("Stop requested (%s) while waiting for the database; "
                                     "exiting", self.stop.reason())
                            return 0
                        log.error("database still unreachable; exiting")
                        return 1
                    continue
                if not did_something:
                    self.on_idle()
                if self.options.one_pass:
                    break
                if not did_something and self.stop.sleep(self.options.sleep_interval):
                    continue
        except LookupError as exc:
            log.error("%s", exc)
            return 1
        except HandlerExit as exc:
            return exc.code
        except Exception:  # noqa: BLE001 - a bug in project code: log it, exit for --cron
            log.exception("unexpected error; exiting")
            return 1
        try:
            self.on_exit()
        except DatabaseError as exc:
            log.error("at exit: %s", exc)
        return 0


class HandlerExit(Exception):
    """Raised inside the loop to leave it with a given exit code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code
