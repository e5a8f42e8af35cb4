"""``/api/stats`` and ``/api/models``: what the store holds and what the server offers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from xfv.store.catalog import model_names
from xfv.store.overview import Overview, overview
from xfv.web.services import ServicesDep, SessionDep

router = APIRouter()


class ModelsOut(BaseModel):
    stored: list[str] = Field(description="models with results in the store")
    upload: list[str] = Field(description="models a visitor may choose for their own pair")
    default: str
    occlusion: dict[str, Any] = Field(description="the server's occlusion setting for new X-Maps")


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
