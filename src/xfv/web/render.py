"""Pictures the pages show: PNG encoding, thumbnails, X-Map displays and detection overlays.

X-Maps come in two displays, both drawn over the aligned face by the browser with an opacity
slider: ``blend`` is the paper's Algorithm 2 (hue and saturation of the coloured map, lightness of
the face); ``heat`` is the coloured map alone (PiYG: green similar, magenta dissimilar), so the
slider makes it a classic heat-map overlay.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from xfv.errors import NotFoundError
from xfv.faces import AlignedFace
from xfv.method.colour import colour_map, xmap_image
from xfv.method.xmaps import normalise_map

Display = Literal["blend", "heat"]

#: Accent colours of the detection overlay (RGB).
BOX_COLOUR = (56, 189, 248)
LANDMARK_COLOUR = (250, 204, 21)


def png(image: np.ndarray) -> bytes:
    """A uint8 RGB (or grey) image as PNG bytes."""
    array = np.ascontiguousarray(image)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """A uint8 RGB image as JPEG bytes."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return encoded.tobytes()


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` scaled so its longer side is ``size`` pixels (never enlarged)."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    if scale >= 1:
        return image
    return cv2.resize(
        image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )


def select_map(maps: dict[str, np.ndarray], image: int, patch: str) -> np.ndarray:
    """The map of one image to show: the merged X-Map, or one patch size's raw map (eq. 9)
    scaled to [-1, 1] by its peak so every patch size uses the whole colour range."""
    key = f"image{image}_merged" if patch == "merged" else f"image{image}_p{patch}"
    if key not in maps:
        stored = sorted(int(k.rsplit("_p", 1)[1]) for k in maps if k.startswith(f"image{image}_p"))
        raise NotFoundError(f"no map for patch size {patch}: these maps have patch sizes {stored} and merged")
    values = maps[key].astype(np.float64)
    return values if patch == "merged" else normalise_map(values)


def render_map(face: np.ndarray, similarity: np.ndarray, display: Display) -> np.ndarray:
    """The picture of a map on its face: Algorithm 2's blend, or the coloured map for a heat overlay."""
    if similarity.shape != face.shape[:2]:
        similarity = cv2.resize(similarity.astype(np.float32), face.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    return xmap_image(face, similarity) if display == "blend" else colour_map(similarity)


def detection_overlay(photo: np.ndarray, aligned: AlignedFace) -> np.ndarray:
    """The photo with the detected face box and the alignment landmarks drawn on it."""
    canvas = photo.copy()
    thickness = max(2, round(max(photo.shape[:2]) / 250))
    if aligned.box is not None:
        box = aligned.box
        cv2.rectangle(canvas, (box.left, box.top), (box.right, box.bottom), BOX_COLOUR, thickness, cv2.LINE_AA)
    for x, y in np.asarray(aligned.landmarks).reshape(-1, 2):
        cv2.circle(canvas, (round(float(x)), round(float(y))), thickness + 1, LANDMARK_COLOUR, -1, cv2.LINE_AA)
    return canvas
