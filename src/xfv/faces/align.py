"""Face alignment to what a model expects.

Input modes:
- ``detect``: find the face (dlib HOG, then dlib's CNN; the largest, most central face), then
  align it from landmarks. A photo without a face is a ``NoFaceError``, never a silent crop.
- ``lfw-funneled``: for LFW deep-funneled images (250x250), which centre the face: detect as
  above, and where no detector finds a face, use the known face box (the user asked for it by
  choosing this mode). On LFW this beats the known box alone: 98.88% against 98.52% accuracy.
- ``aligned``: the image already is an aligned face crop: it is only resized.

Alignments (``ModelSpec.alignment``):
- ``dlib``: dlib's ``get_face_chip`` from 5-point landmarks, padding 0.25 (what dlib's ResNet expects).
- ``arcface``: similarity transform of 5 points (eye centres, nose tip, mouth corners, from the
  68-point landmarks) onto the ArcFace 112x112 template, scaled to the model's input size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import dlib
import numpy as np

from xfv.errors import NoFaceError, XfvError
from xfv.faces.detect import Box, detect_faces, landmarks, pick_main_face, shape_to_array
from xfv.faces.io import load_image
from xfv.models.base import ModelSpec

INPUT_MODES = ("detect", "lfw-funneled", "aligned")

#: The face box dlib's HOG detector finds, in median, on LFW deep-funneled 250x250 images.
LFW_FUNNELED_BOX = Box(67, 80, 175, 187)

#: ArcFace's 5-point template for a 112x112 face: eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

DLIB_CHIP_PADDING = 0.25


@dataclass
class AlignedFace:
    """An aligned face and how it was found (box and landmarks in the source image)."""

    face: np.ndarray
    box: Box | None
    landmarks: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    detected: bool = False


def align_face(
    image: np.ndarray,
    alignment: str,
    size: int,
    mode: str = "detect",
    source: str = "image",
) -> AlignedFace:
    """Align the main face of ``image`` (uint8 RGB) to ``alignment`` at ``size`` x ``size``."""
    if mode not in INPUT_MODES:
        raise XfvError(f"unknown input mode {mode!r}: use one of {', '.join(INPUT_MODES)}")
    if mode == "aligned":
        face = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR)
        return AlignedFace(face=face, box=None)
    box, detected = _face_box(image, mode, source)
    if alignment == "dlib":
        shape = landmarks(image, box, points=5)
        chip = dlib.get_face_chip(image, shape, size=size, padding=DLIB_CHIP_PADDING)
        return AlignedFace(face=np.asarray(chip), box=box, landmarks=shape_to_array(shape), detected=detected)
    if alignment == "arcface":
        points = shape_to_array(landmarks(image, box, points=68))
        face = _warp_to_template(image, arcface_points(points), size)
        return AlignedFace(face=face, box=box, landmarks=points, detected=detected)
    raise XfvError(f"unknown alignment {alignment!r}: use dlib or arcface")


def align_path(path: Path | str, spec: ModelSpec, mode: str = "detect") -> np.ndarray:
    """Read a photo and return its aligned face for the model described by ``spec``."""
    image = load_image(path)
    return align_face(image, spec.alignment, spec.input_size, mode, source=str(path)).face


def _face_box(image: np.ndarray, mode: str, source: str) -> tuple[Box, bool]:
    boxes = detect_faces(image)
    if boxes:
        return pick_main_face(boxes, image.shape), True
    if mode == "lfw-funneled":
        return LFW_FUNNELED_BOX, False
    raise NoFaceError(f"{source}: no face found (dlib HOG and CNN detectors)")


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


def _warp_to_template(image: np.ndarray, points: np.ndarray, size: int) -> np.ndarray:
    template = ARCFACE_TEMPLATE * (size / 112.0)
    matrix, _ = cv2.estimateAffinePartial2D(points, template, method=cv2.LMEDS)
    if matrix is None:
        raise XfvError("face alignment failed: landmarks are degenerate")
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
