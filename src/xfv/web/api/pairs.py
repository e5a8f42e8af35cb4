"""``/api/pairs``: the pair table, one pair, its neighbours in the table's order, its aligned faces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from xfv.store.pair_table import Neighbours, PairRow
from xfv.store.pairs import PairDetail, get_pair, pair_detail
from xfv.store.reviews import ReviewRecord, pair_reviews
from xfv.web.api.common import IMMUTABLE, PNG, ImageIndex, errors, png_response
from xfv.web.filters import ExplorerQuery
from xfv.web.ids import PairId, RowIndex
from xfv.web.render import png
from xfv.web.services import ServicesDep, SessionDep

router = APIRouter()


class PairListOut(BaseModel):
    """A page of the pair table."""

    total: int
    page: int
    per_page: int
    pages: int
    model: str | None = Field(description="the model whose results the rows' own result fields show")
    models: list[str] = Field(description="the models compared: each row's `results` holds theirs, by name")
    rows: list[PairRow]


class PairOut(BaseModel):
    """One pair with every model's result, its stored X-Maps and its reviews."""

    pair: PairDetail
    reviews: list[ReviewRecord]
    server_setting: str = Field(description="occlusion setting the server computes missing maps with")


@router.get("/pairs", summary="List pairs: filter, sort and page the pair table", responses=errors(400))
def list_pairs(services: ServicesDep, q: Annotated[ExplorerQuery, Query()]) -> PairListOut:
    table = services.tables.current().query(q.pair_query())
    return PairListOut(
        total=table.total,
        page=q.page,
        per_page=q.per_page,
        pages=table.pages,
        model=table.model,
        models=table.models,
        rows=table.rows,
    )


@router.get(
    "/pairs/{pair_id}",
    summary="One pair with its results, stored X-Maps and reviews",
    responses=errors(404),
)
def one_pair(services: ServicesDep, session: SessionDep, pair_id: PairId) -> PairOut:
    return PairOut(
        pair=pair_detail(session, pair_id),
        reviews=pair_reviews(session, pair_id),
        server_setting=services.occlusion.cache_key(),
    )


@router.get(
    "/pairs/{pair_id}/neighbours", summary="Previous and next pair in the explorer's order", responses=errors(400, 404)
)
def get_neighbours(
    services: ServicesDep,
    session: SessionDep,
    pair_id: PairId,
    q: Annotated[ExplorerQuery, Query()],
    index: RowIndex = None,
) -> Neighbours:
    get_pair(session, pair_id)
    return services.tables.current().neighbours(q.pair_query(), pair_id, index)


@router.get(
    "/pairs/{pair_id}/aligned/{image}.png",
    summary="An aligned face of a pair",
    response_class=Response,
    responses=PNG | errors(400, 404),
)
def aligned_face(
    services: ServicesDep, session: SessionDep, pair_id: PairId, image: ImageIndex, model: str
) -> Response:
    pair = get_pair(session, pair_id)
    face = services.pair_maps.aligned_face(session, pair.image1_id if image == 1 else pair.image2_id, model)
    return png_response(png(face), IMMUTABLE)
