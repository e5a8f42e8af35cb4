"""X-Maps of a face pair: occlusion embeddings computed once per face, cached, shared by all methods.

:class:`OcclusionEngine` embeds a face and its N occluded copies (N + 1 forward passes) and keeps
them in the :class:`~xfv.cache.ArrayCache`, keyed by the aligned face's bytes, the model and the
occlusion settings, so every method and every pair that shares a face reuses them.
:func:`explain_pair` turns two faces into an :class:`Explanation`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from xfv.cache import ArrayCache, content_hash, default_cache
from xfv.errors import MethodError, XfvError
from xfv.method.calibration import Calibrator
from xfv.method.colour import DEFAULT_COLOURMAP, colour_map, overlay, xmap_image
from xfv.method.distances import cosine_distance
from xfv.method.occlusion import OcclusionPlan, OcclusionSettings
from xfv.method.xmaps import MethodMaps, OcclusionEmbeddings, check_methods, compute_xmaps
from xfv.models.base import FaceModel, ProgressCallback
from xfv.pipeline.verify import confidence_of, quality_for, resolve_calibrator

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: How :meth:`Explanation.image` draws a map: the paper's blend (Algorithm 2), a heat-map overlay
#: (half face, half coloured map), or the coloured map alone.
Style = Literal["blend", "heat", "map"]
STYLES: tuple[Style, ...] = ("blend", "heat", "map")

#: Occluded faces generated and embedded at a time (bounds memory, 34 MB of dlib faces): a whole
#: patch size's occlusions at the paper's settings, so its batches are of equal sizes.
OCCLUSION_CHUNK = 512


class OcclusionEngine:
    """Occlusion embeddings of faces for one model and one set of occlusion settings.

    ``forward_passes`` counts the faces this engine actually sent through the model.
    """

    def __init__(
        self,
        model: FaceModel,
        settings: OcclusionSettings | None = None,
        cache: ArrayCache | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.model = model
        self.settings = settings or OcclusionSettings()
        self.plan = OcclusionPlan(self.settings, model.spec.input_size)
        self.cache = cache or default_cache()
        self.progress = progress
        self.forward_passes = 0

    def cache_key(self, face: np.ndarray) -> str:
        """Key of a face's occlusion embeddings: face bytes, model weights, occlusion settings."""
        face = self._check_face(face)
        return f"occlusion:{self.model.spec.cache_key}:{content_hash(face.tobytes())}:{self.settings.cache_key()}"

    def is_cached(self, face: np.ndarray) -> bool:
        return self.cache.get(self.cache_key(face)) is not None

    def embeddings(self, face: np.ndarray) -> OcclusionEmbeddings:
        """The face's unoccluded and N occluded embeddings, from the cache or N + 1 forward passes."""
        stored = self.cached(face)
        if stored is None:
            rows = self.new_rows(face)
            for patch_size in self.level_order:
                self.compute_level(face, patch_size, rows)
            stored = self.store(face, rows)
        return stored

    def cached(self, face: np.ndarray) -> OcclusionEmbeddings | None:
        stored = self.cache.get(self.cache_key(face))
        return None if stored is None else OcclusionEmbeddings(original=stored[0], occluded=stored[1:])

    @property
    def level_order(self) -> tuple[int, ...]:
        """Patch sizes from the largest (fewest occlusions, the coarse map) to the smallest."""
        return tuple(sorted(self.settings.patch_sizes, reverse=True))

    def new_rows(self, face: np.ndarray) -> np.ndarray:
        """An (N + 1, d) array for one face's embeddings, the unoccluded one computed (row 0)."""
        rows = np.full((len(self.plan) + 1, self.model.spec.embedding_size), np.nan, dtype=np.float32)
        rows[0] = self._embed(face[None])[0]
        return rows

    def compute_level(self, face: np.ndarray, patch_size: int, rows: np.ndarray) -> None:
        """Fill the rows of one patch size's occlusions (plan order, offset by the unoccluded row)."""
        segment = self.plan.segments[patch_size]
        for start in range(segment.start, segment.stop, OCCLUSION_CHUNK):
            stop = min(start + OCCLUSION_CHUNK, segment.stop)
            occluded = self.plan.occluded(face, start, stop)
            rows[start + 1 : stop + 1] = self.model.embed_changed(
                face, occluded, self.plan.boxes(start, stop), self.progress
            )
            self.forward_passes += stop - start

    def warm_up(self) -> None:
        """Build everything the batches of :meth:`compute_level` need (sessions of incremental
        inference), so the first explanation of a warm process costs only its passes."""
        for patch_size in self.level_order:
            segment = self.plan.segments[patch_size]
            for chunk in range(segment.start, segment.stop, OCCLUSION_CHUNK):
                boxes = self.plan.boxes(chunk, min(chunk + OCCLUSION_CHUNK, segment.stop))
                for rows in self.model.changed_batches(len(boxes)):
                    self.model.prepare_changed(boxes[rows])

    def store(self, face: np.ndarray, rows: np.ndarray) -> OcclusionEmbeddings:
        """Cache a face's complete rows (see :meth:`new_rows`) and return them as embeddings."""
        self.cache.put(self.cache_key(face), rows)
        return OcclusionEmbeddings(original=rows[0], occluded=rows[1:])

    def _embed(self, faces: np.ndarray) -> np.ndarray:
        embeddings = self.model.embed(faces, self.progress)
        self.forward_passes += len(faces)
        return embeddings

    def _check_face(self, face: np.ndarray) -> np.ndarray:
        face = np.asarray(face)
        size = self.model.spec.input_size
        if face.shape != (size, size, 3) or face.dtype != np.uint8:
            raise XfvError(
                f"{self.model.spec.name} needs an aligned uint8 RGB face of shape ({size}, {size}, 3), "
                f"got {face.dtype} {face.shape}"
            )
        return face


