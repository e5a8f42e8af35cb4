"""How far a reduced-precision model's X-Maps stray from the float32 model's.

Reduced precision (``dlib-int8``) is judged by what it is for, not by speed: the Pearson
correlation of its merged maps with the float32 model's maps of the same pairs, and (with
``xfv evaluate``) its LFW accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from xfv.cache import ArrayCache
from xfv.method.occlusion import OcclusionSettings
from xfv.models.base import FaceModel
from xfv.pipeline.explain import OcclusionEngine, explain_pair


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps' pixels (1 for two identical constant maps)."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def map_fidelity(
    reference: FaceModel,
    candidate: FaceModel,
    face_pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    settings: OcclusionSettings,
    cache: ArrayCache,
) -> list[dict[int, float]]:
    """Per pair and method, the Pearson correlation of the candidate's merged maps (both faces'
    pixels together) with the reference's. Both models must take the same aligned faces."""
    engines = OcclusionEngine(reference, settings, cache), OcclusionEngine(candidate, settings, cache)
    out = []
    for face1, face2 in face_pairs:
        ref, cand = (explain_pair(face1, face2, e.model, engine=e) for e in engines)
        out.append({
            m: pearson(
                np.concatenate([ref.maps[m].merged1, ref.maps[m].merged2]),
                np.concatenate([cand.maps[m].merged1, cand.maps[m].merged2]),
            )
            for m in ref.maps
        })  # fmt: skip
    return out


__all__ = ["map_fidelity", "pearson"]
