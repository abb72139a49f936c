"""Bookkeeping between HTCondor jobs and work items.

The back end's poll thread feeds this with ClassAds from the schedd: the
queue's ads while jobs are there (RUNNING starts the future, HELD fails it with
the hold reason), then, for jobs no longer in the queue, their history ads
(or None when the schedd keeps no history) to settle the future from
output.json.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from ..base import run_chunk
from ._outcome import (HELD, RUNNING, TRANSFERRING_OUTPUT, chunk_value, finished_outcome,
                       held_error)

Key = tuple  # (ClusterId, ProcId)


@dataclass
class TrackedJob:
    item: object          # the WorkItem
    task_dir: Path
    started: bool = False


class JobTracker:
    def __init__(self, keep_files: bool = False):
        self.keep_files = keep_files
        self._jobs: dict[Key, TrackedJob] = {}
        self._lock = threading.Lock()

    def add(self, cluster: int, jobs: Iterable[tuple[object, Path]]) -> None:
        with self._lock:
            for proc, (item, task_dir) in enumerate(jobs):
                self._jobs[(cluster, proc)] = TrackedJob(item, task_dir)

    def keys(self) -> set:
        with self._lock:
            return set(self._jobs)

    def clusters(self) -> set:
        return {cluster for cluster, _ in self.keys()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def items(self) -> list:
        with self._lock:
            return [job.item for job in self._jobs.values()]

    def see_queue(self, ads: Iterable, asked_about: set) -> tuple[list, list]:
        """Apply the queue's ads. Returns (jobs to remove from the queue: held
        or cancelled, jobs that left the queue). ``asked_about`` are the keys
        tracked when the query was sent (newer jobs cannot be missing yet)."""
        to_remove, present = [], set()
        for ad in ads:
            key = (ad.get("ClusterId"), ad.get("ProcId"))
            with self._lock:
                job = self._jobs.get(key)
            if job is None:
                continue
            present.add(key)
            if job.item.future.cancelled():
                self._drop(key)
                to_remove.append(key)
                continue
            status = ad.get("JobStatus")
            if status in (RUNNING, TRANSFERRING_OUTPUT, HELD) and not self._start(job):
                self._drop(key)
                to_remove.append(key)
                continue
            if status == HELD:
                job.item.set_exception(held_error(ad, job.task_dir))
                self._drop(key)
                to_remove.append(key)
        gone = sorted(k for k in asked_about if k not in present and k in self.keys())
        return to_remove, gone

    def finish(self, key: Key, history_ad: Optional[object]) -> None:
        """Settle the future of a job that left the queue."""
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return
        if self._start(job):
            try:
                value = finished_outcome(history_ad, job.task_dir)
                if job.item.fn is run_chunk:
                    value = chunk_value(value)
                job.item.set_result(value)
            except Exception as exc:
                job.item.set_exception(exc)
        self._drop(key)

    def fail_all(self, exc_factory) -> None:
        for key in sorted(self.keys()):
            with self._lock:
                job = self._jobs.get(key)
            if job is not None and self._start(job):
                job.item.set_exception(exc_factory(key))
            self._drop(key)

    def _start(self, job: TrackedJob) -> bool:
        if not job.started:
            if not job.item.mark_started():
                return False
            job.started = True
        return True

    def _drop(self, key: Key) -> None:
        with self._lock:
            job = self._jobs.pop(key, None)
        if job is not None and not self.keep_files:
            shutil.rmtree(job.task_dir, ignore_errors=True)
