"""Which face of a photo to use when it shows several.

Faces are numbered 1, 2, ... from left to right (by the centre of their box; equal centres top to
bottom), the order the CLI's ``--face N``, the JSON output and the web page all use. A choice is
``"auto"`` (default: the largest face, discounted by its distance from the image centre, since
portraits are centred), ``"largest"``, ``"central"`` (nearest the image centre) or a face number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from xfv.errors import ImageError, NoFaceError, XfvError
from xfv.faces.detect import Box

#: The named choices; any other choice is a face number (1-based, left to right).
NAMED_CHOICES = ("auto", "largest", "central")

FaceChoice = str | int


def parse_face_choice(text: str | int) -> FaceChoice:
    """``"auto"``, ``"largest"``, ``"central"`` or a face number >= 1, from user input."""
    value = str(text).strip().lower()
    if value in NAMED_CHOICES:
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise XfvError(
        f"unknown face choice {text!r}: use a face number (1 = leftmost) or one of {', '.join(NAMED_CHOICES)}"
    )


def parse_face_choices(text: str, count: int) -> list[FaceChoice]:
    """Choices for ``count`` images from ``"CHOICE"`` (the same for all) or ``"C1,C2,..."`` (one each)."""
    parts = [parse_face_choice(part) for part in text.split(",")]
    if len(parts) == 1:
        return parts * count
    if len(parts) != count:
        raise XfvError(f"--face {text}: give one choice for all {count} images or one per image ({count} values)")
    return parts


def order_faces(boxes: Sequence[Box]) -> list[Box]:
    """Boxes in the documented numbering order: left to right, then top to bottom."""
    return sorted(boxes, key=lambda box: (box.centre[0], box.centre[1]))


def _centre_offset(box: Box, image_shape: tuple[int, ...]) -> float:
    """Distance of the box centre from the image centre, as a share of the image diagonal."""
    height, width = image_shape[:2]
    cx, cy = box.centre
    return float(np.hypot(cx - width / 2, cy - height / 2) / np.hypot(width, height))


def _main_face_score(box: Box, image_shape: tuple[int, ...]) -> float:
    """The ``auto`` rule: area discounted by the squared distance from the image centre."""
    return box.area * (1.0 - _centre_offset(box, image_shape)) ** 2


def _best(boxes: Sequence[Box], key: Callable[[Box], float]) -> int:
    return max(range(len(boxes)), key=lambda index: key(boxes[index]))


def choose_face(boxes: Sequence[Box], image_shape: tuple[int, ...], choice: FaceChoice, source: str) -> tuple[int, str]:
    """The 0-based index in ``boxes`` (already in numbering order) of the chosen face, and why."""
    if not boxes:
        raise NoFaceError(f"{source}: no face found (dlib HOG and CNN detectors)")
    largest = _best(boxes, lambda box: box.area)
    central = _best(boxes, lambda box: -_centre_offset(box, image_shape))
    if isinstance(choice, int):
        if choice > len(boxes):
            found = f"{len(boxes)} face" + ("s" if len(boxes) > 1 else "")
            raise ImageError(f"{source}: no face {choice}: {found} found (faces are numbered from the left)")
        return choice - 1, f"face {choice} as asked"
    if choice == "largest":
        return largest, "largest, as asked"
    if choice == "central":
        return central, "most central, as asked"
    if choice != "auto":
        raise XfvError(f"unknown face choice {choice!r}")
    if len(boxes) == 1:
        return 0, "the only face"
    index = _best(boxes, lambda box: _main_face_score(box, image_shape))
    is_largest = boxes[index].area == boxes[largest].area
    is_central = _centre_offset(boxes[index], image_shape) == _centre_offset(boxes[central], image_shape)
    if is_largest and is_central:
        return index, "largest and most central"
    if is_largest:
        return index, f"largest (face {central + 1} is more central but smaller)"
    if is_central:
        return index, f"most central (face {largest + 1} is larger but off-centre)"
    return index, "best balance of size and centrality"
