"""Embedding images with the on-disk cache: each image is aligned and embedded once per model.

:func:`embed_photos` also returns each photo's :class:`~xfv.faces.FaceReport` (faces found, the
one used, warnings), cached beside the embedding as JSON bytes; :func:`embed_paths` only embeds.
"""

from __future__ import annotations

import json
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
from xfv.faces import AlignedFace, FaceChoice, FaceReport, align_photo
from xfv.models.base import FaceModel, ModelSpec

ALIGN_BATCH = 64
#: Fewer new images than this are aligned in this process (a worker pool costs ~1 s to start).
PARALLEL_FROM = 32


def embedding_key(model: FaceModel, mode: str, image_hash: str, face: FaceChoice = "auto") -> str:
    """Cache key of one image's embedding: content, model weights, alignment, input mode and,
    unless it is the default, the face choice."""
    spec = model.spec
    choice = "" if face == "auto" else f"/face={face}"
    return f"embedding:{spec.cache_key}:{spec.alignment}{spec.input_size}:{mode}{choice}:{image_hash}"


def _report_key(key: str) -> str:
    return "face-report:" + key


def _report_array(report: FaceReport | None) -> np.ndarray:
    data = json.dumps(report.to_dict() if report else None).encode()
    return np.frombuffer(data, dtype=np.uint8)


def _report_of(array: np.ndarray) -> FaceReport | None:
    data = json.loads(array.tobytes().decode())
    return FaceReport.from_dict(data) if data else None


def image_file_hash(path: Path) -> str:
    """SHA-256 of an image file's bytes; ``ImageError`` naming the file if it cannot be read."""
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
    """Embeddings (n, d) of the images at ``paths`` in order, of each photo's default face."""
    return _embed(paths, model, mode, ["auto"] * len(paths), progress, cache, with_reports=False)[0]


def embed_photos(
    paths: Sequence[Path],
    model: FaceModel,
    mode: str = "detect",
    faces: Sequence[FaceChoice] | None = None,
    progress: bool = True,
    cache: ArrayCache | None = None,
) -> tuple[np.ndarray, list[FaceReport | None]]:
    """Embeddings (n, d) of the chosen face of each photo (``faces``, default ``auto``) and its
    face report (None in ``aligned`` mode)."""
    return _embed(paths, model, mode, list(faces or ["auto"] * len(paths)), progress, cache, with_reports=True)


def _embed(
    paths: Sequence[Path],
    model: FaceModel,
    mode: str,
    faces: list[FaceChoice],
    progress: bool,
    cache: ArrayCache | None,
    with_reports: bool,
) -> tuple[np.ndarray, list[FaceReport | None]]:
    """Cached embeddings (and reports) are only read; new ones are written batch by batch, so an
    interrupted run keeps its work."""
    cache = cache or default_cache()
    keys = [embedding_key(model, mode, image_file_hash(path), face) for path, face in zip(paths, faces)]
    wanted = [*keys, *map(_report_key, keys)] if with_reports else keys
    found = cache.get_many(wanted)
    missing: dict[str, tuple[Path, FaceChoice]] = {}
    for key, path, face in zip(keys, paths, faces):
        if key not in found or (with_reports and _report_key(key) not in found):
            missing.setdefault(key, (Path(path), face))
    items = list(missing.items())
    with tqdm(
        total=len(items), desc=f"embedding ({model.spec.name})", unit="img", disable=not progress or not items
    ) as bar:
        paths_and_faces = [path_and_face for _, path_and_face in items]
        aligned = aligned_faces(paths_and_faces, model.spec, mode, assess=with_reports)
        for start in range(0, len(items), ALIGN_BATCH):
            batch = [(key, next(aligned)) for key, _ in items[start : start + ALIGN_BATCH]]
            embeddings = model.embed(np.stack([photo.face for _, photo in batch]))
            new = {key: embedding for (key, _), embedding in zip(batch, embeddings)}
            if with_reports:
                new.update({_report_key(key): _report_array(photo.report) for key, photo in batch})
            cache.put_many(new)
            found.update(new)
            bar.update(len(batch))
    if not keys:
        return np.empty((0, model.spec.embedding_size), np.float32), []
    reports: list[FaceReport | None] = (
        [_report_of(found[_report_key(key)]) for key in keys] if with_reports else [None] * len(keys)
    )
    return np.stack([found[key] for key in keys]), reports


def aligned_faces(
    photos: Sequence[tuple[Path, FaceChoice]], spec: ModelSpec, mode: str, assess: bool
) -> Iterator[AlignedFace]:
    """Aligned faces of ``photos`` (path, face choice) in order; many images are aligned by a pool
    of ``XFV_ALIGN_WORKERS`` processes (dlib's detectors hold the GIL) while this process embeds."""
    align = partial(_align, spec=spec, mode=mode, assess=assess)
    workers = get_settings().align_workers
    if len(photos) < PARALLEL_FROM or workers < 2:
        yield from map(align, photos)
        return
    with _process_pool(workers) as pool:
        yield from pool.map(align, photos, chunksize=8)


def _align(photo: tuple[Path, FaceChoice], spec: ModelSpec, mode: str, assess: bool) -> AlignedFace:
    return align_photo(photo[0], spec, mode, photo[1], assess)


@contextmanager
def _process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)
