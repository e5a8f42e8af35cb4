"""The REST API under ``/api``; the pages call these same endpoints (OpenAPI docs at ``/docs``).

Every user mistake answers 4xx with ``{"detail": message}``: unknown pair, image, job or upload
404; bad filter values 422 (or 400 for an unknown dataset or model name); an oversized upload 413;
a non-image 415; a photo without a face 422.
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from xfv.faces import FaceChoice, load_image, parse_face_choice
from xfv.store.repository import Neighbours, PairRow, pair_neighbours, query_pairs
from xfv.web.filters import ExplorerQuery
from xfv.web.ids import ImageId, MethodNumber, PairId, PairIdField, RowIndex
from xfv.web.queries import Overview, PairDetail, get_pair, image_file, model_names, overview, pair_detail
from xfv.web.render import Display, jpeg, png, thumbnail
from xfv.web.reviews import QueueItem, ReviewRecord, Verdict, add_review, pair_reviews, review_queue
from xfv.web.services import ServicesDep, SessionDep

PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
#: Patch size of a map: ``merged`` (the X-Map) or one patch size in pixels of the 112x112 face.
Patch = Annotated[str, Query(pattern=r"^(merged|[0-9]{1,3})$", description="merged, or a patch size such as 7, 14, 28")]
ImageIndex = Annotated[int, PathParam(ge=1, le=2, description="1 or 2: which image of the pair")]
IMMUTABLE = {"Cache-Control": "public, max-age=86400"}
#: A map asked for without its occlusion setting may resolve to another setting once more are stored.
SHORT = {"Cache-Control": "public, max-age=60"}
PRIVATE = {"Cache-Control": "private, max-age=3600"}


class ErrorOut(BaseModel):
    """Every error: one message saying what is wrong."""

    detail: str


#: What each error status means, for the schema.
ERROR_MEANINGS = {
    400: "an unknown dataset or model name",
    403: "a state-changing request from another site's page",
    404: "no such pair, image, map, upload or job",
    413: "a request body or photo over the limit, or an image of too many pixels",
    415: "an upload that is not an image",
    422: "invalid input",
    429: "the job queue is full: ask again after Retry-After seconds",
}


def errors(*statuses: int, ok: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The schema's entries for these error statuses (429 with its Retry-After header), after
    ``ok``, the 200 answer's entry where it differs from the declared response model."""
    found: dict[int | str, dict[str, Any]] = {200: ok} if ok is not None else {}
    for code in statuses:
        found[code] = {"model": ErrorOut, "description": ERROR_MEANINGS[code]}
        if code == 429:
            seconds = {"description": "seconds to wait", "schema": {"type": "integer"}}
            found[code]["headers"] = {"Retry-After": seconds}
    return found


#: Every state-changing request may be refused as foreign (403) or too large (413).
WRITE = (403, 413)
router = APIRouter(prefix="/api", tags=["api"], responses=errors(422))


class PairListOut(BaseModel):
    """A page of the pair table."""

    total: int
    page: int
    per_page: int
    pages: int
    model: str | None = Field(description="the model whose results the rows show")
    rows: list[PairRow]


class PairOut(BaseModel):
    """One pair with every model's result, its stored X-Maps and its reviews."""

    pair: PairDetail
    reviews: list[ReviewRecord]
    server_setting: str = Field(description="occlusion setting the server computes missing maps with")


class JobOut(BaseModel):
    """A background job's state; poll until ``status`` is done or failed, then fetch ``result_url``."""

    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    done: int
    total: int
    progress: float
    error: str | None
    result_url: str
    seconds: float
    info: dict[str, Any] = Field(
        default_factory=dict,
        description="progress details: for pair X-Maps, patch_sizes and patch_sizes_done (coarse maps to show at once)",
    )


class ComputeOut(BaseModel):
    """The answer to a compute request: the job computing the maps, or none when they are stored."""

    status: Literal["stored", "started"]
    job: JobOut | None = None


class PhotoOut(BaseModel):
    name: str
    width: int
    height: int
    detected: bool
    box: list[int] | None
    faces_found: int = Field(description="faces detected in the photo, numbered 1, 2, ... from the left")
    face: int | None = Field(description="the number of the face used (None: LFW's known box stood in)")
    boxes: list[list[int]] = Field(description="every detected face box (left, top, right, bottom), in face-number order")
    reason: str = Field(description="why this face was used (largest, most central, as asked)")
    choice: str = Field(description="what was asked for: auto, largest, central or a face number")
    face_width: int = Field(description="the face box's width in pixels")
    yaw: float | None = Field(description="estimated yaw in degrees (turned sideways)")
    roll: float | None = Field(description="roll in degrees (tilted)")
    warnings: list[str] = Field(description="problems with the face used: small, cut off, turned or tilted")
    landmarks: list[list[float]]
    photo_url: str
    aligned_url: str


