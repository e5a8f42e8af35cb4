"""X-Map arrays as compact blobs: float16 in a compressed ``.npz``, each map with its own scale.

Raw occlusion maps (eq. 9) are tiny numbers (deviations / N, often 1e-5), below float16's normal
range; so every map is stored divided by its peak |value| (float16 in [-1, 1]) with the peak as a
float32 beside it. Relative error stays under 1e-3 of each map's peak, and a 112x112 pair of maps
for three patch sizes plus merged takes a few tens of kilobytes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from xfv.method.xmaps import MethodMaps

SCALE_SUFFIX = ".scale"


def pack_maps(maps: dict[str, np.ndarray]) -> bytes:
    """Compress named 2-D maps into one ``.npz`` blob (float16 with per-map float32 scales)."""
    arrays: dict[str, Any] = {}
    for name, given in maps.items():
        values = np.asarray(given, dtype=np.float64)
        peak = float(np.max(np.abs(values))) if values.size else 0.0
        scale = peak if peak > 0 and np.isfinite(peak) else 1.0
        arrays[name] = (values / scale).astype(np.float16)
        arrays[name + SCALE_SUFFIX] = np.float32(scale)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def unpack_maps(blob: bytes) -> dict[str, np.ndarray]:
    """The maps of a blob written by :func:`pack_maps`, as float32 arrays."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
        names = [name for name in stored.files if not name.endswith(SCALE_SUFFIX)]
        return {name: stored[name].astype(np.float32) * stored[name + SCALE_SUFFIX] for name in names}


def xmap_arrays(xmaps: MethodMaps) -> dict[str, np.ndarray]:
    """One method's maps by name: ``image{1,2}_p{patch size}`` (raw, eq. 9) and ``image{1,2}_merged``."""
    arrays: dict[str, Any] = {}
    for image, raw, merged in ((1, xmaps.raw1, xmaps.merged1), (2, xmaps.raw2, xmaps.merged2)):
        arrays.update({f"image{image}_p{size}": values for size, values in raw.items()})
        arrays[f"image{image}_merged"] = merged
    return arrays


def pack_method_maps(maps: dict[int, dict[str, np.ndarray]]) -> bytes:
    """Several methods' maps (:func:`xmap_arrays` of each) as one blob, names prefixed ``method{m}:``."""
    return pack_maps({f"method{m}:{name}": values for m, named in maps.items() for name, values in named.items()})


def unpack_method_maps(blob: bytes) -> dict[int, dict[str, np.ndarray]]:
    """The maps of a blob written by :func:`pack_method_maps`, by method."""
    maps: dict[int, dict[str, np.ndarray]] = {}
    for key, values in unpack_maps(blob).items():
        method, name = key.split(":", 1)
        maps.setdefault(int(method.removeprefix("method")), {})[name] = values
    return maps
