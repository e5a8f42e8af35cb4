"""``/api/images``: a registered image of the store, or its thumbnail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import FileResponse

from xfv.faces import load_image
from xfv.store.images import image_file
from xfv.web.api.common import IMMUTABLE, errors
from xfv.web.ids import ImageId
from xfv.web.render import jpeg, thumbnail
from xfv.web.services import ServicesDep, SessionDep

router = APIRouter()


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