@dataclass(repr=False)
class Explanation:
    """X-Maps of one pair: per method the raw and merged maps; pictures are drawn on request.

    ``same`` is the decision (genuine iff distance <= threshold; None without a threshold);
    ``confidence`` the C-Score of that decision (None when neither the caller nor the model has a
    calibration); ``quality`` the pair's quality where that C-Score depends on it.
    """

    aligned1: np.ndarray
    aligned2: np.ndarray
    model_name: str
    settings: OcclusionSettings
    distance: float
    threshold: float | None
    same: bool | None
    confidence: float | None
    maps: dict[int, MethodMaps]
    forward_passes: int
    coverage_normalised: bool = False
    colourmap: str = DEFAULT_COLOURMAP
    quality: float | None = None

    def __repr__(self) -> str:
        return f"Explanation({self.title()}; methods {', '.join(map(str, sorted(self.maps)))})"

    def title(self) -> str:
        """One line: model, distance, threshold and decision, C-Score."""
        parts = [f"{self.model_name}: distance {self.distance:.4f}"]
        if self.threshold is not None:
            parts.append(f"threshold {self.threshold:.4f} -> {self.decision}")
        if self.confidence is not None:
            at_quality = "" if self.quality is None else f" at pair quality {self.quality:.3f}"
            parts.append(f"C-Score {100 * self.confidence:.1f}%{at_quality}")
        return ", ".join(parts)

    def image(self, method: int, which: int = 1, style: Style = "blend") -> np.ndarray:
        """The X-Map of face ``which`` (1 or 2) for ``method`` as uint8 RGB, drawn in ``style``."""
        (method,) = check_methods([method])
        if method not in self.maps:
            raise MethodError(f"this explanation holds X-Map methods {sorted(self.maps)}, not method {method}")
        if which not in (1, 2):
            raise XfvError(f"which face: 1 or 2, got {which!r}")
        if style not in STYLES:
            raise XfvError(f"unknown style {style!r}: use one of {', '.join(STYLES)}")
        face = self.aligned1 if which == 1 else self.aligned2
        similarity = self.maps[method].merged1 if which == 1 else self.maps[method].merged2
        if style == "blend":
            return xmap_image(face, similarity, self.colourmap)
        if style == "heat":
            return overlay(face, similarity, colourmap=self.colourmap)
        return colour_map(similarity, self.colourmap)

    def figure(self, style: Style = "blend") -> Figure:
        """Both faces and their X-Maps side by side, titled with :meth:`title` (a matplotlib Figure)."""
        from xfv.plots import XMapDisplay

        return XMapDisplay.from_explanation(self, style=style).figure_

    @property
    def decision(self) -> str | None:
        """``"genuine"``, ``"impostor"``, or None without a threshold."""
        return None if self.same is None else ("genuine" if self.same else "impostor")

    def arrays(self) -> dict[str, np.ndarray]:
        """Aligned faces and maps by name: ``m{method}_img{1|2}_p{size}`` (eq. 9) and ``..._merged``."""
        arrays = {"aligned1": self.aligned1, "aligned2": self.aligned2}
        for method, maps in self.maps.items():
            for image, raw, merged in ((1, maps.raw1, maps.merged1), (2, maps.raw2, maps.merged2)):
                arrays.update({f"m{method}_img{image}_p{size}": values for size, values in raw.items()})
                arrays[f"m{method}_img{image}_merged"] = merged
        return arrays

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts: model, distance, threshold, decision, C-Score, cost, occlusion settings."""
        return {
            "model": self.model_name,
            "distance": self.distance,
            "threshold": self.threshold,
            "decision": self.decision,
            "confidence": self.confidence,
            "quality": self.quality,
            "methods": sorted(self.maps),
            "forward_passes": self.forward_passes,
            "occlusions_per_face": self.settings.count,
            "coverage_normalised": self.coverage_normalised,
            "settings": {
                "patch_sizes": list(self.settings.patch_sizes),
                "stride": self.settings.stride,
                "fill": self.settings.fill,
                "shape": self.settings.shape,
                "edge_blur_sigma": self.settings.edge_blur_sigma,
                "edge_blur_kernel": self.settings.edge_blur_kernel,
            },
        }


def _decision(
    distance: float, threshold: float | None, calibrator: Calibrator | None, model: FaceModel, quality: float | None
) -> tuple[float | None, bool | None, float | None]:
    """Threshold (given, else the model's), decision (genuine iff d <= t) and the C-Score of that decision."""
    if threshold is None:
        threshold = model.spec.default_threshold
    if threshold is None:
        return None, None, None
    return threshold, distance <= threshold, confidence_of(calibrator, distance, threshold, quality)


def explain_pair(
    face1: np.ndarray,
    face2: np.ndarray,
    model: FaceModel,
    methods: Sequence[int] | None = None,
    settings: OcclusionSettings | None = None,
    threshold: float | None = None,
    calibrator: Calibrator | None = None,
    *,
    quality: float | None = None,
    coverage_normalised: bool = False,
    smoothing: bool = True,
    colourmap: str = DEFAULT_COLOURMAP,
    engine: OcclusionEngine | None = None,
    cache: ArrayCache | None = None,
    progress: ProgressCallback | None = None,
) -> Explanation:
    """X-Maps of two aligned faces (uint8 RGB, the model's input size) for ``methods`` (default:
    every registered method).

    ``threshold`` defaults to the model's, ``calibrator`` (for the C-Score) to the one the model
    ships (:func:`~xfv.pipeline.verify.model_calibrator`); a quality-aware one scores at ``quality``
    (default: the aligned faces', :func:`~xfv.pipeline.quality.pair_quality`). Pass ``engine`` to share one engine (and
    its pass count) across pairs; otherwise one is built from ``model``, ``settings``, ``cache``
    and ``progress``.
    ``forward_passes`` in the result counts only this call's passes (0 when both faces were cached).
    """
    methods = check_methods(methods)
    engine = _engine_for(model, engine, settings, cache, progress)
    passes_before = engine.forward_passes
    emb1, emb2 = engine.embeddings(face1), engine.embeddings(face2)
    calibration = _calibration(model, calibrator, quality, (face1, face2))
    options = _MapOptions(model, methods, threshold, *calibration, coverage_normalised, smoothing, colourmap)
    return _explanation(face1, face2, emb1, emb2, engine.plan, options, engine.forward_passes - passes_before)


def explain_pair_progressively(
    face1: np.ndarray,
    face2: np.ndarray,
    model: FaceModel,
    methods: Sequence[int] | None = None,
    settings: OcclusionSettings | None = None,
    threshold: float | None = None,
    calibrator: Calibrator | None = None,
    *,
    quality: float | None = None,
    coverage_normalised: bool = False,
    smoothing: bool = True,
    colourmap: str = DEFAULT_COLOURMAP,
    engine: OcclusionEngine | None = None,
    cache: ArrayCache | None = None,
    progress: ProgressCallback | None = None,
) -> Iterator[Explanation]:
    """:func:`explain_pair` one patch-size level at a time, largest patches first.

    Yields an explanation after each level from the patch sizes done so far (the first after 289
    occlusions per face at 28 px with the defaults); the last one is :func:`explain_pair`'s result
    (the same embeddings, computed in the same batches). Faces already cached give only that one.
    Options as for :func:`explain_pair`.
    """
    methods = check_methods(methods)
    engine = _engine_for(model, engine, settings, cache, progress)
    passes_before = engine.forward_passes
    calibration = _calibration(model, calibrator, quality, (face1, face2))
    options = _MapOptions(model, methods, threshold, *calibration, coverage_normalised, smoothing, colourmap)
    cached = engine.cached(face1), engine.cached(face2)
    if cached[0] is None or cached[1] is None:
        rows = [engine.new_rows(face) if stored is None else None for face, stored in zip((face1, face2), cached)]
        done: list[int] = []
        for patch_size in engine.level_order[:-1]:
            for face, face_rows in zip((face1, face2), rows):
                if face_rows is not None:
                    engine.compute_level(face, patch_size, face_rows)
            done.append(patch_size)
            plan, partial = _partial_embeddings(engine, done, rows, cached)
            yield _explanation(face1, face2, *partial, plan, options, engine.forward_passes - passes_before)
        for face, face_rows in zip((face1, face2), rows):
            if face_rows is not None:
                engine.compute_level(face, engine.level_order[-1], face_rows)
                engine.store(face, face_rows)
    emb1, emb2 = engine.embeddings(face1), engine.embeddings(face2)
    yield _explanation(face1, face2, emb1, emb2, engine.plan, options, engine.forward_passes - passes_before)


def _partial_embeddings(
    engine: OcclusionEngine,
    done: list[int],
    rows: list[np.ndarray | None],
    cached: tuple[OcclusionEmbeddings | None, ...],
) -> tuple[OcclusionPlan, tuple[OcclusionEmbeddings, OcclusionEmbeddings]]:
    """The plan of the patch sizes done so far, and both faces' embeddings of just those occlusions."""
    sizes = tuple(p for p in engine.settings.patch_sizes if p in done)
    plan = OcclusionPlan(replace(engine.settings, patch_sizes=sizes), engine.plan.input_size)
    picked = np.concatenate([np.arange(s.start, s.stop) for p, s in engine.plan.segments.items() if p in done])
    embeddings = []
    for face_rows, stored in zip(rows, cached):
        if face_rows is not None:
            embeddings.append(OcclusionEmbeddings(original=face_rows[0], occluded=face_rows[1:][picked]))
        else:
            assert stored is not None
            embeddings.append(OcclusionEmbeddings(original=stored.original, occluded=stored.occluded[picked]))
    return plan, (embeddings[0], embeddings[1])


def _engine_for(
    model: FaceModel,
    engine: OcclusionEngine | None,
    settings: OcclusionSettings | None,
    cache: ArrayCache | None,
    progress: ProgressCallback | None,
) -> OcclusionEngine:
    engine = engine or OcclusionEngine(model, settings, cache, progress)
    if engine.model is not model:
        raise XfvError("the occlusion engine was built for another model")
    return engine


@dataclass(frozen=True)
class _MapOptions:
    """Everything an explanation takes besides the embeddings: model, methods, decision rule, maps."""

    model: FaceModel
    methods: tuple[int, ...]
    threshold: float | None
    calibrator: Calibrator | None
    quality: float | None
    coverage_normalised: bool
    smoothing: bool
    colourmap: str


def _calibration(
    model: FaceModel, calibrator: Calibrator | None, quality: float | None, faces: tuple[np.ndarray, np.ndarray]
) -> tuple[Calibrator | None, float | None]:
    """The calibration (given and checked, else the model's) and, where its C-Score depends on it,
    the pair's quality (given, else the aligned faces'): resolved before any pass."""
    calibrator = resolve_calibrator(calibrator, model)
    return calibrator, quality_for(calibrator, quality, faces)


def _explanation(
    face1: np.ndarray,
    face2: np.ndarray,
    emb1: OcclusionEmbeddings,
    emb2: OcclusionEmbeddings,
    plan: OcclusionPlan,
    options: _MapOptions,
    forward_passes: int,
) -> Explanation:
    """Maps and decision of one pair from both faces' occlusion embeddings under ``plan``."""
    o = options
    distance = float(cosine_distance(emb1.original, emb2.original))
    threshold, same, confidence = _decision(distance, o.threshold, o.calibrator, o.model, o.quality)
    maps = {m: compute_xmaps(m, emb1, emb2, plan, o.coverage_normalised, o.smoothing) for m in o.methods}
    return Explanation(
        aligned1=np.asarray(face1),
        aligned2=np.asarray(face2),
        model_name=o.model.spec.name,
        settings=plan.settings,
        distance=distance,
        threshold=threshold,
        same=same,
        confidence=confidence,
        maps=maps,
        forward_passes=forward_passes,
        coverage_normalised=o.coverage_normalised,
        colourmap=o.colourmap,
        quality=o.quality,
    )


def explain_photos(
    path1: Path | str, path2: Path | str, model: FaceModel, mode: str = "detect", **options: Any
) -> Explanation:
    """:func:`explain_pair` for two photos, aligned for ``model`` first (``mode``: detect, lfw-funneled,
    aligned); a quality-aware calibration scores at the photos' quality."""
    from xfv.faces import align_path

    calibrator = resolve_calibrator(options.get("calibrator"), model)
    options["quality"] = quality_for(calibrator, options.get("quality"), (Path(path1), Path(path2)), mode)
    return explain_pair(align_path(path1, model.spec, mode), align_path(path2, model.spec, mode), model, **options)


__all__ = [
    "OCCLUSION_CHUNK",
    "STYLES",
    "Explanation",
    "OcclusionEngine",
    "Style",
    "explain_pair",
    "explain_pair_progressively",
    "explain_photos",
]
