"""Face alignment to what a model expects.

Input modes:
- ``detect``: find the faces (dlib HOG, then dlib's CNN), take the one ``face`` chooses (by
  default the largest, most central: see :mod:`xfv.faces.choice`), then align it from landmarks.
  A photo without a face is a ``NoFaceError``, never a silent crop.
- ``lfw-funneled``: for LFW deep-funneled images (250x250), which centre the face: detect as
  above, and where no detector finds a face, use the known face box (the user asked for it by
  choosing this mode). On LFW this beats the known box alone: 98.88% against 98.52% accuracy.
- ``aligned``: the image already is an aligned face crop: it is only resized.

Alignments (``ModelSpec.alignment``):
- ``dlib``: dlib's ``get_face_chip`` from 5-point landmarks, padding 0.25 (what dlib's ResNet expects).
- ``arcface``: similarity transform of 5 points (eye centres, nose tip, mouth corners, from the
  68-point landmarks) onto the ArcFace 112x112 template, scaled to the model's input size.
- ``arcface-loose``: the same onto the ArcFace template zoomed out to 0.85 (a looser crop), for
  FaceRes.

Finding the face (detection, choice, landmarks) is most of the cost; :func:`locate_photo` keeps
each photo's :class:`FaceLocation` in the array cache under the photo's content, so another model
or alignment on the same photos finds its faces at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import dlib
import face_recognition_models
import numpy as np

from xfv.cache import ArrayCache, content_hash, default_cache
from xfv.errors import XfvError
from xfv.faces.choice import FaceChoice, choose_face, order_faces
from xfv.faces.detect import Box, detect_faces, landmarks, shape_to_array
from xfv.faces.io import decode_image, load_image, read_image_file
from xfv.faces.report import FaceReport
from xfv.models.base import ALIGNMENTS, ModelSpec

INPUT_MODES = ("detect", "lfw-funneled", "aligned")

#: The face box dlib's HOG detector finds, in median, on LFW deep-funneled 250x250 images.
LFW_FUNNELED_BOX = Box(67, 80, 175, 187)

#: ArcFace's 5-point template for a 112x112 face: eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

DLIB_CHIP_PADDING = 0.25


def zoomed_template(template: np.ndarray, zoom: float) -> np.ndarray:
    """A 5-point template scaled by ``zoom`` about the centre of the 112x112 face: below 1 the
    face is smaller in the crop, which then shows more around it (a looser crop)."""
    return (template - 56.0) * zoom + 56.0


#: Similarity-transform alignments by name: the 5-point template (on a 112x112 face) each maps
#: the eye centres, nose tip and mouth corners onto. ``arcface-loose`` is a crop 18% wider than
#: ``arcface`` (1 / 0.85): what FaceRes (trained on VGGFace2's loose crops) does best with on LFW
#: (98.17% against 97.83% tight: the study in the README, ``bench/preprocessing_study.py``).
TEMPLATES: dict[str, np.ndarray] = {
    "arcface": ARCFACE_TEMPLATE,
    "arcface-loose": zoomed_template(ARCFACE_TEMPLATE, 0.85),
}

#: Bump when locating faces changes, so cached face locations are found again.
LOCATION_VERSION = "loc1"
DETECTOR_VERSIONS = f"dlib{dlib.__version__}-models{getattr(face_recognition_models, '__version__', '?')}"


@dataclass
class AlignedFace:
    """An aligned face and how it was found (box and landmarks in the source image, and the
    report of all faces found; no report in ``aligned`` mode)."""

    face: np.ndarray
    box: Box | None
    landmarks: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    detected: bool = False
    report: FaceReport | None = None


@dataclass
class FaceLocation:
    """Where the chosen face of a photo is: the report of the faces found (pose not assessed) and
    the chosen face's 5-point and 68-point landmarks, all any alignment needs."""

    report: FaceReport
    points5: np.ndarray
    points68: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"report": self.report.to_dict(), "points5": self.points5.tolist(), "points68": self.points68.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceLocation:
        return cls(FaceReport.from_dict(data["report"]), np.array(data["points5"]), np.array(data["points68"]))


def locate_face(image: np.ndarray, mode: str, source: str = "image", face: FaceChoice = "auto") -> FaceLocation:
    """Detect the faces of ``image``, choose one and find its landmarks (the slow part of aligning)."""
    report = find_face(image, mode, source, face)
    points5 = shape_to_array(landmarks(image, report.box, points=5))
    return FaceLocation(report, points5, shape_to_array(landmarks(image, report.box, points=68)))


def align_located(image: np.ndarray, location: FaceLocation, alignment: str, size: int) -> np.ndarray:
    """The located face of ``image`` aligned to ``alignment`` at ``size`` x ``size``."""
    if alignment == "dlib":
        parts = dlib.points([dlib.point(int(x), int(y)) for x, y in location.points5])
        shape = dlib.full_object_detection(location.report.box.to_dlib(), parts)
        return np.asarray(dlib.get_face_chip(image, shape, size=size, padding=DLIB_CHIP_PADDING))
    if alignment not in TEMPLATES:
        raise XfvError(f"unknown alignment {alignment!r}: use one of {', '.join(ALIGNMENTS)}")
    return warp_to_template(image, arcface_points(location.points68), TEMPLATES[alignment], size)


