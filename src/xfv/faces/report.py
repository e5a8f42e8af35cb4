"""What xfv found in a photo and how usable the chosen face is: a :class:`FaceReport`.

A face that is very small, cut off by the photo's edge or strongly turned is still used (the user
may know better), but the report carries a warning with the figure, shown by the CLI (stderr and
``--json``) and the web page, instead of a silently worse result:

- width: the face box's width in pixels, warned under :data:`MIN_FACE_WIDTH` (dlib's ResNet sees
  faces at 150 px; LFW's faces are about 108 px wide);
- cut off: the share of the face box outside the photo, warned over :data:`MAX_OUTSIDE`;
- roll (tilted): the angle of the line between the eye centres (dlib's 68 landmarks), warned over
  :data:`MAX_ROLL` degrees;
- yaw (turned sideways), warned over :data:`MAX_YAW` degrees: a rough estimate from the same
  landmarks. Along the eye line, the nose tip's offset from the middle of the face outline (jaw
  points 0-2 and 14-16), as a share of half the outline's width, is ``sin(yaw) / HEAD_WIDTH_RATIO``
  for a head seen as a cylinder with the nose in front of it; :data:`HEAD_WIDTH_RATIO` was chosen
  by eye on LFW faces (frontal ~0-5, three-quarter ~35, near-profile ~60 degrees), so read the
  figure as within about 15 degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xfv.faces.detect import Box

MIN_FACE_WIDTH = 50
MAX_OUTSIDE = 0.10
MAX_YAW = 45.0
MAX_ROLL = 30.0

#: Half the face outline's width over the nose tip's depth in front of it (the cylinder model).
HEAD_WIDTH_RATIO = 0.85


@dataclass
class FaceReport:
    """Faces found in a photo (numbered left to right), the one used, why, and its quality figures.

    ``face`` is the 1-based number of the face used, None when no detector found one and the known
    LFW box stood in; ``choice`` what was asked for (``auto``, ``largest``, ``central`` or a number);
    ``yaw`` and ``roll`` are absolute degrees."""

    boxes: list[Box]
    face: int | None
    box: Box
    reason: str
    choice: str = "auto"
    yaw: float | None = None
    roll: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def faces_found(self) -> int:
        return len(self.boxes)

    @property
    def width(self) -> int:
        return self.box.right - self.box.left

    def assess(self, points68: np.ndarray, image_shape: tuple[int, ...]) -> None:
        """Fill in the pose and the warnings from the chosen face's 68 landmarks."""
        self.yaw, self.roll = head_pose(points68)
        self.warnings = quality_warnings(self.box, self.yaw, self.roll, image_shape)

    def describe(self) -> str:
        """One line: how many faces, which one and why."""
        found = f"{self.faces_found} face" + ("s" if self.faces_found != 1 else "") + " found"
        if self.face is None:
            return f"{found}; used {self.reason} {self.box.to_list()}"
        return f"{found}; used face {self.face} {self.box.to_list()} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "faces_found": self.faces_found,
            "face": self.face,
            "box": self.box.to_list(),
            "reason": self.reason,
            "choice": self.choice,
            "boxes": [box.to_list() for box in self.boxes],
            "face_width": self.width,
            "yaw": None if self.yaw is None else round(self.yaw, 1),
            "roll": None if self.roll is None else round(self.roll, 1),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceReport:
        """The report :meth:`to_dict` wrote (the embedding cache keeps reports so)."""
        return cls(
            [Box(*box) for box in data["boxes"]],
            data["face"],
            Box(*data["box"]),
            data["reason"],
            data["choice"],
            data["yaw"],
            data["roll"],
            list(data["warnings"]),
        )


def share_outside(box: Box, image_shape: tuple[int, ...]) -> float:
    """The share of the box's area outside an image of ``image_shape``."""
    height, width = image_shape[:2]
    inside = Box(max(box.left, 0), max(box.top, 0), min(box.right, width), min(box.bottom, height))
    return 1.0 - inside.area / box.area if box.area else 0.0


def head_pose(points68: np.ndarray) -> tuple[float, float]:
    """Absolute yaw and roll in degrees of a face from its 68 landmarks."""
    eye1, eye2 = points68[36:42].mean(axis=0), points68[42:48].mean(axis=0)
    roll = float(np.degrees(np.arctan2(eye2[1] - eye1[1], eye2[0] - eye1[0])))
    along = points68 @ ((eye2 - eye1) / max(float(np.linalg.norm(eye2 - eye1)), 1e-6))
    left, right = along[0:3].mean(), along[14:17].mean()
    offset = (along[30] - (left + right) / 2) / max(abs(right - left) / 2, 1e-6)
    yaw = float(np.degrees(np.arcsin(np.clip(abs(offset) * HEAD_WIDTH_RATIO, 0.0, 1.0))))
    return yaw, abs(roll)


def quality_warnings(box: Box, yaw: float, roll: float, image_shape: tuple[int, ...]) -> list[str]:
    """Warnings, with their figures, for a face that is small, cut off, turned or tilted."""
    warnings = []
    width = box.right - box.left
    if width < MIN_FACE_WIDTH:
        warnings.append(f"small face: {width} px wide (under {MIN_FACE_WIDTH} px the model sees little detail)")
    outside = share_outside(box, image_shape)
    if outside > MAX_OUTSIDE:
        warnings.append(f"face cut off: {outside:.0%} of its box lies outside the photo")
    if yaw > MAX_YAW:
        warnings.append(
            f"face turned sideways: yaw about {yaw:.0f} degrees (estimated from landmarks; over {MAX_YAW:.0f} is unreliable)"
        )
    if roll > MAX_ROLL:
        warnings.append(f"face tilted: roll {roll:.0f} degrees (over {MAX_ROLL:.0f})")
    return warnings
