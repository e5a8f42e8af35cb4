"""``/api/verify``, ``/api/explain`` and ``/api/uploads``: a visitor's own pair of photos, verified
at once and explained in a background job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from pydantic import BaseModel, Field

from xfv.faces import FaceChoice, parse_face_choice
from xfv.web.api.common import PNG, PRIVATE, WRITE, ImageIndex, JobOut, Patch, errors, job_out, png_response
from xfv.web.ids import MethodNumber
from xfv.web.render import Display
from xfv.web.services import ServicesDep, SessionDep
from xfv.web.uploads import Upload

router = APIRouter()


class PhotoOut(BaseModel):
    name: str
    width: int
    height: int
    detected: bool
    box: list[int] | None
    faces_found: int = Field(description="faces detected in the photo, numbered 1, 2, ... from the left")
    face: int | None = Field(description="the number of the face used (None: LFW's known box stood in)")
    boxes: list[list[int]] = Field(
        description="every detected face box (left, top, right, bottom), in face-number order"
    )
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
    quality: float | None = Field(
        None, description="the pair's image quality (the lower of both), where the C-Score depends on it"
    )
    xmaps_ready: bool
    photos: list[PhotoOut]
    job: JobOut | None = None


UploadedPhoto = Annotated[UploadFile, File(description="a photo with a face (JPEG, PNG, WebP, BMP, GIF or TIFF)")]
FaceField = Annotated[
    str, Form(description="which face of the photo: a number (1 = leftmost), largest, central or auto (default)")
]


def _files(*uploads: UploadFile) -> list[tuple[str, bytes]]:
    return [(upload.filename or f"photo {index}", upload.file.read()) for index, upload in enumerate(uploads, start=1)]


def _faces(face1: str, face2: str) -> tuple[FaceChoice, FaceChoice]:
    return parse_face_choice(face1), parse_face_choice(face2)


def _upload_out(upload: Upload, job: dict[str, Any] | None = None) -> UploadOut:
    return UploadOut.model_validate({**upload.summary(), "job": job_out(job)})


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
    return png_response(services.uploads.photo_png(services.uploads.get(upload_id), image), PRIVATE)


@router.get(
    "/uploads/{upload_id}/aligned/{image}.png",
    summary="An uploaded photo's aligned face",
    response_class=Response,
    responses=PNG | errors(404),
)
def upload_aligned(services: ServicesDep, upload_id: str, image: ImageIndex) -> Response:
    return png_response(services.uploads.aligned_png(services.uploads.get(upload_id), image), PRIVATE)


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
    return png_response(
        services.uploads.map_png(services.uploads.get(upload_id), method, image, patch, display), PRIVATE
    )
