"""The review queue (the paper's future work): humans check the decisions the C-Score doubts.

The queue lists a model's pairs whose C-Score is at most a chosen value, least confident first;
a reviewer records whether they agree with the model's decision, with a comment. Reviews live in
the ``reviews`` table (:class:`xfv.store.models.Review`); the web platform's review queue shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from xfv.errors import NotFoundError
from xfv.store.catalog import default_model, find_model
from xfv.store.models import Model, Pair, PairResult, Review, as_utc
from xfv.store.pair_table import PairPage, PairQuery, PairRow, PairTables, query_pairs

Verdict = Literal["agree", "disagree"]


@dataclass(frozen=True)
class ReviewRecord:
    """A stored review, as the API returns it."""

    id: int
    pair_id: int
    model: str
    verdict: str
    comment: str
    reviewer: str
    created_at: datetime


def add_review(
    session: Session, pair_id: int, model_name: str, verdict: Verdict, comment: str, reviewer: str
) -> ReviewRecord:
    """Record a verdict on ``model_name``'s decision for a pair that has a result of that model."""
    model = find_model(session, model_name)
    if session.get(PairResult, (pair_id, model.id)) is None:
        if session.get(Pair, pair_id) is None:
            raise NotFoundError(f"no pair with id {pair_id} in the store")
        raise NotFoundError(f"pair {pair_id} has no result of model {model_name!r} to review")
    review = Review(
        pair_id=pair_id, model_id=model.id, verdict=verdict, comment=comment.strip(), reviewer=reviewer.strip()
    )
    session.add(review)
    session.flush()
    return _record(review, model.name)


def _record(review: Review, model: str) -> ReviewRecord:
    return ReviewRecord(
        review.id, review.pair_id, model, review.verdict, review.comment, review.reviewer, as_utc(review.created_at)
    )


def pair_reviews(session: Session, pair_id: int) -> list[ReviewRecord]:
    """Every review of a pair, newest first."""
    query = (
        select(Review, Model.name)
        .join(Model, Model.id == Review.model_id)
        .where(Review.pair_id == pair_id)
        .order_by(Review.id.desc())
    )
    return [_record(review, model) for review, model in session.execute(query)]


@dataclass(frozen=True)
class QueueItem:
    """A pair of the queue with its latest review of this model, if any."""

    row: PairRow
    latest: ReviewRecord | None
    reviews: int


@dataclass(frozen=True)
class ReviewQueue:
    """A page of the queue: the doubtful pairs of one model, least confident first."""

    page: PairPage
    items: list[QueueItem]
    max_cscore: float


def review_queue(
    session: Session,
    max_cscore: float,
    *,
    dataset: str | None = None,
    model: str | None = None,
    page: int = 1,
    per_page: int = 10,
    tables: PairTables | None = None,
) -> ReviewQueue:
    """Pairs of ``model`` (default: the first with results) on ``dataset`` (default: all) with
    C-Score <= ``max_cscore``, lowest first (an empty queue while no model has results); the pair
    table is read from ``tables`` if given (see :func:`~xfv.store.pair_table.query_pairs`)."""
    if model is None and default_model(session, None) is None:
        return ReviewQueue(PairPage([], 0, page, per_page, None), [], max_cscore)
    query = PairQuery(
        dataset=dataset, model=model, models=(), max_cscore=max_cscore, sort="cscore", page=page, per_page=per_page
    )
    table = query_pairs(session, query, tables)
    shown = find_model(session, table.model or "")
    pair_ids = [row.pair_id for row in table.rows]
    reviews = session.scalars(
        select(Review).where(Review.model_id == shown.id, Review.pair_id.in_(pair_ids)).order_by(Review.id)
    )
    latest: dict[int, ReviewRecord] = {}
    counts: dict[int, int] = {}
    for review in reviews:
        latest[review.pair_id] = _record(review, shown.name)
        counts[review.pair_id] = counts.get(review.pair_id, 0) + 1
    items = [QueueItem(row, latest.get(row.pair_id), counts.get(row.pair_id, 0)) for row in table.rows]
    return ReviewQueue(table, items, max_cscore)
