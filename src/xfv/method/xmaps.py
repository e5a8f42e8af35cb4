"""X-Maps (paper section 3.2): similarity maps from the distances of occluded faces.

All three methods read one set of occlusion embeddings per face (:class:`OcclusionEmbeddings`);
they differ only in which distances they pick (equations 6 to 8):

- method 1: mean distance of each occluded face 1 to all occluded faces 2 of the same patch size
  (map 1, row means of the N x N distance matrix), and vice versa (map 2, column means);
- method 2: occluded face 1 vs unoccluded face 2 (map 1), unoccluded face 1 vs occluded face 2 (map 2);
- method 3: co-located occlusions, d(O1_i, O2_i); both maps are identical.

Each deviation d_i - d_orig weights its mask: S_p = sum_i (d_i - d_orig) M_i / N (eq. 9), maps of
all patch sizes merge as S = sum_p S_p / (p^2 |P|) (eq. 10), then S is blurred (kernel and sigma =
stride) and divided by max |S|. Positive = occluding the region raises the distance, so the
region supports the match ("similar").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from xfv.errors import MethodError
from xfv.method.distances import cosine_distance, cosine_distance_matrix
from xfv.method.occlusion import OcclusionPlan, PatchGrid, round_half_up

#: Distance changes this small are float rounding (float32 embeddings), not an effect of occlusion.
DEVIATION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class OcclusionEmbeddings:
    """Embeddings of one face: unoccluded ``original`` (d,) and ``occluded`` (N, d) in plan order."""

    original: np.ndarray
    occluded: np.ndarray


@dataclass(frozen=True)
class MethodMaps:
    """One method's maps for both faces: raw S_p per patch size (eq. 9) and the final merged map.

    ``merged`` maps are blurred and normalised to [-1, 1]; all maps are (s, s) in the aligned faces'
    coordinates, keyed by patch size in reference pixels.
    """

    method: int
    raw1: dict[int, np.ndarray]
    raw2: dict[int, np.ndarray]
    merged1: np.ndarray
    merged2: np.ndarray


Distances = tuple[np.ndarray, np.ndarray]


def method1_distances(
    occluded1: np.ndarray, occluded2: np.ndarray, original1: np.ndarray, original2: np.ndarray
) -> Distances:
    """Eq. 6: row and column means of all cosine distances between two sets of occluded embeddings."""
    matrix = cosine_distance_matrix(occluded1, occluded2)
    return matrix.mean(axis=1), matrix.mean(axis=0)


def method2_distances(
    occluded1: np.ndarray, occluded2: np.ndarray, original1: np.ndarray, original2: np.ndarray
) -> Distances:
    """Eq. 7: each occluded face against the other, unoccluded face."""
    return cosine_distance(occluded1, original2[None, :]), cosine_distance(original1[None, :], occluded2)


def method3_distances(
    occluded1: np.ndarray, occluded2: np.ndarray, original1: np.ndarray, original2: np.ndarray
) -> Distances:
    """Eq. 8: co-located occlusions of both faces; the same distances for both maps."""
    distances = cosine_distance(occluded1, occluded2)
    return distances, distances


#: A distance picker: (occluded 1, occluded 2, original 1, original 2) of one patch size -> (D1, D2).
DistancePicker = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Distances]


@dataclass(frozen=True)
class XMapMethod:
    """One registered X-Map method: its number, a short name, what it shows, and its distance picker."""

    number: int
    name: str
    description: str
    distances: DistancePicker

    @property
    def roman(self) -> str:
        """The method's number as the paper writes it (I, II, III, ...)."""
        return _roman(self.number)


def _roman(number: int) -> str:
    values = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = ""
    for value, letters in values:
        count, number = divmod(number, value)
        out += letters * count
    return out


#: The X-Map methods by number: the one place a method is added. The CLI's ``--methods``, the Python
#: API, ``xfv compute``, the store, the web API and the pages read their choices here when they run.
XMAP_METHODS: dict[int, XMapMethod] = {
    method.number: method
    for method in (
        XMapMethod(
            1,
            "every occlusion against every occlusion",
            "Every occlusion of one face against every occlusion of the other, averaged: what a region means "
            "to the pair whatever is hidden on the other side.",
            method1_distances,
        ),
        XMapMethod(
            2,
            "occluded against unoccluded",
            "Every occlusion of one face against the other, unoccluded face: the direct influence of each region.",
            method2_distances,
        ),
        XMapMethod(
            3,
            "co-located occlusions",
            "Co-located occlusions of both faces: how much the same region of both faces matters. "
            "Both maps are the same.",
            method3_distances,
        ),
    )
}


def all_methods() -> tuple[int, ...]:
    """The numbers of every registered method, in order: the default wherever methods are chosen."""
    return tuple(sorted(XMAP_METHODS))


