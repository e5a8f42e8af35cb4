"""The review queue (the paper's future work): humans check the decisions the C-Score doubts.

The queue lists a model's pairs whose C-Score is at most a chosen value, least confident first;
a reviewer records whether they agree with the model's decision, with a comment. Reviews live in
the table ``web_reviews``, which belongs to the web layer: it has its own metadata (so the store's
Alembic migrations and their schema check are untouched) and is created when the app starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from sqlalchemy import DateTime, Engine, ForeignKey, Index, Integer, MetaData, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from xfv.store.models import Model, Pair, PairResult
from xfv.store.repository import find_model
from xfv.web.errors import NotFoundError
from xfv.web.filters import ExplorerQuery
from xfv.web.queries import ExplorerPage, ExplorerRow, default_model, explorer_page

Verdict = Literal["agree", "disagree"]


class WebBase(DeclarativeBase):
    """Tables of the web layer, kept out of the store's migrated metadata."""

    metadata = MetaData()


class Review(WebBase):
    """One reviewer's verdict on a model's decision for a pair."""

    __tablename__ = "web_reviews"
    __table_args__ = (Index("ix_web_reviews_model_pair", "model_id", "pair_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(Integer, ForeignKey(Pair.__table__.c.id, ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey(Model.__table__.c.id, ondelete="CASCADE"))
    verdict: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(timezone.utc))


def create_tables(engine: Engine) -> None:
    """Create the web layer's tables if missing (the store's own tables must exist already)."""
    WebBase.metadata.create_all(engine, checkfirst=True)


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
        review.id, review.pair_id, model, review.verdict, review.comment, review.reviewer, review.created_at
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

    row: ExplorerRow
    latest: ReviewRecord | None
    reviews: int


@dataclass(frozen=True)
class ReviewQueue:
    """A page of the queue: the doubtful pairs of one model, least confident first."""

    page: ExplorerPage
    items: list[QueueItem]
    max_cscore: float


def review_queue(session: Session, max_cscore: float, query: ExplorerQuery) -> ReviewQueue:
    """Pairs of ``query``'s model (and dataset) with C-Score <= ``max_cscore``, lowest first
    (an empty queue while no model has results)."""
    if query.model is None and default_model(session, None) is None:
        return ReviewQueue(ExplorerPage([], 0, query, None, 0), [], max_cscore)
    queue_query = query.model_copy(
        update={"cscore_max": max_cscore, "cscore_min": None, "sort": "cscore", "order": "asc"}
    )
    page = explorer_page(session, queue_query)
    model = find_model(session, page.model or "")
    pair_ids = [row.pair_id for row in page.rows]
    reviews = session.scalars(
        select(Review).where(Review.model_id == model.id, Review.pair_id.in_(pair_ids)).order_by(Review.id)
    )
    latest: dict[int, ReviewRecord] = {}
    counts: dict[int, int] = {}
    for review in reviews:
        latest[review.pair_id] = _record(review, model.name)
        counts[review.pair_id] = counts.get(review.pair_id, 0) + 1
    items = [QueueItem(row, latest.get(row.pair_id), counts.get(row.pair_id, 0)) for row in page.rows]
    return ReviewQueue(page, items, max_cscore)
