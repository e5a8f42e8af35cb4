"""The one small interface every embedding backend implements.

A model is a function from a batch of aligned face images to embeddings. It declares its name,
the side of the square face it takes, its embedding size and the alignment it expects, so the
rest of xfv (faces, method, pipeline) never needs to know which backend runs underneath.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Alignments a model may ask for (see :mod:`xfv.faces.align`).
ALIGNMENTS = ("dlib", "arcface", "arcface-loose")

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and what it expects.

    ``alignment`` is ``"dlib"`` (dlib's 5-point face chip, padding 0.25), ``"arcface"`` (the
    usual ArcFace 5-point template) or ``"arcface-loose"`` (that template zoomed out to 0.85). ``default_threshold`` is a cosine-distance threshold, and
    ``threshold_source`` says where it came from. ``calibration`` is a saved calibrator (see
    :mod:`xfv.method.calibration`) fitted on a validation set, so a new pair gets a C-Score.
    """

    name: str
    input_size: int
    embedding_size: int
    alignment: str
    description: str = ""
    weights_hash: str = ""
    default_threshold: float | None = None
    threshold_source: str = ""
    calibration: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cache_key(self) -> str:
        """Identifies the model's weights, for caches of its outputs."""
        return f"{self.name}@{self.weights_hash}" if self.weights_hash else self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaceModel(ABC):
    """An embedding backend: aligned faces in, embeddings out."""

    spec: ModelSpec
    #: How many faces one call of :meth:`embed_batch` should take for good throughput.
    batch_size: int = 32
    #: How many changed copies of a face one call of :meth:`embed_changed_batch` should take.
    changed_batch_size: int = 32

    @abstractmethod
    def embed_batch(self, faces: np.ndarray) -> np.ndarray:
        """Embed ``faces`` (n, s, s, 3) uint8 RGB, s = ``spec.input_size``; returns (n, d) float32."""

    def embed_changed_batch(self, face: np.ndarray, faces: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embed ``faces``, copies of ``face`` that differ from it only inside ``boxes`` ((n, 4) rows
        y0, y1, x0, x1, ends exclusive). Backends that can reuse the unchanged parts (incremental
        inference) override this; by default every face is embedded in full."""
        return self.embed_batch(faces)

    def prepare_changed(self, boxes: np.ndarray) -> None:  # noqa: B027 (optional hook, not abstract)
        """Get ready for a batch of changed copies within ``boxes`` (build what the first call would
        build), so a warm process's first explanation costs only its passes; nothing to do by default."""

    def embed(self, faces: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        """Embed any number of faces in batches of :attr:`batch_size`, reporting progress."""
        return self._batched(self._check_faces(faces), lambda batch, rows: self.embed_batch(batch), progress)

    def embed_changed(
        self, face: np.ndarray, faces: np.ndarray, boxes: np.ndarray, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """:meth:`embed_changed_batch` for any number of changed copies of ``face``, in batches."""
        boxes = np.asarray(boxes, dtype=np.int64)
        if boxes.shape != (len(faces), 4):
            raise ValueError(f"expected one box (y0, y1, x0, x1) per face, got shape {boxes.shape}")
        face = self._check_faces(np.asarray(face)[None])[0]
        faces = self._check_faces(faces)
        return self._batched(
            faces,
            lambda batch, rows: self.embed_changed_batch(face, batch, boxes[rows]),
            progress,
            self.changed_batches(len(faces)),
        )

    def changed_batches(self, count: int) -> list[slice]:
        """The batches :meth:`embed_changed` makes of ``count`` faces: as few as
        :attr:`changed_batch_size` allows, of equal sizes (no small remainder batch)."""
        parts = max(1, -(-count // self.changed_batch_size))
        bounds = np.cumsum([0] + [count // parts + (i < count % parts) for i in range(parts)])
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _check_faces(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        size = self.spec.input_size
        if faces.ndim != 4 or faces.shape[1:] != (size, size, 3) or faces.dtype != np.uint8:
            raise ValueError(
                f"{self.spec.name} takes uint8 faces of shape (n, {size}, {size}, 3), got {faces.dtype} {faces.shape}"
            )
        return faces

    def _batched(
        self,
        faces: np.ndarray,
        embed: Callable[[np.ndarray, slice], np.ndarray],
        progress: ProgressCallback | None,
        batches: list[slice] | None = None,
    ) -> np.ndarray:
        """``embed(batch, rows)`` over ``batches`` (default: of :attr:`batch_size` rows), into one array."""
        if batches is None:
            size = self.batch_size
            batches = [slice(start, min(start + size, len(faces))) for start in range(0, len(faces), size)]
        out = np.empty((len(faces), self.spec.embedding_size), dtype=np.float32)
        for rows in batches:
            out[rows] = embed(faces[rows], rows)
            if progress is not None:
                progress(rows.stop - rows.start)
        return out
