"""What every request handler needs, built once per app: the store, jobs, X-Maps and uploads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from xfv.config import Settings
from xfv.method.occlusion import OcclusionSettings
from xfv.store import Store
from xfv.store.pair_table import PairTables
from xfv.web.jobs import JobManager
from xfv.web.lru import LRU
from xfv.web.pairmaps import PairMaps
from xfv.web.uploads import Uploads


@dataclass
class Services:
    """The app's long-lived parts (one per app, kept on ``app.state.services``)."""

    store: Store
    jobs: JobManager
    pair_maps: PairMaps
    uploads: Uploads
    thumbnails: LRU[tuple[int, int], bytes]
    tables: PairTables
    occlusion: OcclusionSettings
    default_model: str
    max_upload_bytes: int

    @classmethod
    def build(cls, store: Store, occlusion: OcclusionSettings, settings: Settings) -> Services:
        jobs = JobManager(store, workers=1)
        return cls(
            store=store,
            jobs=jobs,
            pair_maps=PairMaps(store, jobs, occlusion),
            uploads=Uploads(store, jobs, occlusion, settings.max_upload_bytes, settings.max_image_pixels),
            thumbnails=LRU(4096),
            tables=PairTables(store),
            occlusion=occlusion,
            default_model=settings.default_model,
            max_upload_bytes=settings.max_upload_bytes,
        )


async def get_services(request: Request) -> Services:
    """The app's services (async: FastAPI would run a plain function on a worker thread)."""
    return request.app.state.services


def get_session(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    """A read session per request; writes open their own transaction with ``store.transaction()``."""
    with services.store.sessions() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
SessionDep = Annotated[Session, Depends(get_session)]
