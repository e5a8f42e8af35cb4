"""The web server's background jobs (``web_jobs``): status, progress and partial results that every
server process reads. The policy (queue size, heartbeats, threads) is :mod:`xfv.web.jobs`'.

A job's ``active_key`` is its key while it is queued or running and NULL once it has finished; a
unique index on it makes a second active job for the same key impossible, across processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from xfv.store.models import WebJob, utcnow


def add_web_job(session: Session, job_id: str, kind: str, key: str, total: int, result_url: str, worker: str) -> WebJob:
    """A new queued job computing ``key`` (IntegrityError at commit if another is active for it)."""
    row = WebJob(
        id=job_id,
        kind=kind,
        key=key,
        active_key=key,
        status="queued",
        done=0,
        total=total,
        result_url=result_url,
        worker=worker,
    )
    session.add(row)
    session.flush()
    return row


def get_web_job(session: Session, job_id: str) -> WebJob | None:
    """The job with ``job_id`` (any state), if the store still keeps it."""
    return session.get(WebJob, job_id)


def active_web_job(session: Session, key: str) -> WebJob | None:
    """The queued or running job computing ``key``, if any."""
    return session.scalar(select(WebJob).where(WebJob.active_key == key))


def count_active_web_jobs(session: Session) -> int:
    """How many jobs are queued or running."""
    return session.scalar(select(func.count()).select_from(WebJob).where(WebJob.active_key.is_not(None))) or 0


def active_partial(session: Session, key: str) -> bytes | None:
    """The partial result the queued or running job computing ``key`` has reported, if any."""
    return session.scalar(select(WebJob.partial).where(WebJob.active_key == key))


def update_web_job(session: Session, job_id: str, **values: Any) -> None:
    """Set columns of a job (``updated_at`` too: a write is a sign of life)."""
    session.execute(update(WebJob).where(WebJob.id == job_id).values(updated_at=utcnow(), **values))


def touch_web_jobs(session: Session, job_ids: Sequence[str]) -> None:
    """Mark jobs alive (their process heartbeats them while they are queued or running)."""
    session.execute(update(WebJob).where(WebJob.id.in_(job_ids)).values(updated_at=utcnow()))


def expire_silent_web_jobs(session: Session, silent_since: datetime, error: str) -> None:
    """Fail the active jobs not heard of since ``silent_since`` (their process stopped), freeing their keys."""
    session.execute(
        update(WebJob)
        .where(WebJob.active_key.is_not(None), WebJob.updated_at < silent_since)
        .values(status="failed", active_key=None, error=error, finished_at=utcnow())
    )


def forget_old_web_jobs(session: Session, keep: int) -> None:
    """Drop the oldest finished jobs beyond the newest ``keep`` (active ones are never dropped)."""
    cutoff = session.scalar(
        select(WebJob.created_at)
        .where(WebJob.active_key.is_(None))
        .order_by(WebJob.created_at.desc())
        .offset(keep)
        .limit(1)
    )
    if cutoff is not None:
        session.execute(delete(WebJob).where(WebJob.active_key.is_(None), WebJob.created_at <= cutoff))
