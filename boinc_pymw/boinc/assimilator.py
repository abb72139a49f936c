"""``Assimilator``: BOINC's assimilator (``sched/assimilator.cpp``) with a Python handler.

A project writes::

    class MyAssimilator(Assimilator):
        def assimilate(self, wu, results, canonical):
            if canonical is None:               # failed workunit
                print(wu["name"], self.describe_error(wu))
                return
            for f in self.output_files(canonical):
                shutil.copy(f.path, "/data/results/")

    if __name__ == "__main__":
        sys.exit(MyAssimilator.main())

Data flow of one pass::

    DB: workunit WHERE appid=? AND assimilate_state=READY [AND id % N = R] LIMIT 1000
        + result WHERE workunitid IN (...)          (one query for the whole batch)
      -> per workunit: assimilate(wu, results, canonical)   (project code)
      -> per group of up to ``group_commit`` workunits (group commit):
         make_durable()  (hook: e.g. sync the files the handler wrote, once)
         ONE transaction: UPDATE workunit SET assimilate_state=DONE,
                          transition_time=now [, error_mask=32] WHERE id IN (...)

Group commit keeps BOINC's guarantee (a workunit is marked assimilated only
after its handler's work is done and durable) at one commit and one file
sync per group instead of per workunit.

Outcomes of the handler, as in BOINC: a normal return marks the workunit
assimilated; :class:`DeferAssimilation` puts it back to INIT (the
transitioner makes it READY again later). Beyond BOINC, no workunit stops
the daemon (see :mod:`.daemon`):

* :class:`~.output_files.BadOutputFile` (the volunteer's output is missing,
  oversized or unsafe): logged, noted in the quarantine file, the workunit
  is marked assimilated -- retrying cannot mend it;
* infrastructure faults (database away, disk full, storage gone): back off
  and handle the same workunit again;
* any other exception is a handler bug: logged with its traceback and
  counted; the daemon exits 1 (``bin/start --cron`` restarts it and the
  workunit, still READY, is handled again) or, with ``continue_on_error``
  (``--continue_on_error``), goes on and retries it on a later pass. After
  ``--quarantine_after`` failures (default 3) the workunit is set aside
  for a human (:mod:`.quarantine`) and the daemon goes on.

A crash between the handler and the UPDATE (kill -9, lost database) means
the handler runs again for that workunit: handlers must be idempotent
(copy to a fixed name, overwrite), which is what BOINC expects too.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from .daemon import (BoincArgumentParser, Daemon, InfrastructureFault, is_infrastructure_fault,
                     text_columns)
from .db import DatabaseError
from .output_files import (DEFAULT_MAX_BYTES, BadOutputFile, OutputFile, output_files,
                           read_output)
from .states import AssimilateState, WuError, describe_error_mask

log = logging.getLogger("boinc_pymw.assimilator")

SELECT_LIMIT = 1000


class DeferAssimilation(Exception):
    """Raise from ``assimilate`` to try this workunit again later (BOINC's DEFER_ASSIMILATION)."""


class Assimilator(Daemon):
    """BOINC assimilator daemon; subclass and override ``assimilate``."""

    kind = "assimilator"
    default_sleep_interval = 10
    #: output files larger than this are refused by :meth:`read_output`
    max_output_bytes = DEFAULT_MAX_BYTES
    #: workunits marked assimilated per transaction (1: BOINC's one commit per workunit)
    group_commit = 200

    def assimilate(self, wu: dict, results: list[dict], canonical: Optional[dict]) -> None:
        """Handle a finished workunit; ``canonical`` is None when it failed."""
        raise NotImplementedError("an Assimilator subclass must define assimilate()")

    def make_durable(self) -> None:
        """Hook run before a group of workunits is marked assimilated.

        A handler that writes files may defer syncing them to here (one sync
        for the group); whatever it did must survive a crash once this returns.
        """

    # -- helpers for handlers -----------------------------------------------------------------
    @staticmethod
    def describe_error(wu: dict) -> str:
        """``wu['error_mask']`` in words."""
        return describe_error_mask(int(wu.get("error_mask") or 0))

    def output_files(self, result: dict) -> list[OutputFile]:
        """The result's output files, with paths inside upload_dir."""
        return output_files(result, self.project.upload_dir, self.project.fanout)

    def read_output(self, file: OutputFile, allow_empty: bool = True) -> Optional[bytes]:
        """One output file's bytes, refused above ``max_output_bytes``."""
        return read_output(file, self.project.upload_dir, self.max_output_bytes, allow_empty)

    # -- options ---------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: BoincArgumentParser) -> None:
        parser.add_option("dont_update_db", action="store_true",
                          help="run the handler but change no workunit state")

    def __init__(self, options, project=None, db=None):
        super().__init__(options, project, db)
        self._skipped: set[int] = set()     # failed in this pass; retried on the next one
        self._done: list[tuple[int, bool]] = []

    # -- the pass ---------------------------------------------------------------------------------
    def fetch_batch(self) -> list[dict]:
        limit = self.options.one_pass_N_WU or SELECT_LIMIT
        mod_sql, mod_params = self.mod_clause("id")
        skip = sorted(self._skipped | set(self.quarantine.ids()))
        skip_sql = (" AND id NOT IN (" + ", ".join(["%s"] * len(skip)) + ")") if skip else ""
        return self.db.query(
            "SELECT * FROM workunit WHERE appid=%s AND assimilate_state=%s" + mod_sql + skip_sql
            + " LIMIT %s",
            (self.app["id"], int(AssimilateState.READY), *mod_params, *skip, limit))

    def fetch_results(self, wus: list[dict]) -> dict[int, list[dict]]:
        by_wu: dict[int, list[dict]] = {wu["id"]: [] for wu in wus}
        if wus:
            marks = ", ".join(["%s"] * len(wus))
            for row in self.db.query(f"SELECT * FROM result WHERE workunitid IN ({marks})",
                                     tuple(by_wu)):
                by_wu[row["workunitid"]].append(row)
        return by_wu

    def do_pass(self) -> bool:
        found = False
        self._skipped = set()
        self._done: list[tuple[int, bool]] = []     # (wu id, set error_mask 32), not yet marked
        self.quarantine.reload()
        try:
            while True:
                wus = self.fetch_batch()
                if not wus:
                    break
                log.debug("found %d workunits to assimilate", len(wus))
                results = self.fetch_results(wus)
                for wu in wus:
                    if self.stop.requested():
                        return found
                    while True:
                        try:
                            self.handle_wu(wu, results[wu["id"]])
                            break
                        except InfrastructureFault as exc:
                            if not self.back_off(f"[{wu['name']}] can't assimilate now",
                                                 exc.__cause__):
                                return found
                    self._backoff = 0.0
                    found = True
                    if len(self._done) >= self.group_commit:
                        self.mark_done()
                self.mark_done()
                if self.options.one_pass_N_WU or self.options.dont_update_db:
                    break
            return found
        finally:
            if self._done:
                self.mark_done()    # after a stop or a handler exit too: keep what was done

    def mark_done(self) -> None:
        """Make the handled workunits' work durable, then mark them assimilated at once."""
        if not self._done:
            return
        while True:
            try:
                self.make_durable()
                break
            except Exception as exc:  # noqa: BLE001
                if not is_infrastructure_fault(exc) or isinstance(exc, DatabaseError):
                    raise
                if not self.back_off("can't make the assimilated work durable", exc):
                    self._done = []      # stopped: the workunits stay READY, redone later
                    return
        done, self._done = self._done, []
        if self.options.dont_update_db:
            return
        now = int(time.time())
        with self.db.transaction():
            for set_error in (False, True):
                ids = [wu_id for wu_id, err in done if err == set_error]
                if not ids:
                    continue
                error_sql = f", error_mask={int(WuError.NO_CANONICAL_RESULT)}" if set_error else ""
                self.db.execute(
                    f"UPDATE workunit SET assimilate_state=%s, transition_time=%s{error_sql} "
                    f"WHERE id IN ({', '.join(['%s'] * len(ids))})",
                    (int(AssimilateState.DONE), now, *ids))

    def handle_wu(self, wu: dict, results: list[dict]) -> None:
        wu = text_columns(dict(wu))
        results = [text_columns(dict(r)) for r in results]
        canonical = next((r for r in results if r["id"] == wu["canonical_resultid"]), None)
        set_error = canonical is None and not wu["error_mask"]
        if set_error:
            wu["error_mask"] = int(WuError.NO_CANONICAL_RESULT)   # assignment, as BOINC
        log.info("[%s] assimilating WU %s; state=%s", wu["name"], wu["id"],
                 wu["assimilate_state"])
        error_sql = ", error_mask=%s" if set_error else ""
        error_params = (wu["error_mask"],) if set_error else ()
        try:
            self.assimilate(wu, results, canonical)
        except DeferAssimilation:
            log.info("[%s] assimilation deferred", wu["name"])
            if not self.options.dont_update_db:
                self.db.execute(f"UPDATE workunit SET assimilate_state=%s{error_sql} WHERE id=%s",
                                (int(AssimilateState.INIT), *error_params, wu["id"]))
            return
        except BadOutputFile as exc:
            self.on_bad_output(wu, canonical, exc)    # the volunteer's fault: assimilated
        except Exception as exc:  # noqa: BLE001 - project code: sorted, then BOINC's policy
            if is_infrastructure_fault(exc):
                if isinstance(exc, DatabaseError):
                    raise                             # the daemon loop reconnects
                raise InfrastructureFault(str(exc)) from exc
            if set_error and not self.options.dont_update_db:
                self.db.execute("UPDATE workunit SET error_mask=%s WHERE id=%s",
                                (wu["error_mask"], wu["id"]))
            self.handler_failed(wu, exc)              # exits, unless it goes on
            self._skipped.add(wu["id"])
            return
        self._done.append((wu["id"], set_error))

    def on_bad_output(self, wu: dict, canonical: Optional[dict], exc: BadOutputFile) -> None:
        """The handler met a spoiled output; the workunit is then marked assimilated.

        Retrying cannot mend a volunteer's file, so this is logged and noted in
        the quarantine file (not counted as a failure). Override to keep a record
        of your own.
        """
        log.error("[%s] canonical result %s has a bad output (%s); marked assimilated",
                  wu["name"], canonical and canonical["name"], exc)
        try:
            self.quarantine.record_bad_output(wu, str(exc))
        except OSError as record_exc:
            log.error("can't write %s: %s", self.quarantine.path, record_exc)
