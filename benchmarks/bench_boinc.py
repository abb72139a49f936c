"""The BOINC back ends' own costs, each against a named peer measured in the same run.

  submit   workunits/s that ``Master(interface="boinc").map`` creates (encode,
           stage the input, one create_work per call, one transaction per map)
           vs the toolkit's bulk ``Project.create_batch`` on the same inputs
           (a peer that does no JSON encoding and no reattach bookkeeping)
  local    seconds per workunit of ``-i boinc-local`` (quorum 1, 2 slots) with
           our slot runner and with the real BOINC client, vs the same calls
           on ``-i multicore`` (2 workers): the price of the whole pipeline
           (slot set-up, launcher, portable interpreter start, boinc_finish's
           2 s, validator, assimilator)

  scale    issue #19's workload: a real ``Master(interface="boinc")`` doing
           ``map(square, range(N))`` (poll interval 5 s) while a simulated
           server (tests/backends/boinc/sim_server.py, in its own process)
           finishes workunits at a fixed rate through the real result-store
           assimilator; prints the issue's table (creation rate below the
           high-water mark, Master peak RSS, one poll, SQL per poll, delay
           from assimilation to result, collector completions/s), then a
           reattach of the finished batch and the files left per call.
           The peer is the server itself: the Master should keep up with it.

Needs MariaDB at 127.0.0.1 (scripts/setup.sh). ``--quick`` uses tiny sizes.

    .venv/bin/python benchmarks/bench_boinc.py
    .venv/bin/python benchmarks/bench_boinc.py --scale 100000 [--rate 1000]
"""

from __future__ import annotations

import argparse
import bisect
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from backends.boinc import tasks  # noqa: E402
from boinc_pymw import Master  # noqa: E402


def bench_submit(n: int, work: str) -> None:
    from boinc_pymw.boinc.testing import add_app, make_project
    from boinc_pymw.templates import write_app_templates

    project = make_project(os.path.join(work, "proj"), f"pymw_bench_{os.getpid()}")
    try:
        add_app(project, "benchapp")
        write_app_templates(project, "benchapp", inputs=["input.json"], outputs=["output.json"])
        master = Master(interface="boinc", project=project.path, app="benchapp",
                        batch="bench", poll_interval=3600)
        t0 = time.perf_counter()
        master.map(tasks.square, range(n))
        ours = time.perf_counter() - t0
        master.shutdown(wait=False, cancel_futures=True)
        jobs = [{"files": [(f"peer_{i}.json", b'{"function": "m:f", "args": [%d]}' % i)]}
                for i in range(n)]
        t0 = time.perf_counter()
        project.create_batch(jobs, app="benchapp", batch_name="peer")
        peer = time.perf_counter() - t0
    finally:
        project.drop()
    print(f"submit  {n} calls: boinc back end {n / ours:8.0f} WU/s, "
          f"create_batch {n / peer:8.0f} WU/s, ratio {peer / ours:.2f}")


def bench_local(n: int, work: str) -> None:
    calls = list(range(n))
    t0 = time.perf_counter()
    with Master(interface="multicore", workers=2) as master:
        expected = list(master.map(tasks.square, calls))
    multicore = (time.perf_counter() - t0) / n
    for client in ("builtin", "boinc"):
        if client == "boinc" and not shutil.which("boinc"):
            print("local   (boinc client not installed)")
            continue
        t0 = time.perf_counter()
        with Master(interface="boinc-local", workers=2, quorum=1, client=client,
                    workdir=os.path.join(work, client)) as master:
            assert list(master.map(tasks.square, calls)) == expected
        local = (time.perf_counter() - t0) / n
        print(f"local   {n} calls, client {client:7s}: {local:6.2f} s/WU, multicore "
              f"{multicore * 1000:6.1f} ms/call, ratio {local / multicore:8.0f}x")


#: seconds between the simulated server's steps (one assimilator pass each)
SERVER_STEP = 0.1


def serve(project_dir: str, app: str, rate: float, stop_file: str, marks_file: str) -> None:
    """The simulated server process: finish ``rate`` workunits per second.

    After each step it appends "<workunits finished so far> <time>" to
    ``marks_file``: the time the assimilator's transaction marked them
    assimilated (what the Master's delay is measured from).
    """
    from backends.boinc.sim_server import SimulatedServer
    from boinc_pymw.boinc.project import Project

    project = Project(project_dir)
    server = SimulatedServer(project, app, project.app(app)["id"])
    t0 = time.monotonic()
    with open(marks_file, "w", buffering=1) as marks:
        marks.write(f"0 {time.time()}\n")
        while not os.path.exists(stop_file):
            due = int(rate * (time.monotonic() - t0)) - server.finished
            if due <= 0 or not server.finish(min(due, 2000)):
                # what is due every SERVER_STEP goes in one assimilator pass, as a
                # daemon finds all that is ready (not one pass, and two syncfs, per
                # 20 ms: those stalled the Master's file creation more than a
                # project's assimilator would)
                time.sleep(SERVER_STEP - (time.monotonic() - t0) % SERVER_STEP)
                continue
            marks.write(f"{server.finished} {time.time()}\n")
    print(f"server  finished {server.finished} workunits in "
          f"{time.monotonic() - t0:.1f} s", flush=True)


