"""Face detection and landmarks.

Detection is a cascade: dlib's HOG detector first (fast), dlib's MMOD CNN detector where HOG finds
nothing (slower, but finds turned, dark and small faces). On LFW this cascade finds a face in every
image; HOG alone misses 40 of the 7,701 images of the 6,000 test pairs. Large photos are detected on
a copy scaled to at most ``DETECTION_MAX_SIDE`` pixels; landmarks use the full image.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache

import cv2
import dlib
import numpy as np

from xfv.models.weights import cnn_face_detector_path, shape_predictor_5_path, shape_predictor_68_path

DETECTION_MAX_SIDE = 800
#: Below this side, HOG looks at the image upsampled once (finds faces down to ~40 px).
UPSAMPLE_BELOW_SIDE = 500
#: Images with a side shorter than this (after scaling for detection) hold no detectable face.
MIN_DETECTION_SIDE = 20


@dataclass(frozen=True)
class Box:
    """A face box in image pixels (left, top, right, bottom)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def area(self) -> int:
        return max(self.right - self.left, 0) * max(self.bottom - self.top, 0)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def to_dlib(self) -> dlib.rectangle:
        return dlib.rectangle(self.left, self.top, self.right, self.bottom)

    def to_list(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]

    def scaled(self, factor: float) -> Box:
        return Box(*(int(round(v * factor)) for v in self.to_list()))


#: dlib's detectors are not safe to share between threads (shared, four threads at once found
#: wrong faces or aborted the process: tests/test_faces.py), so each thread has its own.
_per_thread = threading.local()


def _hog_detector() -> dlib.fhog_object_detector:
    if not hasattr(_per_thread, "hog"):
        _per_thread.hog = dlib.get_frontal_face_detector()
    return _per_thread.hog


def _cnn_detector() -> dlib.cnn_face_detection_model_v1:
    if not hasattr(_per_thread, "cnn"):
        _per_thread.cnn = dlib.cnn_face_detection_model_v1(str(cnn_face_detector_path()))
    return _per_thread.cnn


@cache  # one for all threads: dlib documents its shape predictor as safe to share (it only reads)
def _shape_predictor(points: int) -> dlib.shape_predictor:
    path = shape_predictor_5_path() if points == 5 else shape_predictor_68_path()
    return dlib.shape_predictor(str(path))


def detect_faces(image: np.ndarray) -> list[Box]:
    """All faces in ``image`` (uint8 RGB): HOG's, or the CNN's where HOG finds none (none in a sliver)."""
    scale = min(1.0, DETECTION_MAX_SIDE / max(image.shape[:2]))
    if min(image.shape[:2]) * scale < MIN_DETECTION_SIDE:
        return []  # no face fits (and the CNN refuses images smaller than its filters)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    upsample = 1 if max(small.shape[:2]) <= UPSAMPLE_BELOW_SIDE else 0
    rects = list(_hog_detector()(small, upsample))
    if not rects:
        rects = [detection.rect for detection in _cnn_detector()(small, 0)]
    return [Box(r.left(), r.top(), r.right(), r.bottom()).scaled(1 / scale) for r in rects]


def landmarks(image: np.ndarray, box: Box, points: int = 5) -> dlib.full_object_detection:
    """dlib's landmark shape (5 or 68 points) for a face box."""
    return _shape_predictor(points)(image, box.to_dlib())


def shape_to_array(shape: dlib.full_object_detection) -> np.ndarray:
    """(k, 2) float array of a dlib landmark shape."""
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
