"""BOINC's credit arithmetic (``sched/credit.cpp``, ``lib/util.cpp``, ``lib/average.h``).

Where BOINC releases differ, this follows Debian's libsched 7.20.5, which the
tests use as the judge (tests/daemons/test_oracle.py compares
:func:`assign_credit_set` and the statistics it updates with libsched's).

Plain functions over row dicts, so the validator's database code stays
separate from the numbers. What the validator does with them:

* default ("CreditNew"): :func:`assign_credit_set` turns each valid result's
  elapsed time x FLOPS estimate into a peak FLOP count (PFC), scaled by the
  app version and host statistics once they have enough samples, and takes
  a pegged average; it also updates those statistics
  (``host_app_version`` rows, and ``app_version`` rows flushed when idle);
* ``--credit_from_runtime``: :func:`credit_from_runtime` (low average);
* ``--credit_from_wu``: ``workunit.canonical_credit``;
* :func:`grant_credit` adds credit to host, user and team totals and their
  exponentially decaying averages (half-life 7 days).
"""

from __future__ import annotations

import math
import time
from typing import Optional

COBBLESTONE_SCALE = 200 / 86400e9
CREDIT_HALF_LIFE = 86400 * 7
SECONDS_PER_DAY = 86400
DEFAULT_MAX_GRANTED_CREDIT = 200 * 1000 * 365
AVG_CPU_FPOPS = 4.3e9

MIN_HOST_SAMPLES = 10
MIN_VERSION_SAMPLES = 100
CONS_VALID_HOST_SCALE = 10
HAV_AVG = (20, 0.01, 10)      # threshold, weight, limit
AV_AVG = (100, 0.001, 10)

PFC_MODE_NORMAL, PFC_MODE_APPROX, PFC_MODE_WU_EST, PFC_MODE_INVALID = 0, 1, 2, 3

#: host_app_version columns the validator maintains (DB_HOST_APP_VERSION::update_validator)
HAV_FIELDS = ("pfc_n", "pfc_avg", "et_n", "et_avg", "et_var", "et_q", "max_jobs_per_day",
              "turnaround_n", "turnaround_avg", "turnaround_var", "turnaround_q",
              "consecutive_valid")
#: host columns the validator maintains (DB_HOST::update_diff_validator)
HOST_FIELDS = ("total_credit", "expavg_credit", "expavg_time", "avg_turnaround")


def c_div(a: float, b: float) -> float:
    """``a / b`` as C computes it on doubles: inf or NaN instead of ZeroDivisionError.

    A workunit with ``rsc_fpops_est = 0`` (or a result with no times) makes BOINC's
    credit formulas divide by zero; its C++ validator gets inf/NaN and goes on, and
    so must ours (the non-finite numbers are then kept out of the database).
    """
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


# -- running averages (lib/average.h) -------------------------------------------------
def avg_update(row: dict, prefix: str, sample: float, threshold, weight, limit) -> None:
    """AVERAGE::update on ``row[prefix+'_n']`` / ``row[prefix+'_avg']``."""
    n, avg = float(row[f"{prefix}_n"]), float(row[f"{prefix}_avg"])
    if sample < 0 or not math.isfinite(sample):   # C++ would store inf/NaN: the row stays
        return
    if n and avg and sample > avg * limit:
        sample = avg * limit
    n += 1
    delta = sample - avg
    avg += delta / n if n < threshold else weight * delta
    row[f"{prefix}_n"], row[f"{prefix}_avg"] = n, avg


def avg_update_var(row: dict, prefix: str, sample: float, threshold, weight, limit) -> None:
    """AVERAGE_VAR::update_var: the average plus its variance (``_var``, ``_q``)."""
    n, avg = float(row[f"{prefix}_n"]), float(row[f"{prefix}_avg"])
    var, q = float(row[f"{prefix}_var"]), float(row[f"{prefix}_q"])
    if sample < 0 or not math.isfinite(sample):
        return
    if n and avg and sample > avg * limit:
        sample = avg * limit
    n += 1
    delta = sample - avg
    if n < threshold:
        avg += delta / n
        q += delta * (sample - avg)
        var = q / n
    else:
        avg += weight * delta
        var += weight * (delta * delta - var)
    row.update({f"{prefix}_n": n, f"{prefix}_avg": avg, f"{prefix}_var": var, f"{prefix}_q": q})


