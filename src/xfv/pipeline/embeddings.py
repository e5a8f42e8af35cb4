"""Embedding images with the on-disk cache: each image is aligned and embedded once per model."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from xfv.cache import ArrayCache, content_hash, default_cache
from xfv.config import get_settings
from xfv.errors import ImageError
from xfv.faces import align_path
from xfv.models.base import FaceModel, ModelSpec

ALIGN_BATCH = 64
#: Fewer new images than this are aligned in this process (a worker pool costs ~1 s to start).
PARALLEL_FROM = 32


def embedding_key(model: FaceModel, mode: str, image_hash: str) -> str:
    """Cache key of one image's embedding: content, model weights, alignment and input mode."""
    spec = model.spec
    return f"embedding:{spec.cache_key}:{spec.alignment}{spec.input_size}:{mode}:{image_hash}"


def _hash_file(path: Path) -> str:
    try:
        return content_hash(Path(path).read_bytes())
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def embed_paths(
    paths: Sequence[Path],
    model: FaceModel,
    mode: str = "detect",
    progress: bool = True,
    cache: ArrayCache | None = None,
) -> np.ndarray:
    """Embeddings (n, d) of the images at ``paths`` in order; cached ones are only read.

    New embeddings are written to the cache batch by batch, so an interrupted run keeps its work.
    """
    cache = cache or default_cache()
    keys = [embedding_key(model, mode, _hash_file(path)) for path in paths]
    found = cache.get_many(keys)
    missing = list(dict((key, Path(path)) for key, path in zip(keys, paths) if key not in found).items())
    with tqdm(total=len(missing), desc=f"embedding ({model.spec.name})", unit="img", disable=not progress or not missing) as bar:
        faces = aligned_faces([path for _, path in missing], model.spec, mode)
        for start in range(0, len(missing), ALIGN_BATCH):
            batch = missing[start : start + ALIGN_BATCH]
            embeddings = model.embed(np.stack([next(faces) for _ in batch]))
            new = {key: embedding for (key, _), embedding in zip(batch, embeddings)}
            cache.put_many(new)
            found.update(new)
            bar.update(len(batch))
    return np.stack([found[key] for key in keys]) if keys else np.empty((0, model.spec.embedding_size), np.float32)


def aligned_faces(paths: Sequence[Path], spec: ModelSpec, mode: str) -> Iterator[np.ndarray]:
    """Aligned faces of ``paths`` in order; many images are aligned by a pool of
    ``XFV_ALIGN_WORKERS`` processes (dlib's detectors hold the GIL) while this process embeds."""
    align = partial(align_path, spec=spec, mode=mode)
    workers = get_settings().align_workers
    if len(paths) < PARALLEL_FROM or workers < 2:
        yield from map(align, paths)
        return
    with _process_pool(workers) as pool:
        yield from pool.map(align, paths, chunksize=8)


@contextmanager
def _process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)