class UploadOut(BaseModel):
    """The verification of an uploaded pair (and whether its X-Maps are ready)."""

    id: str
    model: str
    distance: float
    threshold: float
    threshold_source: str
    decision: str
    same: bool
    cscore: float | None
    xmaps_ready: bool
    photos: list[PhotoOut]
    job: JobOut | None = None


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


class ModelsOut(BaseModel):
    stored: list[str] = Field(description="models with results in the store")
    upload: list[str] = Field(description="models a visitor may choose for their own pair")
    default: str
    occlusion: dict[str, Any] = Field(description="the server's occlusion setting for new X-Maps")


def _job(job: dict[str, Any] | None) -> JobOut | None:
    return None if job is None else JobOut(**job)


def _png(data: bytes, headers: dict[str, str]) -> Response:
    return Response(data, media_type="image/png", headers=headers)


# --- the store --------------------------------------------------------------------------------------


@router.get("/stats", summary="What the store holds: datasets, models, accuracy per dataset x model")
def stats(session: SessionDep) -> Overview:
    return overview(session)


@router.get("/models", summary="Models with stored results, models for uploads, the X-Map setting")
def models(services: ServicesDep, session: SessionDep) -> ModelsOut:
    settings = services.occlusion
    return ModelsOut(
        stored=model_names(session),
        upload=services.uploads.allowed_models(session),
        default=services.default_model,
        occlusion={
            "key": settings.cache_key(),
            "patch_sizes": list(settings.patch_sizes),
            "stride": settings.stride,
            "occlusions": settings.count,
        },
    )


@router.get("/pairs", summary="List pairs: filter, sort and page the pair table", responses=errors(400))
def list_pairs(session: SessionDep, q: Annotated[ExplorerQuery, Query()]) -> PairListOut:
    table = query_pairs(session, q.pair_query())
    return PairListOut(
        total=table.total, page=q.page, per_page=q.per_page, pages=table.pages, model=table.model, rows=table.rows
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
    session: SessionDep,
    pair_id: PairId,
    q: Annotated[ExplorerQuery, Query()],
    index: RowIndex = None,
) -> Neighbours:
    pair_detail(session, pair_id)
    return pair_neighbours(session, q.pair_query(), pair_id, index)


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
    return _png(png(face), IMMUTABLE)


@router.get(
    "/pairs/{pair_id}/xmaps/{model}/{method}/{image}.png",
    summary="An X-Map of a pair as PNG",
    response_class=Response,
    responses=PNG | errors(404),
)
def pair_xmap(
    services: ServicesDep,
    session: SessionDep,
    pair_id: PairId,
    model: str,
    method: MethodNumber,
    image: ImageIndex,
    patch: Patch = "merged",
    display: Display = "blend",
    setting: str | None = None,
) -> Response:
    data = services.pair_maps.map_png(session, pair_id, model, method, image, patch, display, setting)
    return _png(data, IMMUTABLE if setting else SHORT)


@router.get(
    "/pairs/{pair_id}/xmaps/{model}/{method}/raw",
    summary="Raw maps of a pair (float32 .npz: image{1,2}_p{size} per patch size, image{1,2}_merged)",
    response_class=Response,
    responses=errors(404, ok={"content": {"application/octet-stream": {}}}),
)
def pair_xmap_raw(
    services: ServicesDep,
    session: SessionDep,
    pair_id: PairId,
    model: str,
    method: MethodNumber,
    setting: str | None = None,
) -> Response:
    key = services.pair_maps.setting_for(session, pair_id, model, setting)
    buffer = io.BytesIO()
    maps: dict[str, Any] = services.pair_maps.maps(session, pair_id, model, method, key)
    np.savez_compressed(buffer, **maps)
    name = f"pair{pair_id}_{model}_method{method}.npz"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', **SHORT}
    return Response(buffer.getvalue(), media_type="application/octet-stream", headers=headers)


@router.post(
    "/pairs/{pair_id}/xmaps/{model}",
    summary="Compute a pair's missing X-Maps in the background",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 404, 429, *WRITE, ok={"model": ComputeOut, "description": "already stored"}),
)
def compute_pair_xmaps(
    services: ServicesDep, session: SessionDep, response: Response, pair_id: PairId, model: str
) -> ComputeOut:
    job = services.pair_maps.start(session, pair_id, model)
    if job is None:
        response.status_code = status.HTTP_200_OK
        return ComputeOut(status="stored")
    return ComputeOut(status="started", job=_job(job))