def check_methods(methods: Iterable[int] | None = None) -> tuple[int, ...]:
    """The registered methods asked for, once each in the order given (None: all of them); the one
    validation of method numbers, :class:`MethodError` naming the registered methods otherwise."""
    if methods is None:
        return all_methods()
    asked = list(methods)
    try:
        chosen = tuple(dict.fromkeys(int(m) for m in asked))
    except (TypeError, ValueError):
        chosen = ()
    if not chosen or any(m not in XMAP_METHODS for m in chosen):
        raise MethodError(f"X-Map methods must be among {', '.join(map(str, all_methods()))}, got {asked}")
    return chosen


def deviations_from(distances: np.ndarray, d_orig: float) -> np.ndarray:
    """d_i - d_orig, with rounding-level changes set to 0 (so an unaffected model gives a zero map)."""
    deviations = np.asarray(distances, dtype=np.float64) - d_orig
    return np.where(np.abs(deviations) <= DEVIATION_TOLERANCE, 0.0, deviations)


def similarity_map(deviations: np.ndarray, grid: PatchGrid, coverage_normalised: bool = False) -> np.ndarray:
    """Eq. 9, sum_i deviation_i M_i / N over one patch size's masks.

    Coverage-normalised: divided per pixel by sum_i M_i instead of N (0 where no mask reaches).
    """
    total = grid.accumulate(deviations)
    if not coverage_normalised:
        return total / len(deviations)
    return np.divide(total, grid.coverage, out=np.zeros_like(total), where=grid.coverage > 0)


def merge_maps(maps: dict[int, np.ndarray], coverage_normalised: bool = False) -> np.ndarray:
    """Eq. 10, sum_p S_p / (p^2 |P|); a plain mean for coverage-normalised maps.

    The paper's 1/p^2 compensates for coverage growing with the patch area under 1/N (inside the
    face, S_p ~ (p / stride)^2 / N_p * mean deviation); maps already divided by their coverage need
    no such weight, and a plain mean weights patch sizes about as the paper does there.
    """
    if coverage_normalised:
        return np.mean(list(maps.values()), axis=0)
    return np.sum([s_p / p**2 for p, s_p in maps.items()], axis=0) / len(maps)


def smooth(similarity: np.ndarray, stride_px: float) -> np.ndarray:
    """Gaussian blur against raster artefacts: kernel and sigma = stride in the map's pixels.

    The reference blurs 112x112 maps with kernel 5 and sigma 5; at 150x150 the stride is 6.7 px,
    so sigma 6.7 and kernel 7 (kernels are odd).
    """
    kernel = int(round_half_up(stride_px)) | 1
    return cv2.GaussianBlur(similarity, (kernel, kernel), stride_px)


def normalise_map(similarity: np.ndarray) -> np.ndarray:
    """Scale to [-1, 1] by max |S|; an all-zero map stays zero."""
    peak = float(np.max(np.abs(similarity)))
    return similarity / peak if peak > 0 else np.zeros_like(similarity)


def compute_xmaps(
    method: int,
    emb1: OcclusionEmbeddings,
    emb2: OcclusionEmbeddings,
    plan: OcclusionPlan,
    coverage_normalised: bool = False,
    smoothing: bool = True,
) -> MethodMaps:
    """One method's X-Maps for a pair from both faces' occlusion embeddings under ``plan``."""
    (number,) = check_methods([method])
    picker = XMAP_METHODS[number].distances
    for emb in (emb1, emb2):
        if len(emb.occluded) != len(plan):
            raise ValueError(f"expected {len(plan)} occlusion embeddings per face, got {len(emb.occluded)}")
    d_orig = float(cosine_distance(emb1.original, emb2.original))
    raw1: dict[int, np.ndarray] = {}
    raw2: dict[int, np.ndarray] = {}
    for grid in plan.grids:
        rows = slice(plan.segments[grid.patch_size].start, plan.segments[grid.patch_size].stop)
        d1, d2 = picker(emb1.occluded[rows], emb2.occluded[rows], emb1.original, emb2.original)
        raw1[grid.patch_size] = similarity_map(deviations_from(d1, d_orig), grid, coverage_normalised)
        if d2 is d1:  # method 3: one set of distances, one map
            raw2[grid.patch_size] = raw1[grid.patch_size]
        else:
            raw2[grid.patch_size] = similarity_map(deviations_from(d2, d_orig), grid, coverage_normalised)
    stride_px = plan.settings.stride * plan.scale
    merged = [merge_maps(raw, coverage_normalised) for raw in (raw1, raw2)]
    if smoothing:
        merged = [smooth(m, stride_px) for m in merged]
    return MethodMaps(number, raw1, raw2, normalise_map(merged[0]), normalise_map(merged[1]))


__all__ = [
    "XMAP_METHODS",
    "DistancePicker",
    "XMapMethod",
    "all_methods",
    "check_methods",
    "OcclusionEmbeddings",
    "MethodMaps",
    "DEVIATION_TOLERANCE",
    "compute_xmaps",
    "deviations_from",
    "merge_maps",
    "method1_distances",
    "method2_distances",
    "method3_distances",
    "normalise_map",
    "similarity_map",
    "smooth",
]
