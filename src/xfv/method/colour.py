"""Colouring X-Maps: a diverging colour map, the paper's HLS/HSV blend (Algorithm 2), a plain overlay.

Maps are in [-1, 1]: +1 similar (green in PiYG), -1 dissimilar (magenta), 0 neutral (white).
Faces and results are uint8 RGB; all work is vectorised over pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib import colormaps

from xfv.errors import XfvError

DEFAULT_COLOURMAP = "PiYG"


def _to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 RGB to float32 in [0, 1] (what OpenCV's float colour conversions expect)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise XfvError(f"expected a uint8 RGB image (h, w, 3), got {image.dtype} {image.shape}")
    return image.astype(np.float32) / 255.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def colour_map(similarity: np.ndarray, colourmap: str = DEFAULT_COLOURMAP) -> np.ndarray:
    """A map in [-1, 1] as uint8 RGB through a diverging matplotlib colour map (-1 low end, +1 high end)."""
    try:
        cmap = colormaps[colourmap]
    except KeyError:
        raise XfvError(f"unknown colour map {colourmap!r}: use a matplotlib colour map name such as PiYG") from None
    unit = (np.clip(np.asarray(similarity, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    return _to_uint8(cmap(unit)[..., :3])


def blend(face: np.ndarray, coloured: np.ndarray) -> np.ndarray:
    """Algorithm 2: hue and saturation from the coloured map, lightness from the face.

    Hue comes from the map's HLS, lightness from the face's HLS, saturation from the map's HSV (as
    the paper and the reference code do); the result is converted back from HLS to RGB.
    """
    face_hls = cv2.cvtColor(_to_unit_float(face), cv2.COLOR_RGB2HLS)
    map_float = _to_unit_float(coloured)
    hue = cv2.cvtColor(map_float, cv2.COLOR_RGB2HLS)[..., 0]
    saturation = cv2.cvtColor(map_float, cv2.COLOR_RGB2HSV)[..., 1]
    hls = np.stack([hue, face_hls[..., 1], saturation], axis=-1)
    return _to_uint8(cv2.cvtColor(hls, cv2.COLOR_HLS2RGB))


def xmap_image(face: np.ndarray, similarity: np.ndarray, colourmap: str = DEFAULT_COLOURMAP) -> np.ndarray:
    """The X-Map of a face: its similarity map coloured and blended into it (Algorithm 2)."""
    return blend(face, colour_map(similarity, colourmap))


def overlay(
    face: np.ndarray, similarity: np.ndarray, opacity: float = 0.5, colourmap: str = DEFAULT_COLOURMAP
) -> np.ndarray:
    """A plain heat-map overlay: (1 - opacity) * face + opacity * coloured map."""
    if not 0.0 <= opacity <= 1.0:
        raise XfvError(f"overlay opacity must be within [0, 1], got {opacity}")
    mixed = (1.0 - opacity) * _to_unit_float(face) + opacity * _to_unit_float(colour_map(similarity, colourmap))
    return _to_uint8(mixed)


__all__ = ["DEFAULT_COLOURMAP", "blend", "colour_map", "overlay", "xmap_image"]