def update_average(now: float, work_start_time: float, work: float, half_life: float,
                   avg: float, avg_time: float) -> tuple[float, float]:
    """lib/util.cpp update_average: the new (avg, avg_time) of a per-day rate.

    Several samples folded in at the same ``now`` (app_version statistics,
    several results of one host) use BOINC's small-interval limit: the decay
    weight tends to 1 and the new work adds ``ln 2 * work * day / half_life``.
    """
    if avg_time:
        diff = max(now - avg_time, 0.0)
        weight = math.exp(-diff * math.log(2) / half_life)
        avg *= weight
        if 1.0 - weight > 1e-6:
            avg += (1 - weight) * (work / (diff / SECONDS_PER_DAY))
        else:
            avg += math.log(2) * work * SECONDS_PER_DAY / half_life
    elif work:
        days = (now - work_start_time) / SECONDS_PER_DAY
        # BOINC divides by zero here (inf, then a rejected UPDATE); take the limit instead
        avg = work / days if days > 0 else math.log(2) * work * SECONDS_PER_DAY / half_life
    return avg, now


def compute_avg_turnaround(host: dict, turnaround: float) -> None:
    old = float(host["avg_turnaround"])
    host["avg_turnaround"] = turnaround if old == 0 else 0.7 * old + 0.3 * turnaround


def credit_to_host(host: dict, start_time: float, credit: float, now: Optional[float] = None) -> None:
    """The host part of grant_credit: total and recent average, in memory."""
    now = time.time() if now is None else now
    host["expavg_credit"], host["expavg_time"] = update_average(
        now, start_time, credit, CREDIT_HALF_LIFE,
        float(host["expavg_credit"]), float(host["expavg_time"]))
    host["total_credit"] = float(host["total_credit"]) + credit


def grant_credit(db, host: dict, start_time: float, credit: float, now: Optional[float] = None,
                 users: Optional[dict] = None, teams: Optional[dict] = None,
                 pending: Optional[dict] = None) -> None:
    """credit.cpp grant_credit: host in memory (caller writes it), user and team in the DB.

    ``users``/``teams`` map ids to rows already read (and locked) by the caller;
    they are kept up to date so a second grant in the same transaction sees the first.
    With ``pending`` the user/team writes are collected there ({table: {(id,):
    {"total_credit": added, "expavg_credit": .., "expavg_time": ..}}}) instead of run.
    """
    now = time.time() if now is None else now
    credit_to_host(host, start_time, credit, now)
    user = (users.get(host["userid"]) if users is not None else
            db.query_one("SELECT id, teamid, expavg_credit, expavg_time FROM user WHERE id=%s",
                         (host["userid"],)))
    if user is None:
        return
    team = None
    if user["teamid"]:
        team = (teams.get(user["teamid"]) if teams is not None else
                db.query_one("SELECT id, expavg_credit, expavg_time FROM team WHERE id=%s",
                             (user["teamid"],)))
    for table, row in (("user", user), ("team", team)):
        if row is None:
            continue
        avg, avg_time = update_average(now, start_time, credit, CREDIT_HALF_LIFE,
                                       float(row["expavg_credit"]), float(row["expavg_time"]))
        if pending is None:
            db.execute(f"UPDATE {table} SET total_credit=total_credit+%s, expavg_credit=%s, "
                       f"expavg_time=%s WHERE id=%s", (credit, avg, avg_time, row["id"]))
        else:
            entry = pending.setdefault(table, {}).setdefault((row["id"],), {"total_credit": 0.0})
            entry.update(total_credit=entry["total_credit"] + credit, expavg_credit=avg,
                         expavg_time=avg_time)
        row["expavg_credit"], row["expavg_time"] = avg, avg_time
        if "total_credit" in row:
            row["total_credit"] = float(row["total_credit"]) + credit


# -- CreditNew (credit.cpp get_pfc / assign_credit_set) ----------------------------------
def generalized_app_version_id(app_version_id: int, appid: int) -> int:
    """host_app_version.app_version_id: anonymous-platform versions get a pseudo id."""
    return app_version_id if app_version_id > 0 else appid * 1000000 - app_version_id


def wu_estimated_pfc(wu: dict, app: dict) -> float:
    x = float(wu["rsc_fpops_est"])
    if app.get("min_avg_pfc"):
        x *= float(app["min_avg_pfc"])
    return x


def _pfc_sane(x: float) -> bool:
    return 1e-4 <= x <= 1e4