class _DelayMeter:
    """Delay from a call's assimilation (the server's marks) to its delivery.

    Calls are finished oldest first and a fresh map's positions follow the
    workunit ids, so call ``pos`` was marked by the first mark whose count
    exceeds ``pos``. Delays go into 10 ms buckets: bounded memory at 1M calls.
    """

    BUCKET = 0.01

    def __init__(self, marks_file: str):
        self.path, self.offset = marks_file, 0
        self.counts: list[int] = []
        self.times: list[float] = []
        self.buckets = [0] * 12_000
        self.late: list[tuple[int, float]] = []     # delivered before their mark was read

    def _load(self) -> None:
        try:
            with open(self.path) as f:
                f.seek(self.offset)
                text = f.read()
        except FileNotFoundError:
            return
        end = text.rfind("\n") + 1
        self.offset += len(text[:end].encode())
        for line in text[:end].splitlines():
            count, when = line.split()
            self.counts.append(int(count))
            self.times.append(float(when))

    def mark(self, pos: int) -> float | None:
        if not self.counts or self.counts[-1] <= pos:
            self._load()
        i = bisect.bisect_right(self.counts, pos)
        return self.times[i] if i < len(self.times) else None

    def delivered(self, positions, now: float) -> None:
        for pos in positions:
            marked = self.mark(pos)
            if marked is None:
                self.late.append((pos, now))
                continue
            self.add(now - marked)

    def add(self, delay: float) -> None:
        self.buckets[min(len(self.buckets) - 1, max(0, int(delay / self.BUCKET)))] += 1

    def finish(self) -> tuple[float, float, int]:
        """(max, p99) in seconds, and how many calls were measured."""
        for pos, now in self.late:
            marked = self.mark(pos)
            if marked is not None:
                self.add(now - marked)
        total = sum(self.buckets)
        top = max((i for i, n in enumerate(self.buckets) if n), default=0)
        seen, p99 = 0, 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= 0.99 * total:
                p99 = i
                break
        return (top + 1) * self.BUCKET, (p99 + 1) * self.BUCKET, total

    def server_rate(self) -> float:
        """Workunits per second the server managed from its start to its last mark."""
        self._load()
        return self.counts[-1] / max(1e-9, self.times[-1] - self.times[0])


class _CountingDb:
    """The collector's database, counting statements."""

    def __init__(self, db):
        self._db, self.statements = db, 0

    def query(self, *a, **k):
        self.statements += 1
        return self._db.query(*a, **k)

    def query_one(self, *a, **k):
        self.statements += 1
        return self._db.query_one(*a, **k)

    def __getattr__(self, name):
        return getattr(self._db, name)


