"""``Validator``: BOINC's validator (``sched/validator.cpp``) with Python hooks.

A project writes::

    class MyValidator(Validator):
        def init_result(self, result):          # parse a result's outputs
            return self.read_outputs(result)[0]  # raise Invalid / TransientError
        def compare(self, data1, data2):
            return data1 == data2

    if __name__ == "__main__":
        sys.exit(MyValidator.main())

and lists ``<cmd>my_validator.py --app myapp</cmd>`` in config.xml.

Data flow of one pass::

    DB: workunit JOIN result WHERE need_validate>0 (LIMIT 1000 rows, grouped per WU)
      -> per workunit, no DB:  init_result/compare/cleanup_result (user code, files)
                               -> quorum, canonical result, validate states (plain functions)
      -> per group of up to ``group_commit`` (100) workunits, ONE transaction:
           lock the credited host/user/team rows (id order), read their
           host_app_version rows, then per workunit: credit, statistics,
           result and workunit changes; one UPDATE per table at the end

Each workunit's writes are the ones BOINC's validator makes (same end
state), grouped in one transaction per group (group commit); a crash
leaves the group untouched and need_validate still set, so it is
validated again. A group the server refuses is split to find the
workunit to blame (see :mod:`.daemon` for how failures are sorted).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator, Optional

from .credit import (DEFAULT_MAX_GRANTED_CREDIT, HAV_FIELDS, HOST_FIELDS, AppVersionStats,
                     assign_credit_set, compute_avg_turnaround, credit_from_runtime,
                     generalized_app_version_id, grant_credit)
from .daemon import (BoincArgumentParser, Daemon, is_infrastructure_fault,
                     is_statement_rejected, text_columns)
from .db import DatabaseError
from .output_files import (DEFAULT_MAX_BYTES, BadOutputFile, OutputFile, TransientFileError,
                           iter_output, output_files, read_output)
from .states import INT_MAX, Outcome, ServerState, ValidateState, WuError

log = logging.getLogger("boinc_pymw.validator")

SELECT_LIMIT = 1000
TRANSIENT_DELAY = 6 * 3600
DEADLOCK_RETRIES = 5

NO_CHANGE, IMMEDIATE, DELAYED, NEVER = "no_change", "immediate", "delayed", "never"


class TransientError(Exception):
    """Raised by ``init_result``/``compare``: try this workunit again later."""


class Invalid(Exception):
    """Raised by ``init_result``: this result's output is bad (outcome VALIDATE_ERROR)."""


# -- what BOINC's check_set / check_pair decide, as plain functions -----------------------
def check_set(results: list[dict], min_quorum: int, init: Callable, compare: Callable,
              cleanup: Callable) -> tuple[Optional[int], bool]:
    """validate_util2.cpp check_set over viable result dicts (modified in place).

    Returns (canonical result id or None, retry). ``init(result)`` returns
    data or raises :class:`Invalid`/:class:`TransientError`.
    """
    retry = False
    data: list[Any] = [None] * len(results)
    had_error = [False] * len(results)
    good = 0
    for i, result in enumerate(results):
        try:
            data[i] = init(result)
            good += 1
        except TransientError as exc:
            log.error("check_set: init_result([RESULT#%s %s]) transient failure: %s",
                      result["id"], result["name"], exc)
            retry = True
            had_error[i] = True
        except Invalid as exc:
            log.error("check_set: init_result([RESULT#%s %s]) failed: %s",
                      result["id"], result["name"], exc)
            result["outcome"] = Outcome.VALIDATE_ERROR
            result["validate_state"] = ValidateState.INVALID
            had_error[i] = True
    canonical = None
    try:
        if good >= min_quorum:
            min_valid = min_quorum // 2 + 1
            for i in range(len(results)):
                if had_error[i]:
                    continue
                matches = [False] * len(results)
                neq = 0
                for j in range(len(results)):
                    if had_error[j]:
                        continue
                    if i == j:
                        matches[j] = True
                        neq += 1
                        continue
                    try:
                        if compare(data[i], data[j]):
                            matches[j] = True
                            neq += 1
                    except TransientError as exc:
                        log.error("check_set: compare transient failure: %s", exc)
                        return None, True
                    except Exception as exc:  # noqa: BLE001 - BOINC: an error is "no match"
                        log.error("check_set: compare([RESULT#%s], [RESULT#%s]) failed: %s",
                                  results[i]["id"], results[j]["id"], exc)
                if neq >= min_valid:
                    for j, result in enumerate(results):
                        if not had_error[j]:
                            result["validate_state"] = (ValidateState.VALID if matches[j]
                                                        else ValidateState.INVALID)
                    canonical = results[i]["id"]
                    break
    finally:
        for result, d in zip(results, data):
            cleanup(result, d)
    return canonical, retry