def align_face(
    image: np.ndarray,
    alignment: str,
    size: int,
    mode: str = "detect",
    source: str = "image",
    face: FaceChoice = "auto",
    assess: bool = True,
    location: FaceLocation | None = None,
) -> AlignedFace:
    """Align the face ``face`` chooses in ``image`` (uint8 RGB) to ``alignment`` at ``size`` x ``size``,
    with a report of the faces found; ``assess`` adds its pose and warnings (which bulk evaluation
    skips). ``location`` is the face's :func:`locate_face` when known already (from a cache)."""
    if mode not in INPUT_MODES:
        raise XfvError(f"unknown input mode {mode!r}: use one of {', '.join(INPUT_MODES)}")
    if mode == "aligned":
        resized = cv2.resize(
            image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
        )
        return AlignedFace(face=resized, box=None)
    if alignment not in ALIGNMENTS:
        raise XfvError(f"unknown alignment {alignment!r}: use one of {', '.join(ALIGNMENTS)}")
    location = location or locate_face(image, mode, source, face)
    report = location.report
    if assess:
        report.assess(location.points68, image.shape)
    points = location.points5 if alignment == "dlib" else location.points68
    aligned = align_located(image, location, alignment, size)
    return AlignedFace(aligned, report.box, points, report.face is not None, report)


def align_path(path: Path | str, spec: ModelSpec, mode: str = "detect", face: FaceChoice = "auto") -> np.ndarray:
    """Read a photo and return its chosen aligned face for the model described by ``spec``."""
    return align_photo(path, spec, mode, face, assess=False).face


def align_photo(
    path: Path | str,
    spec: ModelSpec,
    mode: str = "detect",
    face: FaceChoice = "auto",
    assess: bool = True,
    cache: ArrayCache | None = None,
) -> AlignedFace:
    """Read a photo and align its chosen face for ``spec``, with the report of the faces found.

    The face's location (detection and landmarks, most of the time) is kept in ``cache`` (default:
    the embedding cache) under the photo's content, so another model or alignment reuses it."""
    if mode == "aligned":
        return align_face(load_image(path), spec.alignment, spec.input_size, mode, str(path), face, assess)
    image, location = locate_photo(path, mode, face, cache)
    return align_face(image, spec.alignment, spec.input_size, mode, str(path), face, assess, location)


def locate_photo(
    path: Path | str, mode: str = "detect", face: FaceChoice = "auto", cache: ArrayCache | None = None
) -> tuple[np.ndarray, FaceLocation]:
    """A photo (uint8 RGB) and the location of its chosen face, from ``cache`` (default: the
    embedding cache) when the same content was located before, else found and cached."""
    data = read_image_file(path)
    image = decode_image(data, str(path))
    cache = cache or default_cache()
    key = location_key(content_hash(data), mode, face)
    stored = cache.get(key)
    if stored is not None:
        return image, FaceLocation.from_dict(json.loads(stored.tobytes()))
    location = locate_face(image, mode, str(path), face)
    cache.put(key, np.frombuffer(json.dumps(location.to_dict()).encode(), dtype=np.uint8))
    return image, location


def location_key(image_hash: str, mode: str, face: FaceChoice = "auto") -> str:
    """Cache key of a photo's face location: its content, the input mode, the face choice, and the
    versions of the detectors and landmark models (dlib's and its model files')."""
    return f"face-location:{LOCATION_VERSION}:{DETECTOR_VERSIONS}:{mode}:face={face}:{image_hash}"


def find_face(image: np.ndarray, mode: str, source: str, face: FaceChoice = "auto") -> FaceReport:
    """All faces of ``image`` (numbered left to right) and the chosen one; in ``lfw-funneled`` mode
    LFW's known box stands in where no detector finds a face."""
    boxes = order_faces(detect_faces(image))
    if not boxes and mode == "lfw-funneled":
        return FaceReport([], None, LFW_FUNNELED_BOX, "LFW's known face box (no face detected)", str(face))
    index, reason = choose_face(boxes, image.shape, face, source)
    return FaceReport(boxes, index + 1, boxes[index], reason, str(face))


def arcface_points(points68: np.ndarray) -> np.ndarray:
    """The 5 ArcFace points from dlib's 68: eye centres, nose tip, mouth corners."""
    return np.array(
        [
            points68[36:42].mean(axis=0),
            points68[42:48].mean(axis=0),
            points68[30],
            points68[48],
            points68[54],
        ]
    )


def warp_to_template(image: np.ndarray, points: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """The similarity transform taking 5 ``points`` onto ``template`` (on a 112x112 face, scaled to
    ``size``) applied to ``image``; borders replicate the edge pixels."""
    matrix, _ = cv2.estimateAffinePartial2D(points, template * (size / 112.0), method=cv2.LMEDS)
    if matrix is None:
        raise XfvError("face alignment failed: landmarks are degenerate")
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
