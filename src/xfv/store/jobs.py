"""Jobs and their chunks: what makes batch compute resumable and free of duplicates.

A job is found again by its key (a hash of what the command computes), so rerunning the same
command after a crash resumes it. Its plan, the chunks and the pairs each covers, is written once
when the job is created. :func:`claim_finished_chunk` marks a chunk done inside the transaction
that writes the chunk's results: both land together or neither does, and a chunk already marked
done (by an earlier run, or another process racing on the same job) makes the caller roll back
instead of writing its results twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from xfv.store.models import Dataset, Job, JobChunk, Model, utcnow

#: A job's life: created, its chunks running, all chunks done and the final step running, done;
#: or failed (the error says why; rerunning the command resumes it).
STATUSES = ("pending", "running", "finishing", "done", "failed")


def job_key(kind: str, **identity: Any) -> str:
    """A stable key for the job computing ``kind`` for ``identity`` (JSON values)."""
    text = json.dumps({"kind": kind, **identity}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def find_or_create_job(
    session: Session,
    key: str,
    kind: str,
    dataset: Dataset,
    model: Model,
    params: dict[str, Any],
    chunks: Sequence[Sequence[int]],
) -> Job:
    """The job with ``key``; a new one gets ``chunks`` (lists of pair ids) as its plan. An existing
    job keeps its own plan, so a rerun with another chunk size still resumes where it stopped."""
    job = session.scalar(select(Job).where(Job.key == key))
    if job is not None:
        return job
    job = Job(
        key=key,
        kind=kind,
        dataset_id=dataset.id,
        model_id=model.id,
        params=params,
        status="pending",
        total_items=sum(len(chunk) for chunk in chunks),
        done_items=0,
    )
    session.add(job)
    session.flush()
    session.add_all(
        JobChunk(job_id=job.id, position=i, pair_ids=[int(p) for p in chunk]) for i, chunk in enumerate(chunks)
    )
    session.flush()
    return job


def pending_chunks(session: Session, job: Job) -> list[JobChunk]:
    """The chunks of ``job`` whose results are not committed yet, in plan order."""
    query = select(JobChunk).where(JobChunk.job_id == job.id, JobChunk.done.is_(False)).order_by(JobChunk.position)
    return list(session.scalars(query))


def claim_finished_chunk(session: Session, chunk: JobChunk, worker: str, seconds: float) -> bool:
    """Mark ``chunk`` done and count its items in its job; False if it was done already, in which
    case the caller must not write the chunk's results."""
    now = utcnow()
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]  # an UPDATE gives a cursor result
        update(JobChunk)
        .where(JobChunk.job_id == chunk.job_id, JobChunk.position == chunk.position, JobChunk.done.is_(False))
        .values(done=True, worker=worker[:200], seconds=seconds, finished_at=now)
    )
    if not claimed.rowcount:
        return False
    session.execute(
        update(Job)
        .where(Job.id == chunk.job_id)
        .values(done_items=Job.done_items + len(chunk.pair_ids), updated_at=now, status="running")
    )
    return True


def set_status(session: Session, job: Job, status: str, error: str | None = None) -> None:
    """Move ``job`` to ``status`` (one of :data:`STATUSES`), recording an error or the finish time."""
    assert status in STATUSES, status
    values: dict[str, Any] = {"status": status, "error": error, "updated_at": utcnow()}
    if status == "done":
        values["finished_at"] = values["updated_at"]
    session.execute(update(Job).where(Job.id == job.id).values(**values))
    job.status = status
    job.error = error


def set_params(session: Session, job: Job, params: dict[str, Any]) -> None:
    """Replace the recorded parameters of ``job`` (e.g. the C-Score options its scores used)."""
    session.execute(update(Job).where(Job.id == job.id).values(params=params, updated_at=utcnow()))
    job.params = params


def list_jobs(session: Session, dataset: Dataset | None = None, limit: int = 50) -> list[Job]:
    """The newest jobs first (of one dataset, or all)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if dataset is not None:
        query = query.where(Job.dataset_id == dataset.id)
    return list(session.scalars(query))
