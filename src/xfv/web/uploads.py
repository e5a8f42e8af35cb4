"""Explain your own pair: two uploaded photos, checked, aligned, verified and explained.

Checks happen before any work, each with a message the page shows: a file over
``get_settings().max_upload_bytes`` (413), a file that is not a JPEG, PNG, WebP, BMP, GIF or TIFF
image (415), an image of more than ``get_settings().max_image_pixels`` (413, read from its
header before decoding), a corrupt or tiny image or a photo without a face (422). Large JPEGs
are decoded at a reduced scale and every photo is scaled to at most :data:`MAX_SIDE` pixels
before detection (a face detector gains nothing from 20 megapixels and would take seconds); at
most :data:`AT_ONCE` uploads are decoded at a time. Every photo reports all the faces found
(numbered from the left), the one used and why, and warnings about it (small, cut off, turned);
the request may choose another face per photo (``face1``, ``face2``: a number, ``largest``,
``central`` or ``auto``). Verification (distance, decision, C-Score) is immediate; X-Maps run as
a background job. Uploads live in the store (``web_uploads``), the newest :data:`KEEP` of them.
"""

from __future__ import annotations

import io
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session

from xfv.errors import ImageError, ImageTooLargeError, ModelError, NotFoundError, XfvError
from xfv.faces import AlignedFace, Box, FaceChoice, FaceReport, align_face, decode_image
from xfv.faces.quality import image_quality
from xfv.method.calibration import Calibrator
from xfv.method.occlusion import OcclusionSettings
from xfv.method.xmaps import check_methods
from xfv.models import FaceModel, get_model, listed_models
from xfv.models.npm_models import installed_models
from xfv.pipeline.explain import explain_pair_progressively
from xfv.pipeline.verify import confidence_of, model_calibrator, needs_quality, resolve_threshold, verify_faces
from xfv.store import Store
from xfv.store.arrays import pack_method_maps, unpack_method_maps, xmap_arrays
from xfv.store.catalog import model_names
from xfv.store.results import stored_calibration
from xfv.store.uploads import add_upload, set_upload_maps, upload_facts, upload_maps, upload_photos
from xfv.web.errors import UnsupportedImageError, UploadTooLargeError
from xfv.web.jobs import Job, JobManager
from xfv.web.lru import LRU
from xfv.web.render import Display, detection_overlay, png, render_map, select_map, thumbnail

#: Formats Pillow recognises that a photo may come in.
ACCEPTED_FORMATS = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "WEBP": "WebP",
    "BMP": "BMP",
    "GIF": "GIF",
    "TIFF": "TIFF",
}
#: Longer side, in pixels, photos are scaled down to before detection.
MAX_SIDE = 1280
#: Shorter side, in pixels, below which a photo cannot hold a detectable face.
MIN_SIDE = 32
#: Uploads kept in the store.
KEEP = 32
#: Uploads decoded and detected at once (each holds a decoded photo: bounds the server's memory).
AT_ONCE = 2


def human_size(size: float) -> str:
    """Bytes as people read them: 850 bytes, 20 kB, 10.5 MB."""
    if size < 1_000:
        return f"{size:.0f} bytes"
    return f"{size / 1_000:.0f} kB" if size < 1_000_000 else f"{size / 1_000_000:.1f} MB"


