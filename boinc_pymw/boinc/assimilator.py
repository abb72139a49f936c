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
      -> per workunit: ONE UPDATE workunit SET assimilate_state=DONE,
                       transition_time=now [, error_mask=32]

Outcomes of the handler, as in BOINC: a normal return marks the workunit
assimilated; :class:`DeferAssimilation` puts it back to INIT (the
transitioner makes it READY again later); any other exception is logged
with its traceback and the daemon exits non-zero (``bin/start --cron``
restarts it and the workunit, still READY, is handled again). A project
that prefers to go on sets ``continue_on_error = True`` (or passes
``--continue_on_error``): the failure is appended to
``assimilator_failures.jsonl`` in the working directory and the workunit
stays READY for the next start.

A crash between the handler and the UPDATE (kill -9, lost database) means
the handler runs again for that workunit: handlers must be idempotent
(copy to a fixed name, overwrite), which is what BOINC expects too.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from typing import Optional

from .daemon import BoincArgumentParser, Daemon, HandlerExit
from .output_files import (DEFAULT_MAX_BYTES, OutputFile, output_files, read_output)
from .states import AssimilateState, WuError, describe_error_mask

log = logging.getLogger("boinc_pymw.assimilator")

SELECT_LIMIT = 1000


class DeferAssimilation(Exception):
    """Raise from ``assimilate`` to try this workunit again later (BOINC's DEFER_ASSIMILATION)."""


class Assimilator(Daemon):
    """BOINC assimilator daemon; subclass and override ``assimilate``."""

    kind = "assimilator"
    default_sleep_interval = 10
    #: log and record handler exceptions and go on, instead of exiting
    continue_on_error = False
    #: output files larger than this are refused by :meth:`read_output`
    max_output_bytes = DEFAULT_MAX_BYTES

    def assimilate(self, wu: dict, results: list[dict], canonical: Optional[dict]) -> None:
        """Handle a finished workunit; ``canonical`` is None when it failed."""
        raise NotImplementedError("an Assimilator subclass must define assimilate()")

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
        parser.add_option("continue_on_error", action="store_true", default=None,
                          help="record handler exceptions and go on instead of exiting")

    def __init__(self, options, project=None, db=None):
        super().__init__(options, project, db)
        if getattr(options, "continue_on_error", None):
            self.continue_on_error = True
        self._failed: set[int] = set()

    # -- the pass ---------------------------------------------------------------------------------
    def fetch_batch(self) -> list[dict]:
        limit = self.options.one_pass_N_WU or SELECT_LIMIT
        mod_sql, mod_params = self.mod_clause("id")
        skip_sql = ""
        if self._failed:
            skip_sql = " AND id NOT IN (" + ", ".join(["%s"] * len(self._failed)) + ")"
        return self.db.query(
            "SELECT * FROM workunit WHERE appid=%s AND assimilate_state=%s" + mod_sql + skip_sql
            + " LIMIT %s",
            (self.app["id"], int(AssimilateState.READY), *mod_params, *sorted(self._failed), limit))

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
        handled = 0
        while True:
            wus = self.fetch_batch()
            if not wus:
                break
            log.debug("found %d workunits to assimilate", len(wus))
            results = self.fetch_results(wus)
            for wu in wus:
                if self.stop.requested():
                    return found
                self.handle_wu(wu, results[wu["id"]])
                found = True
                handled += 1
            if self.options.one_pass_N_WU or self.options.dont_update_db:
                break
        return found

    def handle_wu(self, wu: dict, results: list[dict]) -> None:
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
        except Exception as exc:  # noqa: BLE001 - project code: log it, then BOINC's policy
            log.error("[%s] handler error: %s\n%s", wu["name"], exc, traceback.format_exc())
            if set_error and not self.options.dont_update_db:
                self.db.execute("UPDATE workunit SET error_mask=%s WHERE id=%s",
                                (wu["error_mask"], wu["id"]))
            if not self.continue_on_error:
                log.error("[%s] handler error; exiting", wu["name"])
                raise HandlerExit(1) from exc
            self.record_failure(wu, exc)
            self._failed.add(wu["id"])
            return
        if not self.options.dont_update_db:
            self.db.execute(
                f"UPDATE workunit SET assimilate_state=%s, transition_time=%s{error_sql} WHERE id=%s",
                (int(AssimilateState.DONE), int(time.time()), *error_params, wu["id"]))

    def record_failure(self, wu: dict, exc: BaseException) -> None:
        """Append the failure to ``assimilator_failures.jsonl`` in the working directory."""
        entry = {"time": time.time(), "app": self.options.app, "wu_id": wu["id"],
                 "wu_name": wu["name"], "error": f"{type(exc).__name__}: {exc}",
                 "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)}
        with open(os.path.join(os.getcwd(), "assimilator_failures.jsonl"), "a",
                  encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