def check_pair(result: dict, canonical: dict, init: Callable, compare: Callable,
               cleanup: Callable) -> bool:
    """validate_util2.cpp check_pair: judge a straggler against the canonical result.

    Sets ``result['validate_state']`` (and outcome on a bad output); returns retry.
    """
    try:
        data1 = init(result)
    except TransientError:
        return True
    except Invalid as exc:
        log.error("check_pair: init_result([RESULT#%s %s]) perm failure 1: %s",
                  result["id"], result["name"], exc)
        result["outcome"] = Outcome.VALIDATE_ERROR
        result["validate_state"] = ValidateState.INVALID
        return False
    try:
        data2 = init(canonical)
    except TransientError:
        cleanup(result, data1)
        return True
    except Invalid as exc:
        log.error("check_pair: init_result([RESULT#%s %s]) perm failure 2: %s",
                  canonical["id"], canonical["name"], exc)
        cleanup(result, data1)
        result["outcome"] = Outcome.VALIDATE_ERROR
        result["validate_state"] = ValidateState.INVALID
        return False
    try:
        match = bool(compare(data1, data2))
    except TransientError:
        cleanup(result, data1)
        cleanup(canonical, data2)
        return True
    except Exception as exc:  # noqa: BLE001
        log.error("check_pair: compare failed: %s", exc)
        match = False
    result["validate_state"] = ValidateState.VALID if match else ValidateState.INVALID
    cleanup(result, data1)
    cleanup(canonical, data2)
    return False


def _translated(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except BadOutputFile as exc:
        raise Invalid(str(exc)) from exc
    except TransientFileError as exc:
        raise TransientError(str(exc)) from exc


def is_viable(result: dict) -> bool:
    return (result["server_state"] == ServerState.OVER and result["outcome"] == Outcome.SUCCESS
            and result["validate_state"] != ValidateState.INVALID)


def update_rows(db, table: str, key_columns: tuple, rows: list, relative=()) -> None:
    """UPDATE many rows of ``table`` with one statement per set of changed columns.

    ``rows`` are (key values, {column: new value}); columns in ``relative`` are
    added (``c = c + x``) rather than set. Each column becomes a CASE over the
    keys, and the WHERE clause lists exactly those keys.
    """
    condition = " AND ".join(f"{k}=%s" for k in key_columns)
    groups: dict[tuple, list] = {}
    for key, changes in rows:
        groups.setdefault(tuple(changes), []).append((key, changes))
    for columns, members in groups.items():
        if len(members) == 1:
            key, changes = members[0]
            sets = ", ".join(f"{c}={c}+%s" if c in relative else f"{c}=%s" for c in columns)
            db.execute(f"UPDATE {table} SET {sets} WHERE {condition}", (*changes.values(), *key))
            continue
        sets, params = [], []
        for c in columns:
            case = "CASE " + " ".join(f"WHEN {condition} THEN %s" for _ in members) + " END"
            sets.append(f"{c}={c}+({case})" if c in relative else f"{c}={case}")
            for key, changes in members:
                params += [*key, changes[c]]
        one_key = "(" + ", ".join(["%s"] * len(key_columns)) + ")"
        db.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE ({', '.join(key_columns)}) "
                   f"IN ({', '.join([one_key] * len(members))})",
                   (*params, *[k for key, _ in members for k in key]))


# -- the daemon ------------------------------------------------------------------------
_WU_COLUMNS = ("id", "name", "canonical_resultid", "canonical_credit", "min_quorum",
               "assimilate_state", "transition_time", "opaque", "batch", "target_nresults",
               "max_success_results", "error_mask", "rsc_fpops_est", "rsc_fpops_bound", "appid")
_RESULT_COLUMNS = ("id", "name", "validate_state", "server_state", "outcome", "claimed_credit",
                   "granted_credit", "xml_doc_in", "xml_doc_out", "stderr_out", "cpu_time",
                   "batch", "opaque", "exit_status", "hostid", "userid", "teamid", "sent_time",
                   "received_time", "appid", "app_version_id", "app_version_num",
                   "elapsed_time", "flops_estimate", "runtime_outlier", "random")
#: result fields the validator changes (restored before a retried transaction)
_RESULT_STATE = ("validate_state", "outcome", "granted_credit", "server_state", "runtime_outlier")
ENUMERATE_SQL = (
    "SELECT " + ", ".join(f"wu.{c} AS wu_{c}" for c in _WU_COLUMNS) + ", "
    + ", ".join(f"res.{c}" for c in _RESULT_COLUMNS)
    + " FROM workunit AS wu, result AS res WHERE wu.id = res.workunitid"
    " AND wu.appid = %s AND wu.need_validate > 0")


