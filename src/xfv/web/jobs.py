"""Background jobs of the web server: X-Maps computed on request, polled by the pages.

A :class:`JobManager` runs work functions on a small thread pool (one worker by default: the
model already uses every core) and keeps each job's status and progress in the store's
``web_jobs`` table, so any server process (``xfv serve --workers N``) answers a poll. A job is
identified by a key (what it computes): asking again for a job whose key is queued or running,
in this process or another, returns that job instead of starting a second one. At most
``max_active`` jobs are queued or running per store (one server); beyond that :meth:`submit`
raises :class:`TooManyJobsError` (429 with Retry-After). Results are not kept here: the work writes
them to the store, and the job names where to fetch them.

A process heartbeats its jobs; a job whose process stopped (killed, restarted) goes silent and is
marked failed after :data:`STALE_SECONDS`, freeing its key and its place in the queue.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

from xfv.errors import NotFoundError, XfvError
from xfv.pipeline.explain import Explanation
from xfv.store import Store
from xfv.store.arrays import pack_method_maps, xmap_arrays
from xfv.store.models import WebJob, as_utc, utcnow
from xfv.store.web_jobs import (
    active_partial,
    active_web_job,
    add_web_job,
    count_active_web_jobs,
    expire_silent_web_jobs,
    forget_old_web_jobs,
    get_web_job,
    touch_web_jobs,
    update_web_job,
)
from xfv.web.errors import TooManyJobsError

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "done", "failed"]
#: Jobs queued or running at once per server (store); each costs about half a minute of every core.
MAX_ACTIVE = 4
#: Seconds between a process's heartbeats of its jobs, and of silence after which a job is lost.
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60.0
#: Seconds between progress writes of a running job.
PROGRESS_SECONDS = 0.5
#: Seconds a job takes at most, roughly: the Retry-After of a full queue.
RETRY_AFTER = 30


@dataclass
class Job:
    """A running job's handle in its process: counts its forward passes (``done`` of ``total``) and
    reports what it has done so far (:meth:`report`)."""

    id: str
    total: int
    store: Store
    done: int = 0
    _written: float = 0.0

    def advance(self, steps: int) -> None:
        """Progress callback: ``steps`` more units done (written to the store now and then)."""
        self.done = min(self.done + int(steps), self.total)
        now = time.monotonic()
        if now - self._written >= PROGRESS_SECONDS or self.done == self.total:
            self._written = now
            with self.store.transaction() as session:
                update_web_job(session, self.id, done=self.done)

    def report(self, info: dict[str, Any], partial: bytes | None = None) -> None:
        """Publish progress details (``info``), a partial result and the progress so far to every server process."""
        with self.store.transaction() as session:
            update_web_job(session, self.id, info=info, partial=partial, done=self.done)

    def explain_by_level(self, explanations: Iterable[Explanation], patch_sizes: Sequence[int]) -> Explanation:
        """Follow a progressive explanation: after each coarse level publish its maps (the partial
        result, with ``info`` naming ``patch_sizes`` and the sizes done); return the final one."""
        levels = sorted(patch_sizes, reverse=True)
        final: Explanation | None = None
        for final in explanations:
            done = sorted(final.settings.patch_sizes, reverse=True)
            coarse = len(done) < len(levels)
            maps = pack_method_maps({m: xmap_arrays(x) for m, x in final.maps.items()}) if coarse else None
            self.report({"patch_sizes": levels, "patch_sizes_done": done}, maps)
        if final is None:
            raise XfvError("the explanation yielded no maps")
        return final


def job_dict(row: WebJob) -> dict[str, Any]:
    """What a poll returns."""
    created, finished = as_utc(row.created_at), row.finished_at and as_utc(row.finished_at)
    progress = row.done / row.total if row.total else (1.0 if row.status == "done" else 0.0)
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "done": row.done,
        "total": row.total,
        "progress": progress,
        "error": row.error,
        "result_url": row.result_url,
        "seconds": ((finished or utcnow()) - created).total_seconds(),
        "info": dict(row.info or {}),
    }


Work = Callable[[Job], None]


class JobManager:
    """Runs jobs on ``workers`` threads of this process; their state lives in the store."""

    def __init__(self, store: Store, workers: int = 1, max_active: int = MAX_ACTIVE, keep: int = 500) -> None:
        self.store = store
        self.max_active = max_active
        self._keep = keep
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xfv-job")
        self._worker = f"{socket.gethostname()}:{os.getpid()}"[:200]
        self._mine: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="xfv-job-heartbeat", daemon=True)
        self._heartbeat.start()

    def submit(self, kind: str, key: str, total: int, result_url: str, work: Work) -> dict[str, Any]:
        """Start ``work`` as a job, or return the queued or running job with the same ``key``."""
        for _ in range(3):
            try:
                row = self._create(kind, key, total, result_url)
            except IntegrityError:  # another process started the same key just now
                continue
            found, created = row
            if created:
                with self._lock:
                    self._mine.add(found["id"])
                self._executor.submit(self._run, Job(found["id"], total, self.store), work)
            return found
        raise XfvError(f"could not start or find the job {key!r}: retry")

    def _create(self, kind: str, key: str, total: int, result_url: str) -> tuple[dict[str, Any], bool]:
        """The new job (and True), or the active job with ``key`` already there (and False)."""
        with self.store.transaction() as session:
            silent_since = utcnow() - timedelta(seconds=STALE_SECONDS)
            expire_silent_web_jobs(session, silent_since, "the server process running this job stopped: start it again")
            running = active_web_job(session, key)
            if running is not None:
                return job_dict(running), False
            active = count_active_web_jobs(session)
            if active >= self.max_active:
                raise TooManyJobsError(
                    f"the server is computing {active} X-Map jobs already: try again in {RETRY_AFTER} s", RETRY_AFTER
                )
            row = add_web_job(session, uuid.uuid4().hex, kind, key, total, result_url, self._worker)
            forget_old_web_jobs(session, self._keep)
            return job_dict(row), True

    def get(self, job_id: str) -> dict[str, Any]:
        """A job's state for polling (any process's job), or :class:`NotFoundError`."""
        with self.store.sessions() as session:
            row = get_web_job(session, job_id[:32])
            if row is None:
                raise NotFoundError(f"no job {job_id!r} (finished jobs are kept for the newest {self._keep})")
            return job_dict(row)

    def partial(self, key: str) -> bytes | None:
        """The partial result the queued or running job computing ``key`` has reported, if any."""
        with self.store.sessions() as session:
            return active_partial(session, key)

    def active_job(self, key: str) -> dict[str, Any] | None:
        """The queued or running job computing ``key``, if any."""
        with self.store.sessions() as session:
            row = active_web_job(session, key)
            return None if row is None else job_dict(row)

    def shutdown(self) -> None:
        """Stop taking jobs; running ones finish, queued ones are dropped (and fail as stale)."""
        self._stop.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job, work: Work) -> None:
        self._set(job.id, status="running")
        try:
            work(job)
        except XfvError as exc:
            self._finish(job, "failed", str(exc))
        except Exception as exc:  # a bug: keep the server up, log it, and tell the poller
            log.exception("job %s failed", job.id)
            self._finish(job, "failed", f"internal error: {type(exc).__name__}: {exc}")
        else:
            self._finish(job, "done", None)

    def _finish(self, job: Job, status: Status, error: str | None) -> None:
        values: dict[str, Any] = {
            "status": status,
            "error": error,
            "active_key": None,
            "partial": None,
            "finished_at": utcnow(),
        }
        if status == "done":
            values["done"] = job.total
        self._set(job.id, **values)
        with self._lock:
            self._mine.discard(job.id)

    def _set(self, job_id: str, **values: Any) -> None:
        with self.store.transaction() as session:
            update_web_job(session, job_id, **values)

    def _beat(self) -> None:
        """Mark this process's jobs alive every few seconds (queued ones make no progress)."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                mine = list(self._mine)
            if not mine:
                continue
            try:
                with self.store.transaction() as session:
                    touch_web_jobs(session, mine)
            except Exception:  # the store may be closing; the next beat tries again
                log.warning("job heartbeat failed", exc_info=True)
