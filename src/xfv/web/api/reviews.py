"""``/api/reviews``: the review queue (the pairs a model is least sure of) and reviewers' verdicts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from xfv.store.pairs import get_pair
from xfv.store.reviews import QueueItem, ReviewRecord, Verdict, add_review, pair_reviews, review_queue
from xfv.web.api.common import WRITE, errors
from xfv.web.ids import PairId, PairIdField
from xfv.web.services import ServicesDep, SessionDep

router = APIRouter()


class ReviewIn(BaseModel):
    """A reviewer's verdict on a model's decision for a pair."""

    pair_id: PairIdField
    model: str = Field(max_length=200)
    verdict: Verdict
    comment: str = Field(default="", max_length=2000)
    reviewer: str = Field(default="", max_length=100)


class QueueOut(BaseModel):
    """A page of the review queue: a model's pairs with C-Score <= ``max_cscore``, lowest first."""

    model: str | None
    max_cscore: float
    total: int
    page: int
    pages: int
    items: list[QueueItem]


@router.get("/reviews", summary="The review queue: pairs the model is least sure of", responses=errors(400))
def get_queue(
    services: ServicesDep,
    session: SessionDep,
    max_cscore: Annotated[float, Query(ge=0.0, le=1.0)] = 0.75,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 10,
) -> QueueOut:
    queue = review_queue(
        session,
        max_cscore,
        dataset=dataset or None,
        model=model or None,
        page=page,
        per_page=per_page,
        tables=services.tables,
    )
    table = queue.page
    return QueueOut(
        model=table.model, max_cscore=max_cscore, total=table.total, page=page, pages=table.pages, items=queue.items
    )


@router.post(
    "/reviews",
    summary="Record agree/disagree with a model's decision",
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 404, *WRITE),
)
def post_review(services: ServicesDep, review: ReviewIn) -> ReviewRecord:
    with services.store.transaction() as session:
        return add_review(session, review.pair_id, review.model, review.verdict, review.comment, review.reviewer)


@router.get("/pairs/{pair_id}/reviews", summary="A pair's reviews, newest first", responses=errors(404))
def get_pair_reviews(session: SessionDep, pair_id: PairId) -> list[ReviewRecord]:
    get_pair(session, pair_id)
    return pair_reviews(session, pair_id)