def bench_scale(n: int, rate: float, poll: float, work: str) -> None:
    import resource
    import statistics
    import subprocess

    from boinc_pymw.boinc.testing import add_app, make_project
    from boinc_pymw.templates import write_app_templates

    project = make_project(os.path.join(work, "scale"), f"pymw_bench_{os.getpid()}",
                           daemons=["result_store_assimilator --app simapp"])
    stop_file = os.path.join(work, "stop_server")
    server = None
    try:
        add_app(project, "simapp")
        write_app_templates(project, "simapp", inputs=["input.json"], outputs=["output.json"])
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        master = Master(interface="boinc", project=project.path, app="simapp", batch="scale",
                        poll_interval=poll)
        backend = master.backend
        marks_file = os.path.join(work, "marks")
        meter = _DelayMeter(marks_file)
        polls, busy = [], []
        collect_once, complete, deliver = backend.collect_once, backend._complete, \
            backend._deliver

        def timed_collect(db):
            counting = _CountingDb(db)
            t = time.perf_counter()
            done = collect_once(counting)
            polls.append((time.perf_counter() - t, counting.statements, done))
            return done

        def timed_complete(db, ids):
            t, c = time.perf_counter(), time.thread_time()
            done = complete(db, ids)
            busy.append((time.perf_counter() - t, time.thread_time() - c, done))
            return done

        def timed_deliver(outcomes):
            deliver(outcomes)
            meter.delivered([pos for _target, pos, _ok, _value in outcomes], time.time())

        place, filled = backend._place, []

        def timed_place(calls, strict):
            placed = place(calls, strict)
            if not filled and backend._created >= min(n, backend.high_water):
                filled.append(time.perf_counter() - t0)
            return placed

        backend.collect_once, backend._complete, backend._deliver, backend._place = \
            timed_collect, timed_complete, timed_deliver, timed_place
        server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve",
                                   project.path, "simapp", str(rate), stop_file, marks_file])
        t0 = time.perf_counter()
        results = master.map(tasks.square, range(n))
        total = sum(results)
        first_fill = filled[0] if filled else None
        elapsed = time.perf_counter() - t0
        assert total == sum(x * x for x in range(n))
        master.shutdown()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        open(stop_file, "w").close()
        server.wait(60)
        server = None
        delay_max, delay_p99, measured = meter.finish()
        server_rate = meter.server_rate()
        created = min(n, backend.high_water)
        busy_time = sum(b for b, _c, _d in busy)
        busy_cpu = sum(c for _b, c, _d in busy)
        done_polls = [p for p in polls if p[2]]
        print(f"scale   N={n:,} rate={rate:.0f}/s (server steps of {SERVER_STEP:g} s) "
              f"poll={poll:g}s high_water="
              f"{backend.high_water:,}: all results in {elapsed:.1f} s "
              f"(ideal {n / rate:.1f} s); load average {os.getloadavg()[0]:.1f}")
        reached = "reached" if server_rate >= 0.95 * rate else "did NOT reach"
        print(f"server  managed {server_rate:,.0f} workunits/s: it {reached} the asked "
              f"{rate:,.0f}/s")
        print("| N | create rate (first high-water fill) | Master peak RSS | one poll "
              "(median / max) | SQL per poll (median / max) | assimilation to result, max (p99) | "
              "collector completions/s (per wall s / per CPU s of its thread) |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {n:,} | {created / (first_fill or elapsed):,.0f}/s "
              f"({created:,} in {first_fill or elapsed:.1f} s) | "
              f"{peak:,.0f} MB (before Master {rss0:,.0f} MB) | "
              f"{statistics.median(p[0] for p in done_polls) * 1000:.0f} / "
              f"{max(p[0] for p in done_polls) * 1000:.0f} ms | "
              f"{statistics.median(p[1] for p in done_polls):.0f} / "
              f"{max(p[1] for p in done_polls)} | {delay_max:.2f} s ({delay_p99:.2f} s) | "
              f"{sum(d for *_x, d in busy) / busy_time:,.0f} / "
              f"{sum(d for *_x, d in busy) / max(busy_cpu, 1e-9):,.0f} |")
        if measured != n:
            print(f"(delay measured for {measured:,} of {n:,} calls)")
        # reattach to the finished batch: every call comes back from the store
        t0 = time.perf_counter()
        with Master(interface="boinc", project=project.path, app="simapp", batch="scale",
                    poll_interval=poll) as again:
            results = again.map(tasks.square, range(n))
            next(results)
            first = time.perf_counter() - t0
            rest = sum(1 for _ in results) + 1
        print(f"reattach {n:,} finished calls: first result after {first:.1f} s, "
              f"all {rest:,} after {time.perf_counter() - t0:.1f} s")
        files = 0
        for sub in ("download", "upload", "results_store"):
            for _root, _dirs, names in os.walk(os.path.join(project.path, sub)):
                files += len(names) + len(_dirs)
        print(f"files   {files / n:.2f} files or folders per call on the project's disk "
              f"(download, upload, results_store; before the file_deleter)")
    finally:
        if server is not None:
            open(stop_file, "w").close()
            server.wait(60)
        project.drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scale", type=int, metavar="N",
                        help="only the scale mode, with N calls (issue #19: 100000, 1000000)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="scale mode: workunits the simulated server finishes per second")
    parser.add_argument("--poll", type=float, default=5.0, help="scale mode: poll interval")
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        project_dir, app, rate, stop_file, marks_file = args.serve
        serve(project_dir, app, float(rate), stop_file, marks_file)
        return 0
    work = tempfile.mkdtemp(prefix="bench_boinc_")
    if args.scale:
        try:
            bench_scale(args.scale, args.rate, args.poll, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    try:
        bench_submit(50 if args.quick else 2000, work)
        # warm the launcher/runtime cache so build time is not counted
        with Master(interface="boinc-local", workers=1, quorum=1, client="builtin",
                    workdir=os.path.join(work, "warm")) as master:
            master.submit(tasks.square, 1).result()
        bench_local(4 if args.quick else 12, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
