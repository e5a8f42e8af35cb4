"""The HTML pages: server-rendered with Jinja2, made interactive by plain JavaScript on the API.

The explorer is rendered entirely on the server (its state is the URL, so it works without
JavaScript and a view can be shared); the viewer, the explain page and the review queue load
their pictures and run their jobs through the REST API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from xfv.store.catalog import dataset_names, model_names
from xfv.store.overview import overview
from xfv.store.pair_table import PairQuery
from xfv.store.pairs import pair_detail
from xfv.store.reviews import pair_reviews, review_queue
from xfv.web.filters import PAGE_SIZES, ExplorerQuery, Name
from xfv.web.ids import PairId, RowIndex
from xfv.web.services import ServicesDep, SessionDep
from xfv.web.table_rows import RESULT_COLUMNS, explorer_rows
from xfv.web.templating import templates

router = APIRouter(include_in_schema=False)

#: The explorer's columns of a pair: (sort key, heading, tooltip).
COLUMNS = (
    ("position", "#", "position in the protocol file"),
    ("identity1", "Pair", "the two images and their people"),
    ("dataset", "Dataset", ""),
    ("fold", "Fold", "cross-validation fold"),
    ("label", "Label", "ground truth: same person or not"),
    ("quality1", "Q1", "image quality of the first image, 0 to 1"),
    ("quality2", "Q2", "image quality of the second image, 0 to 1"),
)


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, template, context)


@router.get("/", response_class=HTMLResponse)
def landing(request: Request, services: ServicesDep, session: SessionDep) -> HTMLResponse:
    info = overview(session)
    example = pair_detail(session, info.example_pair) if info.example_pair is not None else None
    return _page(
        request,
        "landing.html",
        overview=info,
        example=example,
        example_model=info.example_model,
        occlusion=services.occlusion,
    )


@router.get("/explorer", response_class=HTMLResponse)
def explorer(request: Request, services: ServicesDep) -> HTMLResponse:
    """The pair table; its many parameters read in one validation (not FastAPI's one per parameter:
    a page, not part of the API schema)."""
    q = ExplorerQuery.from_params(request.query_params)
    table = services.tables.current()
    page, pair_ids = table.page_ids(q.pair_query())
    return _page(
        request,
        "explorer.html",
        page=page,
        rows=explorer_rows(table, page, pair_ids, q),
        q=q,
        datasets=table.datasets,
        models=table.models,
        columns=COLUMNS,
        result_columns=RESULT_COLUMNS,
        page_sizes=PAGE_SIZES,
    )


@router.get("/pairs/{pair_id}", response_class=HTMLResponse)
def viewer(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    pair_id: PairId,
    q: Annotated[ExplorerQuery, Query()],
    i: RowIndex = None,
    compare: Annotated[Name | None, Query(description="the model shown beside the table's model")] = None,
) -> HTMLResponse:
    detail = pair_detail(session, pair_id)
    table = services.tables.current()
    view = q.pair_query()
    around = table.neighbours(view, pair_id, i)
    models = list(dict.fromkeys([r.model for r in detail.results] + [m.model for m in detail.xmaps]))
    table_model = view.model or (view.models[0] if view.models else table.default_model(None))
    model = table_model if table_model in models else (models[0] if models else None)
    other = next((name for name in _beside(view, compare, models) if name in models and name != model), None)

    def link(target: int | None, index: int | None) -> str | None:
        return None if target is None else q.url(f"/pairs/{target}", extra={"i": index}, page=1)

    index = around.index
    back_page = index // q.per_page + 1 if index is not None else q.page
    return _page(
        request,
        "viewer.html",
        pair=detail,
        reviews=pair_reviews(session, pair_id),
        around=around,
        previous_url=link(around.previous, index - 1 if index is not None else None),
        next_url=link(around.next, index + 1 if index is not None else None),
        back_url=q.url("/explorer", page=back_page),
        models=models,
        model=model,
        other=other,
        occlusion=services.occlusion,
    )


def _beside(view: PairQuery, compare: str | None, models: list[str]) -> list[str]:
    """The models to show beside the table's, first that the pair has: the one asked for, else,
    where the table compares models (several listed, or filtered on their agreement), the others."""
    if compare:
        return [compare]
    if view.agreement is not None or len(view.models or ()) > 1:
        return [*(view.models or ()), *models]
    return []


@router.get("/explain", response_class=HTMLResponse)
def explain(request: Request, services: ServicesDep, session: SessionDep) -> HTMLResponse:
    return _page(
        request,
        "explain.html",
        models=services.uploads.allowed_models(session),
        default_model=services.default_model,
        max_upload_mb=services.max_upload_bytes / 1e6,
        occlusion=services.occlusion,
    )


@router.get("/review", response_class=HTMLResponse)
def review(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    max_cscore: Annotated[float, Query(ge=0.0, le=1.0)] = 0.75,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    q = ExplorerQuery(dataset=dataset or None, model=model or None, page=page, per_page=10)
    queue = review_queue(
        session, max_cscore, dataset=q.dataset, model=q.model, page=q.page, per_page=q.per_page, tables=services.tables
    )
    return _page(request, "review.html", queue=queue, q=q, datasets=dataset_names(session), models=model_names(session))


@router.get("/api", response_class=HTMLResponse)
def api_page(request: Request) -> HTMLResponse:
    schema = request.app.openapi()
    endpoints = [
        (method.upper(), path, operation.get("summary", ""))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]
    return _page(request, "api.html", endpoints=endpoints)