class AppVersionStats:
    """The validator's cache of app_version rows and their pending PFC/credit samples."""

    def __init__(self):
        self.rows: dict[int, dict] = {}

    def lookup(self, db, av_id: int) -> Optional[dict]:
        row = self.rows.get(av_id)
        if row is None:
            row = db.query_one("SELECT id, pfc_n, pfc_avg, pfc_scale, expavg_credit, expavg_time "
                               "FROM app_version WHERE id=%s", (av_id,))
            if row is None:
                return None
            row.update(pfc_samples=[], credit_samples=[], credit_times=[])
            self.rows[av_id] = row
        return row

    def sample_counts(self) -> dict:
        return {i: (len(r["pfc_samples"]), len(r["credit_samples"])) for i, r in self.rows.items()}

    def truncate_samples(self, counts: dict) -> None:
        """Forget samples added since ``sample_counts()`` (a rolled-back transaction)."""
        for i, row in self.rows.items():
            n_pfc, n_credit = counts.get(i, (0, 0))
            del row["pfc_samples"][n_pfc:]
            del row["credit_samples"][n_credit:]
            del row["credit_times"][n_credit:]

    def flush(self, db, now: Optional[float] = None) -> None:
        """write_modified_app_versions: fold samples in, compare-and-set, retry."""
        now = time.time() if now is None else now
        for av in self.rows.values():
            if not av["pfc_samples"] and not av["credit_samples"]:
                continue
            for _ in range(10):
                pfc_n_orig, expavg_orig = float(av["pfc_n"]), float(av["expavg_credit"])
                for x in av["pfc_samples"]:
                    avg_update(av, "pfc", x, *AV_AVG)
                for c, t in zip(av["credit_samples"], av["credit_times"]):
                    av["expavg_credit"], av["expavg_time"] = update_average(
                        now, t, c, CREDIT_HALF_LIFE, float(av["expavg_credit"]), float(av["expavg_time"]))
                changed = db.execute(
                    "UPDATE app_version SET pfc_n=%s, pfc_avg=%s, expavg_credit=%s, expavg_time=%s "
                    "WHERE id=%s AND pfc_n=%s AND abs(expavg_credit-%s)<1e-4 AND abs(pfc_scale-%s)<1e-6",
                    (av["pfc_n"], av["pfc_avg"], av["expavg_credit"], av["expavg_time"], av["id"],
                     pfc_n_orig, expavg_orig, av["pfc_scale"]))
                if changed == 1:
                    break
                fresh = db.query_one("SELECT pfc_n, pfc_avg, pfc_scale, expavg_credit, expavg_time "
                                     "FROM app_version WHERE id=%s", (av["id"],))
                if fresh is None:
                    break
                av.update(fresh)
            av["pfc_samples"], av["credit_samples"], av["credit_times"] = [], [], []


def c_string(blob) -> bytes:
    """A blob column (bytes from the driver, or text) as C code sees it: up to the first NUL."""
    if not blob:
        return b""
    if isinstance(blob, str):
        blob = blob.encode("utf-8", "surrogateescape")
    return bytes(blob).split(b"\0", 1)[0]


def get_pfc(result: dict, wu: dict, app: dict, av_stats: AppVersionStats, db,
            hav: Optional[dict]) -> tuple[float, int]:
    """The claimed peak FLOP count of one valid result, and how sure it is."""
    mode = PFC_MODE_APPROX
    av_id = int(result["app_version_id"])
    if av_id == 0:                      # old scheduler: no app version recorded
        return wu_estimated_pfc(wu, app), PFC_MODE_WU_EST
    if b"Device Emulation (CPU)" in c_string(result.get("stderr_out")):
        return wu_estimated_pfc(wu, app), PFC_MODE_WU_EST
    if hav is None:
        return wu_estimated_pfc(wu, app), PFC_MODE_WU_EST
    fpops_est = float(wu["rsc_fpops_est"])
    outlier = bool(result.get("runtime_outlier"))
    elapsed = float(result["elapsed_time"])
    if elapsed < 1e-6:
        # old client: only CPU time
        if not outlier:
            avg_update_var(hav, "et", c_div(float(result["cpu_time"]), fpops_est), *HAV_AVG)
        pfc = wu_estimated_pfc(wu, app)
        do_scale = hav["et_n"] >= MIN_HOST_SAMPLES and hav["et_avg"] > 0
        if do_scale and app.get("host_scale_check") and hav["consecutive_valid"] < CONS_VALID_HOST_SCALE:
            do_scale = False
        if do_scale:
            pfc *= c_div(float(result["cpu_time"]), hav["et_avg"] * fpops_est)
        return pfc, mode
    flops = float(result["flops_estimate"])
    if flops <= 0:
        flops = 1e10
    raw_pfc = elapsed * flops
    # raw_pfc > rsc_fpops_bound: libsched 7.20 only logs a warning here and goes on
    # (assign_credit_set replaces a too-high PFC by the workunit estimate below)
    avp = None
    if av_id < 0:
        do_scale = hav["pfc_n"] >= MIN_HOST_SAMPLES and hav["pfc_avg"] > 0
        if do_scale and app.get("host_scale_check") and hav["consecutive_valid"] < CONS_VALID_HOST_SCALE:
            do_scale = False
        if do_scale:
            pfc = raw_pfc * c_div(float(app.get("min_avg_pfc") or 0), hav["pfc_avg"])
        else:
            pfc = wu_estimated_pfc(wu, app)
    else:
        avp = av_stats.lookup(db, av_id)
        if avp is None:
            raise LookupError(f"app_version {av_id} not found")
        do_scale = True
        host_scale = 0.0
        if app.get("host_scale_check") and hav["consecutive_valid"] < CONS_VALID_HOST_SCALE:
            do_scale = False
        if do_scale and (hav["pfc_n"] < MIN_HOST_SAMPLES or hav["pfc_avg"] == 0):
            do_scale = False
        if do_scale and float(avp["pfc_n"]) < MIN_VERSION_SAMPLES:
            do_scale = False
        if do_scale and hav["pfc_avg"] <= 0:
            do_scale = False
        if do_scale:
            host_scale = min(10.0, c_div(float(avp["pfc_avg"]), hav["pfc_avg"]))
        pfc = raw_pfc
        if avp["pfc_scale"]:
            pfc *= float(avp["pfc_scale"])
            if host_scale:
                pfc *= host_scale
                mode = PFC_MODE_NORMAL
        elif host_scale:
            pfc *= host_scale
        x = c_div(raw_pfc, fpops_est)
        if not outlier and _pfc_sane(x):
            avp["pfc_samples"].append(x)
    if not outlier:
        x = c_div(raw_pfc, fpops_est)
        if _pfc_sane(x):
            avg_update(hav, "pfc", x, *HAV_AVG)
        avg_update_var(hav, "et", c_div(elapsed, fpops_est), *HAV_AVG)
        avg_update_var(hav, "turnaround",
                       float(result["received_time"]) - float(result["sent_time"]), *HAV_AVG)
    if avp is not None and math.isfinite(pfc):
        avp["credit_samples"].append(pfc * COBBLESTONE_SCALE)
        avp["credit_times"].append(float(result["sent_time"]))
    return pfc, mode


