"""Face detection (dlib HOG) and landmarks (dlib's 5- and 68-point shape predictors)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import dlib
import numpy as np

from xfv.models.weights import shape_predictor_5_path, shape_predictor_68_path


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


@cache
def _hog_detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@cache
def _shape_predictor(points: int) -> dlib.shape_predictor:
    path = shape_predictor_5_path() if points == 5 else shape_predictor_68_path()
    return dlib.shape_predictor(str(path))


def detect_faces(image: np.ndarray, upsample: int = 1) -> list[Box]:
    """All faces dlib's HOG detector finds (upsampling once finds faces down to ~40 px)."""
    rects = _hog_detector()(image, upsample)
    return [Box(r.left(), r.top(), r.right(), r.bottom()) for r in rects]


def pick_main_face(boxes: list[Box], image_shape: tuple[int, ...]) -> Box:
    """The largest face, discounted by its distance from the image centre (portraits are centred)."""
    height, width = image_shape[:2]
    diagonal = float(np.hypot(width, height))

    def score(box: Box) -> float:
        cx, cy = box.centre
        offset = np.hypot(cx - width / 2, cy - height / 2) / diagonal
        return box.area * (1.0 - offset) ** 2

    return max(boxes, key=score)


def landmarks(image: np.ndarray, box: Box, points: int = 5) -> dlib.full_object_detection:
    """dlib's landmark shape (5 or 68 points) for a face box."""
    return _shape_predictor(points)(image, box.to_dlib())


def shape_to_array(shape: dlib.full_object_detection) -> np.ndarray:
    """(k, 2) float array of a dlib landmark shape."""
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