@router.get(
    "/images/{image_id}",
    summary="A registered image, or its thumbnail",
    response_class=Response,
    responses=errors(404, ok={"content": {"image/jpeg": {}}}),
)
def get_image(
    services: ServicesDep,
    session: SessionDep,
    request: Request,
    image_id: ImageId,
    size: Annotated[int | None, Query(ge=16, le=1024, description="longer side of a thumbnail")] = None,
) -> Response:
    file = image_file(session, image_id)
    etag = f'"{file.content_hash[:24]}-{size or "full"}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    headers = {**IMMUTABLE, "ETag": etag}
    if size is None:
        return FileResponse(file.path, headers=headers)
    data = services.thumbnails.get_or_make((image_id, size), lambda: jpeg(thumbnail(load_image(file.path), size)))
    return Response(data, media_type="image/jpeg", headers=headers)


# --- your own pair ----------------------------------------------------------------------------------

UploadedPhoto = Annotated[UploadFile, File(description="a photo with a face (JPEG, PNG, WebP, BMP, GIF or TIFF)")]
FaceField = Annotated[
    str, Form(description="which face of the photo: a number (1 = leftmost), largest, central or auto (default)")
]


def _files(*uploads: UploadFile) -> list[tuple[str, bytes]]:
    return [(upload.filename or f"photo {index}", upload.file.read()) for index, upload in enumerate(uploads, start=1)]


def _faces(face1: str, face2: str) -> tuple[FaceChoice, FaceChoice]:
    return parse_face_choice(face1), parse_face_choice(face2)


def _upload_out(upload: Any, job: dict[str, Any] | None = None) -> UploadOut:
    return UploadOut(**upload.summary(), job=_job(job))


@router.post(
    "/verify",
    summary="Verify two photos: faces, distance, decision, C-Score",
    responses=errors(400, 415, *WRITE),
)
def verify(
    services: ServicesDep,
    session: SessionDep,
    image1: UploadedPhoto,
    image2: UploadedPhoto,
    model: Annotated[str | None, Form()] = None,
    face1: FaceField = "auto",
    face2: FaceField = "auto",
) -> UploadOut:
    faces = _faces(face1, face2)
    upload = services.uploads.create(session, _files(image1, image2), model or services.default_model, faces)
    return _upload_out(upload)


@router.post(
    "/explain",
    summary="Start an explain job: verify two photos now, compute their X-Maps in the background",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 415, 429, *WRITE),
)
def explain(
    services: ServicesDep,
    session: SessionDep,
    image1: UploadedPhoto,
    image2: UploadedPhoto,
    model: Annotated[str | None, Form()] = None,
    face1: FaceField = "auto",
    face2: FaceField = "auto",
) -> UploadOut:
    faces = _faces(face1, face2)
    upload = services.uploads.create(session, _files(image1, image2), model or services.default_model, faces)
    return _upload_out(upload, services.uploads.start_xmaps(upload))


@router.get(
    "/uploads/{upload_id}",
    summary="An uploaded pair's verification and X-Map status",
    responses=errors(404),
)
def get_upload(services: ServicesDep, upload_id: str) -> UploadOut:
    upload = services.uploads.get(upload_id)
    return _upload_out(upload, services.jobs.active_job(f"upload:{upload.id}"))


@router.get(
    "/uploads/{upload_id}/photo/{image}.png",
    summary="An uploaded photo with the face found",
    response_class=Response,
    responses=PNG | errors(404),
)
def upload_photo(services: ServicesDep, upload_id: str, image: ImageIndex) -> Response:
    return _png(services.uploads.photo_png(services.uploads.get(upload_id), image), PRIVATE)


@router.get(
    "/uploads/{upload_id}/aligned/{image}.png",
    summary="An uploaded photo's aligned face",
    response_class=Response,
    responses=PNG | errors(404),
)
def upload_aligned(services: ServicesDep, upload_id: str, image: ImageIndex) -> Response:
    return _png(services.uploads.aligned_png(services.uploads.get(upload_id), image), PRIVATE)


@router.get(
    "/uploads/{upload_id}/xmaps/{method}/{image}.png",
    summary="An X-Map of an uploaded pair",
    response_class=Response,
    responses=PNG | errors(404),
)
def upload_xmap(
    services: ServicesDep,
    upload_id: str,
    method: MethodNumber,
    image: ImageIndex,
    patch: Patch = "merged",
    display: Display = "blend",
) -> Response:
    return _png(services.uploads.map_png(services.uploads.get(upload_id), method, image, patch, display), PRIVATE)


@router.get("/jobs/{job_id}", summary="Poll a background job", responses=errors(404))
def get_job(services: ServicesDep, job_id: str) -> JobOut:
    return JobOut(**services.jobs.get(job_id))


# --- reviews ----------------------------------------------------------------------------------------


@router.get("/reviews", summary="The review queue: pairs the model is least sure of", responses=errors(400))
def get_queue(
    session: SessionDep,
    max_cscore: Annotated[float, Query(ge=0.0, le=1.0)] = 0.75,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 10,
) -> QueueOut:
    queue = review_queue(
        session, max_cscore, dataset=dataset or None, model=model or None, page=page, per_page=per_page
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
    pair_detail(session, pair_id)
    return pair_reviews(session, pair_id)