_STOPPED = object()


class Validator(Daemon):
    """BOINC validator daemon; subclass and override ``init_result`` and ``compare``."""

    kind = "validator"
    default_sleep_interval = 5
    #: workunits whose writes share one transaction (1: one commit per workunit)
    group_commit = 100
    #: output files larger than this make a result invalid
    max_output_bytes = DEFAULT_MAX_BYTES
    #: whether an empty output file is acceptable
    allow_empty_outputs = False

    # -- the project's hooks --------------------------------------------------------------
    def init_result(self, result: dict) -> Any:
        """Parse ``result``'s outputs; raise :class:`Invalid` or :class:`TransientError`.

        ValueError, UnicodeError, KeyError, IndexError and TypeError escaping from
        here are taken as "this volunteer's output is malformed" (result invalid);
        any other exception is a bug: it is logged and the daemon exits.
        """
        raise NotImplementedError("a Validator subclass must define init_result()")

    def compare(self, data1: Any, data2: Any) -> bool:
        """Whether two results' data (from ``init_result``) agree."""
        raise NotImplementedError("a Validator subclass must define compare()")

    def cleanup_result(self, result: dict, data: Any) -> None:
        """Release what ``init_result`` made (``data`` may be None)."""

    # -- helpers for init_result ---------------------------------------------------------------
    def output_files(self, result: dict) -> list[OutputFile]:
        """The result's output files (paths inside upload_dir); bad refs are :class:`Invalid`."""
        try:
            return output_files(result, self.project.upload_dir, self.project.fanout)
        except BadOutputFile as exc:
            raise Invalid(str(exc)) from exc

    def read_outputs(self, result: dict, *, include_no_validate: bool = False) -> list[Optional[bytes]]:
        """Bytes of each output file (None for a missing optional one), size-limited."""
        return [self.read_output(f) for f in self.output_files(result)
                if include_no_validate or not f.no_validate]

    def read_output(self, file: OutputFile) -> Optional[bytes]:
        """One output file's bytes (None if a missing optional one); bad ones are Invalid.

        The limit is ``max_output_bytes`` or the template's ``<max_nbytes>``, the smaller.
        """
        try:
            return read_output(file, self.project.upload_dir, self.max_output_bytes,
                               self.allow_empty_outputs)
        except BadOutputFile as exc:
            raise Invalid(str(exc)) from exc
        except TransientFileError as exc:
            raise TransientError(str(exc)) from exc

    def output_chunks(self, file: OutputFile) -> Optional[Iterator[bytes]]:
        """One output file in 1 MiB pieces (None if a missing optional one), same checks.

        For digests and streaming parsers: memory holds one piece, not the file.
        """
        try:
            chunks = iter_output(file, self.project.upload_dir, self.max_output_bytes,
                                 self.allow_empty_outputs)
        except BadOutputFile as exc:
            raise Invalid(str(exc)) from exc
        except TransientFileError as exc:
            raise TransientError(str(exc)) from exc
        return None if chunks is None else _translated(chunks)

    # -- options ------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: BoincArgumentParser) -> None:
        parser.add_option("dry_run", action="store_true", help="don't update the database")
        parser.add_option("wu_id", type=int, default=0, help="validate only this workunit")
        parser.add_option("min_wu_id", type=int, default=0)
        parser.add_option("max_wu_id", type=int, default=0)
        parser.add_option("max_granted_credit", type=float, default=DEFAULT_MAX_GRANTED_CREDIT)
        parser.add_option("credit_from_wu", action="store_true",
                          help="grant workunit.canonical_credit (set by create_work --credit)")
        parser.add_option("credit_from_runtime", nargs="?", type=float, const=-1.0,
                          default=None, metavar="X",
                          help="grant credit from elapsed time x FLOPS estimate "
                               "(older servers' optional X is accepted and ignored)")
        parser.add_option("post_assigned_credit", action="store_true",
                          help="grant the canonical result's claimed_credit")
        parser.add_option("no_credit", action="store_true", help="grant no credit")
        parser.add_option("dont_update_db", action="store_true", help="same as --dry_run")

    def __init__(self, options, project=None, db=None):
        super().__init__(options, project, db)
        if getattr(options, "dont_update_db", False):
            options.dry_run = True
        self.av_stats = AppVersionStats()
        self._app_version_keys: dict = {}     # id -> (appid, platformid, plan_class)
        self.daily_result_quota = 0
        if project is not None:
            try:
                self.daily_result_quota = int(project.config.get("daily_result_quota") or 0)
            except (TypeError, ValueError):
                self.daily_result_quota = 0

    # -- enumeration ---------------------------------------------------------------------------
    def enumerate_workunits(self) -> list[tuple[dict, list[dict]]]:
        """DB_VALIDATOR_ITEM_SET::enumerate: (wu, results) groups of one query."""
        o = self.options
        sql, params = ENUMERATE_SQL, [self.app["id"]]
        modulus, remainder = (o.mod if o.mod else (0, 0))
        if o.wu_id:
            sql += " AND wu.id = %s"
            params.append(o.wu_id)
        elif modulus:
            sql += " AND wu.id %% %s = %s"
            params += [modulus, remainder]
        if o.min_wu_id:
            sql += " AND wu.id >= %s"
            params.append(o.min_wu_id)
        if o.max_wu_id:
            sql += " AND wu.id <= %s"
            params.append(o.max_wu_id)
        set_aside = self.quarantine.ids()
        if set_aside:
            sql += " AND wu.id NOT IN (" + ", ".join(["%s"] * len(set_aside)) + ")"
            params += set_aside
        sql += " LIMIT %s"
        params.append(SELECT_LIMIT)
        rows = self.db.query(sql, tuple(params))
        groups: dict[int, tuple[dict, list[dict]]] = {}
        for row in rows:
            wu_id = row["wu_id"]
            if wu_id not in groups:
                groups[wu_id] = ({c: row[f"wu_{c}"] for c in _WU_COLUMNS}, [])
            groups[wu_id][1].append(text_columns({c: row[c] for c in _RESULT_COLUMNS}))
        items = list(groups.values())
        if len(rows) >= SELECT_LIMIT and len(items) > 1:
            items.pop()   # the last group may be incomplete (BOINC drops it too)
        return items

    def do_pass(self) -> bool:
        found = False
        handled = 0
        seen: set[int] = set()
        group: list[tuple] = []
        self.quarantine.reload()
        try:
            while True:
                items = [(wu, rs) for wu, rs in self.enumerate_workunits()
                         if wu["id"] not in seen]
                if not items:
                    break     # nothing new (a workunit left need_validate set is not redone)
                for wu, results in items:
                    seen.add(wu["id"])
                    if self.stop.requested():
                        return found
                    prepared = self._prepare_safely(wu, results)
                    if prepared is _STOPPED:
                        return found
                    found = True
                    handled += 1
                    if prepared is not None:
                        group.append(prepared)
                        if len(group) >= self.group_commit:
                            self._commit_safely(group)
                            group = []
                    if self.options.one_pass_N_WU and handled >= self.options.one_pass_N_WU:
                        return found
                self._commit_safely(group)      # before enumerating again
                group = []
                if self.options.wu_id or self.options.dry_run:
                    break
            return found
        finally:
            if group:
                self._commit_safely(group)      # a stop or a handler exit keeps what was done

    def _prepare_safely(self, wu: dict, results: list[dict]):
        """prepare_wu with failures sorted (see :mod:`.daemon`): the plan, None, or _STOPPED."""
        while True:
            try:
                prepared = self.prepare_wu(wu, results)
                self._backoff = 0.0
                return prepared
            except DatabaseError:
                raise                             # the daemon loop reconnects or backs off
            except Exception as exc:  # noqa: BLE001 - project code (or data) on this WU
                if is_infrastructure_fault(exc):
                    if not self.back_off(f"[WU#{wu['id']} {wu['name']}] can't validate now", exc):
                        return _STOPPED
                    continue
                self.handler_failed(wu, exc)      # exits, unless it goes on
                return None

    def _commit_safely(self, group: list[tuple]) -> None:
        """commit_wus; a group the server refuses is split to find the workunit to blame."""
        if not group:
            return
        try:
            self.commit_wus(group)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, DatabaseError) and not is_statement_rejected(exc):
                raise                             # infrastructure: the daemon loop handles it
            if len(group) > 1:
                for prepared in group:
                    self._commit_safely([prepared])
                return
            self.handler_failed(group[0][0], exc)

    def on_idle(self) -> None:
        if not self.options.dry_run:
            self.av_stats.flush(self.db)

    def on_exit(self) -> None:
        self.on_idle()

    # -- one workunit ---------------------------------------------------------------------------
    def _init(self, result: dict):
        try:
            return self.init_result(result)
        except (Invalid, TransientError):
            raise
        except (BadOutputFile, ValueError, UnicodeError, KeyError, IndexError, TypeError) as exc:
            # a crash on volunteer data is a bad result, not a dead daemon
            raise Invalid(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            if is_infrastructure_fault(exc):
                raise TransientError(f"{type(exc).__name__}: {exc}") from exc
            raise

    def _cleanup(self, result: dict, data) -> None:
        try:
            self.cleanup_result(result, data)
        except Exception:  # noqa: BLE001
            log.exception("cleanup_result failed for result %s", result["id"])

    def handle_wu(self, wu: dict, results: list[dict]) -> None:
        """Validate one workunit (validator.cpp handle_wu), writing in one transaction."""
        prepared = self.prepare_wu(wu, results)
        if prepared is not None:
            self.commit_wus([prepared])

    def prepare_wu(self, wu: dict, results: list[dict]) -> Optional[tuple]:
        """Phase 1 of handle_wu (user code, files; no database writes): the plan to write."""
        wu = dict(wu)
        if wu["canonical_resultid"]:
            log.info("[WU#%s %s] Already has canonical result %s", wu["id"], wu["name"],
                     wu["canonical_resultid"])
            plan = self._judge_stragglers(wu, results)
        else:
            log.info("[WU#%s %s] handle_wu(): No canonical result yet", wu["id"], wu["name"])
            plan = self._look_for_quorum(wu, results)
        if plan is None:
            return None
        plan["transition_before_write"] = plan["transition"]
        if self.options.dry_run:
            log.info("DB not updated (dry run)")
            return None
        # phase 2 changes the dicts in place; a retried transaction starts from here
        return (wu, results, plan, dict(wu), [{k: r[k] for k in _RESULT_STATE} for r in results])

    def commit_wus(self, prepared: list[tuple]) -> None:
        """Phase 2 for a group of prepared workunits: their writes in ONE transaction.

        Same statements' effects as BOINC's per-row writes (update_rows groups them
        per table), one commit for the group (group commit). A lock conflict with
        another validator rolls the group back and retries it.
        """
        saved_samples = self.av_stats.sample_counts()
        for attempt in range(DEADLOCK_RETRIES):
            try:
                with self.db.transaction():
                    self._lock_credit_rows([r for _, results, *_ in prepared for r in results])
                    self._preload_havs(prepared)
                    for wu, results, plan, _, _ in prepared:
                        self._write(wu, results, plan)
                    self._flush_pending()
                return
            except Exception as exc:
                # rolled back: forget the samples and start again from the plans
                self.av_stats.truncate_samples(saved_samples)
                for wu, results, plan, saved_wu, saved in prepared:
                    wu.update(saved_wu)
                    for r, state in zip(results, saved):
                        r.update(state)
                    plan["transition"] = plan["transition_before_write"]
                code = getattr(exc.__cause__, "args", (None,))[0]
                if (not isinstance(exc, DatabaseError) or code not in (1205, 1213)
                        or attempt + 1 == DEADLOCK_RETRIES):
                    raise
                log.info("[WU#%s..] lock conflict with another validator (%s); retrying",
                         prepared[0][0]["id"], code)

    def _lock_credit_rows(self, results: list[dict]) -> None:
        """Lock and read the hosts, users and teams this workunit may credit, in id order.

        BOINC's validator writes host totals read earlier (update_diff_validator),
        so two validators (--mod) crediting the same host can lose an update.
        Locking first, always in the same order, serialises them instead; the
        rows read here are the ones the credit arithmetic then updates.
        """
        self._rows = {"host": {}, "user": {}, "team": {}, "hav": {}, "hav_absent": set()}
        self._pending = {}
        host_ids = sorted({r["hostid"] for r in results if r["hostid"]})
        if not host_ids:
            return
        self._rows["host"] = self._locked("host", "id, userid, " + ", ".join(HOST_FIELDS), host_ids)
        user_ids = sorted({h["userid"] for h in self._rows["host"].values() if h["userid"]})
        if user_ids:
            self._rows["user"] = self._locked(
                "user", "id, teamid, total_credit, expavg_credit, expavg_time", user_ids)
        team_ids = sorted({u["teamid"] for u in self._rows["user"].values() if u["teamid"]})
        if team_ids:
            self._rows["team"] = self._locked(
                "team", "id, total_credit, expavg_credit, expavg_time", team_ids)

    def _locked(self, table: str, columns: str, ids: list) -> dict:
        marks = ", ".join(["%s"] * len(ids))
        rows = self.db.query(f"SELECT {columns} FROM {table} WHERE id IN ({marks}) "
                             f"ORDER BY id FOR UPDATE", tuple(ids))
        out = {}
        for row in rows:
            row = {k: (float(v) if k in HOST_FIELDS else v) for k, v in row.items()}
            row["_orig"] = dict(row)
            out[row["id"]] = row
        return out

    # Phase 1: no database writes; user code runs here.
    def _judge_stragglers(self, wu, results) -> Optional[dict]:
        canonical = next((r for r in results if r["id"] == wu["canonical_resultid"]), None)
        if canonical is None:
            log.error("[WU#%s %s] Can't find canonical result %s", wu["id"], wu["name"],
                      wu["canonical_resultid"])
            return None
        checked, transition = [], NO_CHANGE
        for r in results:
            if r["server_state"] != ServerState.OVER or r["outcome"] != Outcome.SUCCESS:
                continue
            if r["validate_state"] not in (ValidateState.INIT, ValidateState.INCONCLUSIVE):
                continue
            log.info("[WU#%s] handle_wu(): testing result %s", wu["id"], r["id"])
            if check_pair(r, canonical, self._init, self.compare, self._cleanup):
                transition = DELAYED
                break
            checked.append(r)
            transition = IMMEDIATE
        return {"case": "straggler", "checked": checked, "canonical": canonical,
                "transition": transition}

    def _look_for_quorum(self, wu, results) -> dict:
        viable = [r for r in results if is_viable(r)]
        log.debug("[WU#%s %s] Found %d viable results", wu["id"], wu["name"], len(viable))
        plan = {"case": "quorum", "viable": viable, "canonical_id": None,
                "transition": NO_CHANGE, "checked": len(viable) >= wu["min_quorum"]}
        if plan["checked"]:
            canonical_id, retry = check_set(viable, wu["min_quorum"], self._init, self.compare,
                                            self._cleanup)
            plan["canonical_id"] = canonical_id
            if retry:
                plan["transition"] = DELAYED
        return plan

    # Phase 2: the database, in one transaction.
    def _write(self, wu, results, plan) -> None:
        if plan["case"] == "straggler":
            self._write_stragglers(wu, plan)
        else:
            self._write_quorum(wu, results, plan)
        self._finish_wu(wu, plan["transition"])

    def _hav_keys(self, results: list[dict]) -> list[tuple]:
        return [(r["hostid"], generalized_app_version_id(int(r["app_version_id"]), int(r["appid"])))
                for r in results]

    def _cache_hav(self, row: dict) -> dict:
        row = {k: (float(v) if k.endswith(("_n", "_avg", "_var", "_q")) else v)
               for k, v in row.items()}
        row["_orig"] = dict(row)
        self._rows["hav"][(row["host_id"], row["app_version_id"])] = row
        return row

    def _preload_havs(self, prepared: list[tuple]) -> None:
        """Read the group's existing host_app_version rows in one SELECT."""
        results = []
        for _, _, plan, _, _ in prepared:
            results += plan["viable"] if plan["case"] == "quorum" else plan["checked"]
        wanted = sorted(set(self._hav_keys(results)))
        if not wanted:
            return
        marks = ", ".join(["(%s, %s)"] * len(wanted))
        for row in self.db.query(f"SELECT * FROM host_app_version WHERE (host_id, app_version_id) "
                                 f"IN ({marks})", tuple(x for k in wanted for x in k)):
            self._cache_hav(row)
        self._rows["hav_absent"] = {k for k in wanted if k not in self._rows["hav"]}

    def _load_havs(self, results: list[dict]) -> list[dict]:
        """hav_lookup for each result: cached or one SELECT, missing rows taken over or created."""
        keys = self._hav_keys(results)
        cache = self._rows["hav"]
        absent = self._rows.setdefault("hav_absent", set())
        for key in keys:
            if key in cache:
                continue
            if key not in absent:
                row = self.db.query_one("SELECT * FROM host_app_version WHERE host_id=%s AND "
                                        "app_version_id=%s", key)
                if row is not None:
                    self._cache_hav(row)
                    continue
            absent.discard(key)
            if not self._take_over_hav(*key):
                row = {"host_id": key[0], "app_version_id": key[1], **{f: 0 for f in HAV_FIELDS},
                       "n_jobs_today": 0}
                self.db.insert("host_app_version", row)
                self._cache_hav(row)
        return [cache[k] for k in keys]

    def _take_over_hav(self, host_id: int, gen_avid: int) -> bool:
        """Give the host's row of an older version to ``gen_avid`` (see _appropriate_hav)."""
        taken = self._appropriate_hav(host_id, gen_avid)
        if taken is None:
            return False
        old_key, new_key = taken.pop("_from"), (host_id, gen_avid)
        cached = self._rows["hav"].pop(old_key, None)
        if cached is None:
            self._cache_hav(taken)
            return True
        # changed earlier in this transaction: carry the current values and pending writes
        cached["app_version_id"] = cached["_orig"]["app_version_id"] = gen_avid
        self._rows["hav"][new_key] = cached
        pending = self._pending.get("host_app_version", {})
        if old_key in pending:
            pending[new_key] = pending.pop(old_key)
        return True

    def _appropriate_hav(self, host_id: int, gen_avid: int) -> Optional[dict]:
        """credit.cpp hav_lookup: a new app version takes over the host's statistics.

        The host's host_app_version of the same app, platform and plan class
        with the highest version_num gets ``app_version_id = gen_avid`` (so a
        host keeps one row per app/platform/plan class, as with BOINC's validator).
        """
        if gen_avid <= 0:
            return None
        avs = self._app_version_keys
        if gen_avid not in avs:
            avs[gen_avid] = self.db.query_one(
                "SELECT id, appid, platformid, plan_class FROM app_version WHERE id=%s",
                (gen_avid,))
        av = avs[gen_avid]
        if av is None:
            return None
        row = self.db.query_one(
            "SELECT h.* FROM host_app_version h JOIN app_version a ON a.id = h.app_version_id "
            "WHERE h.host_id=%s AND a.appid=%s AND a.platformid=%s AND a.plan_class=%s "
            "ORDER BY a.version_num DESC LIMIT 1 FOR UPDATE",
            (host_id, av["appid"], av["platformid"], av["plan_class"]))
        if row is None:
            return None
        self.db.execute("UPDATE host_app_version SET app_version_id=%s WHERE host_id=%s "
                        "AND app_version_id=%s", (gen_avid, host_id, row["app_version_id"]))
        row["_from"] = (host_id, row["app_version_id"])
        row["app_version_id"] = gen_avid
        return row

    # Writes are collected per row and sent at the end of the workunit's
    # transaction, one UPDATE per table (update_rows): same end state as BOINC's
    # one-UPDATE-per-row, fewer round trips.
    def _pend(self, table: str, key: tuple, changes: dict) -> None:
        self._pending.setdefault(table, {}).setdefault(key, {}).update(changes)

    def _save_hav(self, hav) -> None:
        changed = {f: hav[f] for f in HAV_FIELDS if hav[f] != hav["_orig"][f]}
        if changed:
            self._pend("host_app_version", (hav["host_id"], hav["app_version_id"]), changed)
            hav["_orig"].update(changed)

    def _host(self, result) -> Optional[dict]:
        host = self._rows["host"].get(result["hostid"])
        if host is None:
            log.error("[RESULT#%s] lookup of host %s failed", result["id"], result["hostid"])
        return host

    def _save_host(self, host) -> None:
        changed = {f: host[f] for f in HOST_FIELDS if host[f] != host["_orig"][f]}
        if changed:
            self._pend("host", (host["id"],), changed)
            host["_orig"].update(changed)

    def _grant(self, host, result, credit: float) -> None:
        grant_credit(self.db, host, float(result["sent_time"]), credit,
                     users=self._rows["user"], teams=self._rows["team"], pending=self._pending)

    def _save_result(self, r) -> None:
        """DB_VALIDATOR_ITEM_SET::update_result's columns."""
        self._pend("result", (r["id"],), {
            "validate_state": int(r["validate_state"]), "granted_credit": r["granted_credit"],
            "server_state": int(r["server_state"]), "outcome": int(r["outcome"]),
            "opaque": r["opaque"], "random": r["random"],
            "runtime_outlier": 1 if r["runtime_outlier"] else 0})

    def _flush_pending(self) -> None:
        keys = {"host_app_version": ("host_id", "app_version_id")}
        for table in ("result", "host", "host_app_version", "user", "team", "workunit"):
            rows = self._pending.get(table)
            if rows:
                update_rows(self.db, table, keys.get(table, ("id",)), list(rows.items()),
                            relative=("total_credit",) if table in ("user", "team") else ())
        self._pending = {}

    def _is_unreplicated(self, wu) -> bool:
        return wu["target_nresults"] == 1 and (self.app.get("target_nresults") or 0) > 1

    def _is_valid(self, host, r, wu, hav) -> None:
        compute_avg_turnaround(host, float(r["received_time"]) - float(r["sent_time"]))
        if hav is not None:
            hav["max_jobs_per_day"] += 1
            if not self._is_unreplicated(wu):
                hav["consecutive_valid"] += 1

    def _is_invalid(self, hav) -> None:
        if hav is not None:
            hav["consecutive_valid"] = 0
            if hav["max_jobs_per_day"] > self.daily_result_quota:
                hav["max_jobs_per_day"] -= 1

    def _write_stragglers(self, wu, plan) -> None:
        o = self.options
        canonical = plan["canonical"]
        for r in plan["checked"]:
            update = r["outcome"] == Outcome.VALIDATE_ERROR
            host = self._host(r)
            if host is None:
                continue
            [hav] = self._load_havs([r])
            if r["validate_state"] == ValidateState.VALID:
                update = True
                log.info("[RESULT#%s %s] pair_check() matched: setting result to valid",
                         r["id"], r["name"])
                self._is_valid(host, r, wu, hav)
                assign_credit_set(wu, [r], [hav], self.app, self.av_stats, self.db,
                                  o.max_granted_credit)
                if not o.no_credit:
                    r["granted_credit"] = canonical["granted_credit"]
                    self._grant(host, r, float(r["granted_credit"]))
            elif r["validate_state"] == ValidateState.INVALID:
                update = True
                log.info("[RESULT#%s %s] pair_check() didn't match: setting result to invalid",
                         r["id"], r["name"])
                self._is_invalid(hav)
            if hav is not None and r["validate_state"] in (ValidateState.VALID, ValidateState.INVALID):
                self._save_hav(hav)
            self._save_host(host)
            if update:
                self._save_result(r)

    def _credit_for(self, wu, viable, havs, canonical_id) -> float:
        o = self.options
        credit = 0.0
        if o.credit_from_runtime is None:
            credit = assign_credit_set(wu, viable, havs, self.app, self.av_stats, self.db,
                                       o.max_granted_credit)
        if o.credit_from_wu:
            credit = float(wu["canonical_credit"])
            if credit == 0:
                log.error("[WU#%s %s] credit not specified in WU", wu["id"], wu["name"])
        elif o.credit_from_runtime is not None:
            credit = credit_from_runtime(wu, viable, o.max_granted_credit)
        elif o.post_assigned_credit:
            credit = next((float(r["claimed_credit"]) for r in viable if r["id"] == canonical_id), 0.0)
        elif o.no_credit:
            credit = 0.0
        if o.max_granted_credit and credit > o.max_granted_credit:
            credit = o.max_granted_credit
        return credit

    def _write_quorum(self, wu, results, plan) -> None:
        o = self.options
        viable, canonical_id = plan["viable"], plan["canonical_id"]
        havs = self._load_havs(viable)
        if not plan["checked"]:
            return
        credit = self._credit_for(wu, viable, havs, canonical_id) if canonical_id else 0.0
        n_viable = 0
        for r, hav in zip(viable, havs):
            update = False
            if r["outcome"] != Outcome.SUCCESS or r["validate_state"] == ValidateState.INVALID:
                plan["transition"] = IMMEDIATE
                update = True
            else:
                n_viable += 1
            host = None
            if r["validate_state"] in (ValidateState.VALID, ValidateState.INVALID):
                host = self._host(r)
                if host is None:
                    continue
            if r["validate_state"] == ValidateState.VALID:
                update = True
                self._is_valid(host, r, wu, hav)
                if not o.no_credit:
                    r["granted_credit"] = credit
                    self._grant(host, r, credit)
                    log.info("[RESULT#%s %s] Valid; granted %f credit [HOST#%s]", r["id"],
                             r["name"], credit, r["hostid"])
            elif r["validate_state"] == ValidateState.INVALID:
                update = True
                log.info("[RESULT#%s %s] Invalid [HOST#%s]", r["id"], r["name"], r["hostid"])
                self._is_invalid(hav)
            elif r["validate_state"] == ValidateState.INIT:
                log.info("[RESULT#%s %s] Inconclusive [HOST#%s]", r["id"], r["name"], r["hostid"])
                r["validate_state"] = ValidateState.INCONCLUSIVE
                update = True
            if hav is not None:
                self._save_hav(hav)
            if host is not None:
                self._save_host(host)
            if update:
                self._save_result(r)
        if canonical_id:
            plan["transition"] = NEVER
            log.debug("[WU#%s %s] Found a canonical result: id=%s", wu["id"], wu["name"],
                      canonical_id)
            wu["canonical_resultid"] = canonical_id
            wu["canonical_credit"] = credit
            wu["assimilate_state"] = 1  # AssimilateState.READY
            for r in results:
                if r["server_state"] == ServerState.UNSENT:
                    r["server_state"] = ServerState.OVER
                    r["outcome"] = Outcome.DIDNT_NEED
                    self._save_result(r)
        else:
            if n_viable > wu["max_success_results"]:
                wu["error_mask"] |= WuError.TOO_MANY_SUCCESS_RESULTS
                plan["transition"] = IMMEDIATE
            if n_viable >= wu["target_nresults"]:
                wu["target_nresults"] = n_viable + 1
                plan["transition"] = IMMEDIATE

    def _finish_wu(self, wu, transition) -> None:
        now = int(time.time())
        if transition == IMMEDIATE:
            wu["transition_time"] = now
        elif transition == DELAYED:
            wu["transition_time"] = min(wu["transition_time"], now + TRANSIENT_DELAY)
        elif transition == NEVER:
            wu["transition_time"] = INT_MAX
        self._pend("workunit", (wu["id"],), {
            "need_validate": 0, "error_mask": int(wu["error_mask"]),
            "assimilate_state": int(wu["assimilate_state"]),
            "transition_time": int(wu["transition_time"]),
            "target_nresults": int(wu["target_nresults"]),
            "canonical_resultid": wu["canonical_resultid"],
            "canonical_credit": float(wu["canonical_credit"])})
