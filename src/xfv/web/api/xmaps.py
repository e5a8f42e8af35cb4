"""``/api/pairs/{pair_id}/xmaps``: a stored pair's X-Maps as pictures or raw arrays, and the job
that computes those not stored yet."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from xfv.web.api.common import IMMUTABLE, PNG, SHORT, WRITE, ImageIndex, JobOut, Patch, errors, job_out, png_response
from xfv.web.ids import MethodNumber, PairId
from xfv.web.render import Display
from xfv.web.services import ServicesDep, SessionDep

router = APIRouter()


class ComputeOut(BaseModel):
    """The answer to a compute request: the job computing the maps, or none when they are stored."""

    status: Literal["stored", "started"]
    job: JobOut | None = None


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
    return png_response(data, IMMUTABLE if setting else SHORT)


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
    maps = services.pair_maps.raw_maps(session, pair_id, model, method, setting)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **maps)  # type: ignore[arg-type]  # numpy's stub
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
    return ComputeOut(status="started", job=job_out(job))
