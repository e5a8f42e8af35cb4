"""What the API's routers share: the error answer and its schema, cache headers, PNG answers, the
state of a background job, and the path and query parameters of images and maps."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from fastapi import Query, Response
from pydantic import BaseModel, Field

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
        description="progress details: for X-Maps of a pair or an upload, patch_sizes and patch_sizes_done (coarse maps to show at once)",
    )


def job_out(job: dict[str, Any] | None) -> JobOut | None:
    return None if job is None else JobOut(**job)


def png_response(data: bytes, headers: dict[str, str]) -> Response:
    return Response(data, media_type="image/png", headers=headers)