def check_upload(name: str, data: bytes, limit: int) -> None:
    """Refuse a file that is too large or not an image of an accepted format."""
    if len(data) > limit:
        raise UploadTooLargeError(f"{name} is {human_size(len(data))}: photos may be at most {human_size(limit)}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{name} claims far too many pixels to be a photo (a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, ValueError):
        kind = ""
    if kind not in ACCEPTED_FORMATS:
        accepted = ", ".join(sorted(set(ACCEPTED_FORMATS.values())))
        raise UnsupportedImageError(f"{name} is not a photo xfv can read: upload a {accepted} image")


@dataclass
class Photo:
    """One uploaded photo: its file name, the (scaled) image and the face found in it."""

    name: str
    image: np.ndarray
    aligned: AlignedFace


@dataclass
class Upload:
    """An uploaded pair: both photos, the verification and, once computed, the X-Maps."""

    id: str
    model: str
    photos: tuple[Photo, Photo]
    distance: float
    threshold: float
    threshold_source: str
    same: bool
    cscore: float | None
    calibrator: Calibrator | None = field(default=None, repr=False)
    #: The pair's quality, where the C-Score depends on it (a quality-aware calibration).
    quality: float | None = None
    #: Per method, the maps by name (``image{1,2}_p{size}``, ``image{1,2}_merged``) once computed.
    maps: dict[int, dict[str, np.ndarray]] | None = None

    def summary(self) -> dict[str, object]:
        """JSON-ready facts for the page and the API."""
        return {
            "id": self.id,
            "model": self.model,
            "distance": self.distance,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "decision": "same person" if self.same else "different people",
            "same": self.same,
            "cscore": self.cscore,
            "quality": self.quality,
            "xmaps_ready": self.maps is not None,
            "photos": [
                {
                    "name": photo.name,
                    "width": int(photo.image.shape[1]),
                    "height": int(photo.image.shape[0]),
                    **(photo.aligned.report.to_dict() if photo.aligned.report else {}),
                    "detected": photo.aligned.detected,
                    "box": photo.aligned.box.to_list() if photo.aligned.box else None,
                    "landmarks": np.asarray(photo.aligned.landmarks).round(1).tolist(),
                    "photo_url": f"/api/uploads/{self.id}/photo/{index}.png",
                    "aligned_url": f"/api/uploads/{self.id}/aligned/{index}.png",
                }
                for index, photo in enumerate(self.photos, start=1)
            ],
        }


def decision_rule(session: Session, model: FaceModel) -> tuple[float, str, Calibrator | None]:
    """Threshold, where it comes from, and the C-Score calibration for a new pair: the model's
    own (shipped) ones, else those the store fitted on a benchmark."""
    if model.spec.default_threshold is not None:
        threshold, source = resolve_threshold(model, None)
        return threshold, source, model_calibrator(model)
    stored = stored_calibration(session, model.spec.name)
    if stored is None:
        raise XfvError(f"model {model.spec.name} has no threshold yet: compute it on a benchmark first (xfv compute)")
    calibrator, dataset = Calibrator.from_dict(stored[0]), stored[1]
    return float(calibrator.threshold_), f"threshold and C-Score of {model.spec.name} fitted on {dataset}", calibrator


def upload_quality(photos: list[Photo], faces: tuple[FaceChoice, FaceChoice]) -> float:
    """The pair quality of two uploaded photos (:func:`~xfv.pipeline.quality.pair_quality`, on the
    decoded photos: their chosen faces as the detector finds them)."""
    return min(image_quality(photo.image, "detect", face).score for photo, face in zip(photos, faces))


def _pack_photos(photos: tuple[Photo, Photo]) -> bytes:
    """Both photos (as PNG) and their aligned faces, boxes and landmarks as one .npz blob."""
    arrays: dict[str, np.ndarray] = {}
    for index, photo in enumerate(photos, start=1):
        aligned = photo.aligned
        arrays[f"photo{index}"] = np.frombuffer(png(photo.image), dtype=np.uint8)
        arrays[f"face{index}"] = aligned.face
        arrays[f"landmarks{index}"] = np.asarray(aligned.landmarks, dtype=np.float64)
        arrays[f"box{index}"] = np.array(aligned.box.to_list() if aligned.box else [], dtype=np.int64)
        arrays[f"detected{index}"] = np.array(aligned.detected)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub
    return buffer.getvalue()


def _unpack_photos(blob: bytes, names: list[str], reports: list[dict[str, Any] | None]) -> tuple[Photo, Photo]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
        photos = [
            Photo(
                name,
                decode_image(stored[f"photo{index}"].tobytes(), name),
                AlignedFace(
                    face=stored[f"face{index}"],
                    box=Box(*stored[f"box{index}"].tolist()) if stored[f"box{index}"].size else None,
                    landmarks=stored[f"landmarks{index}"],
                    detected=bool(stored[f"detected{index}"]),
                    report=FaceReport.from_dict(report) if report else None,
                ),
            )
            for index, (name, report) in enumerate(zip(names, reports), start=1)
        ]
    return photos[0], photos[1]


def _job_key(upload: Upload) -> str:
    """What an upload's X-Map job computes (one job per upload)."""
    return f"upload:{upload.id}"


class Uploads:
    """Checks, verifies and explains uploaded pairs; keeps the newest :data:`KEEP` in the store
    (``web_uploads``), so every server process serves every upload."""

    def __init__(
        self, store: Store, jobs: JobManager, settings: OcclusionSettings, limit: int, max_pixels: int
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.settings = settings
        self.limit = limit
        self.max_pixels = max_pixels
        self._decoding = threading.BoundedSemaphore(AT_ONCE)
        self._loaded: LRU[str, Upload] = LRU(8)

    @staticmethod
    def allowed_models(session: Session) -> list[str]:
        """Models a visitor may choose: the built-in and installed ones and those with stored results (never a path)."""
        return list(dict.fromkeys([*listed_models(), *installed_models(), *model_names(session)]))

    def _model(self, session: Session, name: str) -> FaceModel:
        allowed = self.allowed_models(session)
        if name not in allowed:
            raise ModelError(f"unknown model {name!r}: choose one of {', '.join(allowed)}")
        return get_model(name)

    def create(
        self,
        session: Session,
        files: list[tuple[str, bytes]],
        model_name: str,
        faces: tuple[FaceChoice, FaceChoice] = ("auto", "auto"),
    ) -> Upload:
        """Check both files, find their faces, align the chosen ones, and verify the pair."""
        for name, data in files:
            check_upload(name, data, self.limit)
        model = self._model(session, model_name)
        with self._decoding:
            photos = [self._photo(name, data, model, self.max_pixels, face) for (name, data), face in zip(files, faces)]
        threshold, source, calibrator = decision_rule(session, model)
        distance, same = verify_faces(photos[0].aligned.face, photos[1].aligned.face, model, threshold)
        quality = upload_quality(photos, faces) if needs_quality(calibrator) else None  # decoded photos, not paths
        cscore = confidence_of(calibrator, distance, threshold, quality)
        upload = Upload(
            uuid.uuid4().hex,
            model.spec.name,
            (photos[0], photos[1]),
            distance,
            threshold,
            source,
            same,
            cscore,
            calibrator,
            quality,
        )
        self._save(upload)
        return upload

    def _save(self, upload: Upload) -> None:
        """Write a new upload to the store and drop the oldest beyond :data:`KEEP`."""
        facts = {
            "names": [photo.name for photo in upload.photos],
            "reports": [photo.aligned.report.to_dict() if photo.aligned.report else None for photo in upload.photos],
            "distance": upload.distance,
            "threshold": upload.threshold,
            "threshold_source": upload.threshold_source,
            "same": upload.same,
            "cscore": upload.cscore,
            "quality": upload.quality,
            "calibrator": upload.calibrator.to_dict() if upload.calibrator is not None else None,
        }
        with self.store.transaction() as session:
            add_upload(session, upload.id, upload.model, facts, _pack_photos(upload.photos), KEEP)

    @staticmethod
    def _photo(name: str, data: bytes, model: FaceModel, max_pixels: int, face: FaceChoice) -> Photo:
        """Decode (large JPEGs at a reduced scale), scale down, find and align the face."""
        image = thumbnail(decode_image(data, name, max_pixels=max_pixels, min_side=MAX_SIDE), MAX_SIDE)
        if min(image.shape[:2]) < MIN_SIDE:
            height, width = image.shape[:2]
            raise ImageError(
                f"{name} is {width}x{height} pixels (scaled): too small to hold a face "
                f"(both sides must be at least {MIN_SIDE} pixels)"
            )
        aligned = align_face(image, model.spec.alignment, model.spec.input_size, "detect", source=name, face=face)
        return Photo(name, image, aligned)

    def get(self, upload_id: str) -> Upload:
        """An upload from the store (its photos cached in this process; its maps read when stored)."""
        with self.store.sessions() as session:
            stored = upload_facts(session, upload_id[:32])
            if stored is None:
                raise NotFoundError(f"no upload {upload_id!r}: the store keeps the newest {KEEP} uploaded pairs")
            upload = self._loaded.get(upload_id)
            if upload is None:
                blob = upload_photos(session, upload_id)
                upload = self._loaded.put(upload_id, self._upload(upload_id, stored.model, stored.facts, blob or b""))
            if stored.has_maps and upload.maps is None:
                upload.maps = unpack_method_maps(upload_maps(session, upload_id) or b"")
        return upload

    @staticmethod
    def _upload(upload_id: str, model: str, facts: dict[str, Any], photos: bytes) -> Upload:
        calibration = facts.get("calibrator")
        return Upload(
            upload_id,
            model,
            _unpack_photos(photos, facts["names"], facts.get("reports", [None, None])),
            facts["distance"],
            facts["threshold"],
            facts["threshold_source"],
            facts["same"],
            facts["cscore"],
            Calibrator.from_dict(calibration) if calibration is not None else None,
            facts.get("quality"),
        )

    def start_xmaps(self, upload: Upload) -> dict[str, Any] | None:
        """Start the X-Maps job of an upload (None when they are ready)."""
        if upload.maps is not None:
            return None
        total = 2 * (self.settings.count + 1)
        return self.jobs.submit(
            "upload-xmaps",
            _job_key(upload),
            total,
            f"/api/uploads/{upload.id}",
            lambda job: self._explain(job, upload),
        )

    def _coarse_maps(self, upload: Upload) -> dict[int, dict[str, np.ndarray]] | None:
        """The maps of the levels the upload's running job has done so far, if any."""
        blob = self.jobs.partial(_job_key(upload))
        return unpack_method_maps(blob) if blob else None

    def _explain(self, job: Job, upload: Upload) -> None:
        model = get_model(upload.model)
        faces = [photo.aligned.face for photo in upload.photos]
        explanation = job.explain_by_level(
            explain_pair_progressively(
                faces[0],
                faces[1],
                model,
                None,
                self.settings,
                upload.threshold,
                upload.calibrator,
                quality=upload.quality,
                progress=job.advance,
            ),
            self.settings.patch_sizes,
        )
        maps = {method: xmap_arrays(xmaps) for method, xmaps in explanation.maps.items()}
        with self.store.transaction() as session:
            set_upload_maps(session, upload.id, pack_method_maps(maps))
        upload.maps = maps

    @staticmethod
    def photo_png(upload: Upload, index: int) -> bytes:
        photo = upload.photos[index - 1]
        return png(thumbnail(detection_overlay(photo.image, photo.aligned), 640))

    @staticmethod
    def aligned_png(upload: Upload, index: int) -> bytes:
        return png(upload.photos[index - 1].aligned.face)

    def map_png(self, upload: Upload, method: int, image: int, patch: str, display: Display) -> bytes:
        """One X-Map picture of an upload as PNG; while its job runs, of the coarse levels done."""
        check_methods([method])
        maps = upload.maps if upload.maps is not None else self._coarse_maps(upload)
        if maps is None:
            raise NotFoundError(f"the X-Maps of upload {upload.id} are not computed yet")
        arrays = maps.get(method)
        if arrays is None:
            raise NotFoundError(
                f"upload {upload.id} has no X-Maps of method {method}: it was explained before that method was added"
            )
        face = upload.photos[image - 1].aligned.face
        return png(render_map(face, select_map(arrays, image, patch), display))