def pegged_average(values: list[float], anchor: float) -> float:
    if len(values) == 1:
        return values[0]
    weights = total = 0.0
    for v in values:
        w = c_div(1.0, 0.1 * anchor + abs(anchor - v))
        weights += w
        total += w * v
    return c_div(total, weights)


def low_average(values: list[float]) -> float:
    """Each value weighted by the sum of the others (damps a high outlier)."""
    if len(values) == 1:
        return values[0]
    s = sum(values)
    return sum(v * (s - v) for v in values) / ((len(values) - 1) * s)


def assign_credit_set(wu: dict, results: list[dict], havs: list[Optional[dict]], app: dict,
                      av_stats: AppVersionStats, db, max_granted_credit: float) -> float:
    """The credit for a workunit's valid results; updates the PFC statistics."""
    normal, approx = [], []
    for result, hav in zip(results, havs):
        if result["validate_state"] != 1:  # ValidateState.VALID
            continue
        try:
            pfc, mode = get_pfc(result, wu, app, av_stats, db, hav)
        except LookupError:
            continue
        if pfc > float(wu["rsc_fpops_bound"]):
            pfc = wu_estimated_pfc(wu, app)
        # max_granted_credit trumps rsc_fpops_bound: such a result does not vote
        if max_granted_credit and pfc * COBBLESTONE_SCALE > max_granted_credit:
            pfc = max_granted_credit / COBBLESTONE_SCALE
            mode = PFC_MODE_INVALID
        if mode == PFC_MODE_NORMAL:
            normal.append(pfc)
        elif mode != PFC_MODE_INVALID:
            approx.append(pfc)
    anchor = wu_estimated_pfc(wu, app)
    if len(normal) == 1:
        approx += [normal[0], normal[0]]
        normal = []
    values = normal if normal else approx
    # no voting result: BOINC guesses the workunit estimate
    credit = (pegged_average(values, anchor) if values else anchor) * COBBLESTONE_SCALE
    if not math.isfinite(credit) or credit < 0:
        # rsc_fpops_est = 0 and a zero PFC gives NaN (C++'s UPDATE then fails), a
        # negative estimate a negative credit: numbers no one should be granted
        return 0.0
    return credit


def credit_from_runtime(wu: dict, results: list[dict], max_granted_credit: float) -> float:
    """``--credit_from_runtime``: low average of elapsed_time x flops_estimate credits."""
    credits = []
    for r in results:
        flops = float(r["flops_estimate"])
        if flops == 1e9:
            flops = AVG_CPU_FPOPS
        pfc = flops * float(r["elapsed_time"])
        if pfc > float(wu["rsc_fpops_bound"]) * 2:
            pfc = float(wu["rsc_fpops_bound"])
        c = pfc * COBBLESTONE_SCALE
        if 0 < c <= max_granted_credit or (not max_granted_credit and c > 0):
            credits.append(c)
    return low_average(credits) if credits else 0.0
