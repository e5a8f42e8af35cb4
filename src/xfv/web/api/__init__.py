"""The REST API under ``/api``, one router per resource; the pages call these same endpoints
(OpenAPI docs at ``/docs``).

Every user mistake answers 4xx with ``{"detail": message}``: unknown pair, image, job or upload
404; bad filter values 422 (or 400 for an unknown dataset or model name); an oversized upload 413;
a non-image 415; a photo without a face 422.

Routers: :mod:`~xfv.web.api.overview` (stats, models), :mod:`~xfv.web.api.pairs` (the pair table,
one pair), :mod:`~xfv.web.api.xmaps` (a pair's X-Maps), :mod:`~xfv.web.api.images`,
:mod:`~xfv.web.api.uploads` (verify and explain a visitor's pair), :mod:`~xfv.web.api.jobs`,
:mod:`~xfv.web.api.reviews`; what they share is in :mod:`~xfv.web.api.common`.
"""

from __future__ import annotations

from fastapi import APIRouter

from xfv.web.api import images, jobs, overview, pairs, reviews, uploads, xmaps
from xfv.web.api.common import errors

router = APIRouter(prefix="/api", tags=["api"], responses=errors(422))
for _resource in (overview, pairs, xmaps, images, uploads, jobs, reviews):
    router.include_router(_resource.router)

__all__ = ["router"]
