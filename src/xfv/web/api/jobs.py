"""``/api/jobs``: poll a background job (X-Maps of a stored pair or of an upload)."""

from __future__ import annotations

from fastapi import APIRouter

from xfv.web.api.common import JobOut, errors
from xfv.web.services import ServicesDep

router = APIRouter()


@router.get("/jobs/{job_id}", summary="Poll a background job", responses=errors(404))
def get_job(services: ServicesDep, job_id: str) -> JobOut:
    return JobOut(**services.jobs.get(job_id))
