"""Image quality of many files (:mod:`xfv.faces.quality`), cached by content like embeddings.

The quality-aware C-Score and the cross-quality set's generator need the score of thousands of
images; each is measured once per input mode and kept in the array cache under its file's SHA-256.
A single pair's quality (:func:`pair_quality`), for the C-Score of a new pair, is measured the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from xfv.cache import ArrayCache, default_cache
from xfv.datasets import PairList
from xfv.faces import FaceChoice, load_image
from xfv.faces.quality import QUALITY_VERSION, image_quality
from xfv.pipeline.embeddings import image_file_hash

#: Scores written to the cache per transaction.
CACHE_BATCH = 256


def quality_key(mode: str, image_hash: str) -> str:
    """Cache key of an image's quality score: score version, input mode and content."""
    return f"quality:v{QUALITY_VERSION}:{mode}:{image_hash}"


def image_qualities(
    paths: Sequence[Path], mode: str, progress: bool = False, cache: ArrayCache | None = None
) -> np.ndarray:
    """The quality score in [0, 1] of each image at ``paths`` (faces found as ``mode`` says)."""
    cache = cache or default_cache()
    keys = [quality_key(mode, image_file_hash(path)) for path in paths]
    found = cache.get_many(keys)
    missing = {key: Path(path) for key, path in zip(keys, paths) if key not in found}
    items = list(missing.items())
    with tqdm(total=len(items), desc="image quality", unit="img", disable=not progress or not items) as bar:
        for start in range(0, len(items), CACHE_BATCH):
            new = {
                key: np.array([image_quality(load_image(path), mode).score])
                for key, path in items[start : start + CACHE_BATCH]
            }
            cache.put_many(new)
            found.update(new)
            bar.update(len(new))
    return np.array([float(found[key][0]) for key in keys], dtype=np.float64)


def pair_qualities(pairs: PairList, mode: str, progress: bool = False) -> np.ndarray:
    """(n, 2): the quality of both images of every pair (each image measured once)."""
    images = pairs.unique_images()
    index = {path: i for i, path in enumerate(images)}
    scores = image_qualities(images, mode, progress)
    return np.array([[scores[index[p.image1]], scores[index[p.image2]]] for p in pairs.pairs]).reshape(-1, 2)


def pair_quality(
    faces: Sequence[np.ndarray | Path], mode: str, choices: Sequence[FaceChoice] = ("auto", "auto")
) -> float:
    """A pair's quality as quality-aware calibrations are fitted on it: the lower of its two images'
    scores, a photo's taken on its chosen face as ``mode`` finds it, an aligned face's on the whole face."""
    return min(
        image_quality(face).score
        if isinstance(face, np.ndarray)
        else image_quality(load_image(face), mode, choice).score
        for face, choice in zip(faces, choices)
    )
