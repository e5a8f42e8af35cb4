"""Do X-Maps point at what drives the model? Cut-and-paste and deletion checks with a real model.

- Cut-and-paste (paper 4.3): the eye region (separately: the mouth region) of face 2 of an impostor
  pair is pasted into face 1 at the same place of the aligned faces. On the pasted pair's method-3
  map, "pointing" counts pairs whose pasted region has a higher mean than the rest of the face;
  "rise" counts pairs whose pasted region has a higher mean than the same region in the unmodified
  pair's map.
- Deletion: on genuine pairs, pixels are blacked out (in both faces, co-located as method 3
  measures) in the order the merged map ranks them, most similar first, and in a random order;
  "faster" counts pairs whose distance rises more (larger area under the distance curve) for the
  map's order.

Regions are fixed boxes on dlib's 150x150 face chip (padding 0.25), scaled for other input sizes
(for models with another alignment they are only approximate): aligned chips put eyes and mouth at
nearly fixed places, and the boxes (with a few pixels of margin) come from the mean 68-point
landmarks of 150 LFW deep-funneled chips (brows x 24..123, y 25..38; eyes x 37..110, y 43..50;
mouth x 49..97, y 97..117; per-point spread 3 to 5 px). The eye region is the band of eyes and
brows: dlib's model leans on the brows, and a band of the eyes alone (y 35..60) gives 55 to 65%
pointing where eyes and brows give 95 to 100%.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xfv.datasets import Pair, read_protocol
from xfv.faces import align_path
from xfv.method.distances import cosine_distance
from xfv.models import FaceModel
from xfv.pipeline.explain import OcclusionEngine, explain_pair

#: Boxes (left, top, right, bottom) on a 150x150 dlib face chip.
CHIP_SIZE = 150
REGIONS = {"eyes": (24, 24, 126, 62), "mouth": (42, 90, 106, 125)}
FACE_BOX = (15, 20, 135, 145)
DELETION_FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


def region_mask(box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Boolean (size, size) mask of a chip box scaled to ``size``."""
    left, top, right, bottom = (round(v * size / CHIP_SIZE) for v in box)
    mask = np.zeros((size, size), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def paste(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``target`` with the pixels under ``mask`` copied from ``source`` (same place in both faces)."""
    pasted = target.copy()
    pasted[mask] = source[mask]
    return pasted


def select_pairs(root: Path, same: bool, count: int) -> list[Pair]:
    """``count`` LFW pairs of one kind, spread over the ten folds (the first ones of each fold)."""
    pairs = [pair for pair in read_protocol("lfw", root).pairs if pair.same == same]
    by_fold = [[pair for pair in pairs if pair.fold == fold] for fold in range(10)]
    spread = [fold_pairs[i] for i in range(max(map(len, by_fold))) for fold_pairs in by_fold if i < len(fold_pairs)]
    return spread[:count]


def aligned_pairs(pairs: Sequence[Pair], model: FaceModel) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Aligned faces of LFW deep-funneled pairs (input mode ``lfw-funneled``)."""
    for pair in pairs:
        yield align_path(pair.image1, model.spec, "lfw-funneled"), align_path(pair.image2, model.spec, "lfw-funneled")


@dataclass(frozen=True)
class PasteResult:
    """One pasted pair: mean method-3 map values in and around the region, before and after pasting."""

    region_mean: float
    rest_mean: float
    unmodified_region_mean: float

    @property
    def pointing(self) -> bool:
        return self.region_mean > self.rest_mean

    @property
    def rise(self) -> bool:
        return self.region_mean > self.unmodified_region_mean


def paste_check(face1: np.ndarray, face2: np.ndarray, region: str, engine: OcclusionEngine) -> PasteResult:
    """Method-3 maps of (face 1 with face 2's region pasted, face 2) and of the unmodified pair."""
    size = engine.model.spec.input_size
    mask, face = region_mask(REGIONS[region], size), region_mask(FACE_BOX, size)
    unmodified = explain_pair(face1, face2, engine.model, methods=(3,), engine=engine).maps[3].merged1
    pasted = explain_pair(paste(face1, face2, mask), face2, engine.model, methods=(3,), engine=engine).maps[3].merged1
    return PasteResult(float(pasted[mask].mean()), float(pasted[face & ~mask].mean()), float(unmodified[mask].mean()))


def deletion_curve(
    face1: np.ndarray, face2: np.ndarray, order: np.ndarray, model: FaceModel, fractions: Sequence[float]
) -> np.ndarray:
    """Distances of the pair after blacking out the first fraction of pixels in ``order`` (flat indices)."""
    deleted = []
    for fraction in fractions:
        hidden = np.zeros(face1.shape[:2], dtype=bool)
        hidden.flat[order[: int(round(fraction * order.size))]] = True
        deleted.extend([np.where(hidden[..., None], 0, face1), np.where(hidden[..., None], 0, face2)])
    embeddings = model.embed(np.stack(deleted).astype(np.uint8))
    return cosine_distance(embeddings[0::2], embeddings[1::2])


def deletion_check(
    face1: np.ndarray,
    face2: np.ndarray,
    engine: OcclusionEngine,
    seed: int,
    fractions: Sequence[float] = DELETION_FRACTIONS,
) -> tuple[float, float]:
    """Area under the distance curve when deleting in the merged map's order and in a random order."""
    merged = explain_pair(face1, face2, engine.model, methods=(3,), engine=engine).maps[3].merged1
    by_map = np.argsort(-merged.ravel(), kind="stable")
    at_random = np.random.default_rng(seed).permutation(merged.size)
    curves = [deletion_curve(face1, face2, order, engine.model, fractions) for order in (by_map, at_random)]
    return float(np.mean(curves[0])), float(np.mean(curves[1]))


def paste_rates(pairs: Sequence[Pair], engine: OcclusionEngine, progress: Callable[[str], None] = print) -> dict:
    """Pointing and rise rates per region over impostor ``pairs``."""
    results: dict[str, list[PasteResult]] = {region: [] for region in REGIONS}
    for index, (face1, face2) in enumerate(aligned_pairs(pairs, engine.model)):
        for region in REGIONS:
            results[region].append(paste_check(face1, face2, region, engine))
        progress(
            f"paste {index + 1}/{len(pairs)}: "
            + ", ".join(f"{region} pointing {r[-1].pointing} rise {r[-1].rise}" for region, r in results.items())
        )
    return {
        region: {
            "pairs": len(found),
            "pointing_rate": float(np.mean([r.pointing for r in found])),
            "rise_rate": float(np.mean([r.rise for r in found])),
        }
        for region, found in results.items()
    }


def deletion_rate(pairs: Sequence[Pair], engine: OcclusionEngine, progress: Callable[[str], None] = print) -> dict:
    """Share of genuine ``pairs`` whose distance rises faster deleting by the map than at random."""
    areas = []
    for index, (face1, face2) in enumerate(aligned_pairs(pairs, engine.model)):
        areas.append(deletion_check(face1, face2, engine, seed=index))
        progress(f"deletion {index + 1}/{len(pairs)}: map {areas[-1][0]:.4f} random {areas[-1][1]:.4f}")
    by_map, at_random = np.array(areas).T
    return {
        "pairs": len(areas),
        "faster_rate": float(np.mean(by_map > at_random)),
        "mean_area_map": float(by_map.mean()),
        "mean_area_random": float(at_random.mean()),
    }
