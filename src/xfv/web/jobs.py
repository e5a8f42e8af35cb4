"""Background jobs of the web server: X-Maps computed on request, polled by the pages.

A :class:`JobManager` runs work functions on a small thread pool (one worker by default: the
model already uses every core) and keeps each job's status and progress in memory for polling.
A job is identified by a key (what it computes); asking again for a job whose key is queued or
running returns that job instead of starting a second one. Results are not kept here: the work
writes them to the store or to an upload, and the job names where to fetch them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from xfv.errors import XfvError
from xfv.web.errors import NotFoundError

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "done", "failed"]


@dataclass
class Job:
    """One background computation; ``done`` / ``total`` counts its forward passes, ``info`` holds
    what the work reports on the way (e.g. the patch sizes of progressive X-Maps done so far)."""

    kind: str
    key: str
    total: int
    result_url: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: Status = "queued"
    done: int = 0
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def advance(self, steps: int) -> None:
        """Progress callback: ``steps`` more units done (capped at the total)."""
        with self._lock:
            self.done = min(self.done + int(steps), self.total)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def to_dict(self) -> dict[str, Any]:
        """What a poll returns."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "progress": self.done / self.total if self.total else (1.0 if self.status == "done" else 0.0),
            "error": self.error,
            "result_url": self.result_url,
            "seconds": (self.finished or time.time()) - self.created,
            "info": dict(self.info),
        }


Work = Callable[[Job], None]


class JobManager:
    """Runs jobs on ``workers`` threads and remembers the last ``keep`` finished ones."""

    def __init__(self, workers: int = 1, keep: int = 500) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xfv-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._active: dict[str, Job] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def submit(self, kind: str, key: str, total: int, result_url: str, work: Work) -> Job:
        """Start ``work`` as a job, or return the queued or running job with the same ``key``."""
        with self._lock:
            running = self._active.get(key)
            if running is not None:
                return running
            job = Job(kind=kind, key=key, total=total, result_url=result_url)
            self._jobs[job.id] = job
            self._active[key] = job
            self._forget_old()
        self._executor.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} (jobs are kept in memory until the server restarts)")
        return job

    def active_job(self, key: str) -> Job | None:
        """The queued or running job computing ``key``, if any."""
        with self._lock:
            return self._active.get(key)

    def shutdown(self) -> None:
        """Stop taking jobs; running ones finish, queued ones are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job, work: Work) -> None:
        job.status = "running"
        try:
            work(job)
        except XfvError as exc:
            self._finish(job, "failed", str(exc))
        except Exception as exc:  # a bug: keep the server up, log it, and tell the poller
            log.exception("job %s (%s) failed", job.id, job.kind)
            self._finish(job, "failed", f"internal error: {type(exc).__name__}: {exc}")
        else:
            job.done = job.total
            self._finish(job, "done", None)

    def _finish(self, job: Job, status: Status, error: str | None) -> None:
        with self._lock:
            job.status, job.error, job.finished = status, error, time.time()
            self._active.pop(job.key, None)

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs beyond ``keep`` (running ones are never dropped)."""
        finished = [job_id for job_id, job in self._jobs.items() if not job.active]
        for job_id in finished[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job_id]
