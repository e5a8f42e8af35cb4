"""``/api/stats``, ``/api/models`` and ``/api/methods``: what the store holds and what the server
offers (models and X-Map methods come from their registries)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from xfv.method.xmaps import XMAP_METHODS
from xfv.store.catalog import model_names
from xfv.store.overview import Overview, overview
from xfv.web.services import ServicesDep, SessionDep

router = APIRouter()


class ModelsOut(BaseModel):
    stored: list[str] = Field(description="models with results in the store")
    upload: list[str] = Field(description="models a visitor may choose for their own pair")
    default: str
    occlusion: dict[str, Any] = Field(description="the server's occlusion setting for new X-Maps")


class MethodOut(BaseModel):
    """A registered X-Map method."""

    number: int
    roman: str = Field(description="the number as the paper writes it (I, II, III)")
    name: str
    description: str


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


@router.get("/methods", summary="The X-Map methods: number, name and what each shows")
def methods() -> list[MethodOut]:
    return [
        MethodOut(number=m.number, roman=m.roman, name=m.name, description=m.description) for m in XMAP_METHODS.values()
    ]
