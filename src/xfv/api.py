"""The front door for Python users: load a model, align photos, verify and explain pairs.

Everything here is re-exported by :mod:`xfv`, so one import line is enough::

    import xfv
    explanation = xfv.XMaps("dlib").explain("photo1.jpg", "photo2.jpg")

Paths are photos (aligned for the model with ``mode``: detect, lfw-funneled or aligned); arrays
are faces already aligned for the model (see :func:`align`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from xfv.cache import ArrayCache
from xfv.config import get_settings
from xfv.faces import FaceChoice, align_face, align_path
from xfv.method.calibration import Calibrator
from xfv.method.occlusion import OcclusionSettings
from xfv.method.xmaps import check_methods
from xfv.models import FaceModel, get_model
from xfv.pipeline.calibrate import load_calibrator
from xfv.pipeline.explain import Explanation, OcclusionEngine, explain_pair
from xfv.pipeline.verify import Verification, quality_for, resolve_calibrator, verify_aligned, verify_paths

#: A photo (a path) or a face already aligned for the model (uint8 RGB array).
FaceInput = str | Path | np.ndarray
ModelInput = str | FaceModel | None
#: A fitted calibrator, the path of one saved by ``xfv calibrate``, or None for the model's own.
CalibratorInput = Calibrator | str | Path | None


def load_model(name: str | None = None) -> FaceModel:
    """A model by name (see ``xfv models``) or by path of a .json spec or .onnx file; default
    ``$XFV_MODEL`` or dlib. Loaded once per process."""
    return get_model(name or get_settings().default_model)


def _model(model: ModelInput) -> FaceModel:
    return model if isinstance(model, FaceModel) else load_model(model)


def align(
    image: str | Path | np.ndarray, model: ModelInput = None, mode: str = "detect", face: FaceChoice = "auto"
) -> np.ndarray:
    """A photo (path or uint8 RGB array) aligned for ``model``: uint8 RGB of the model's input size.
    ``face`` chooses among several faces: a number (1 = leftmost), ``largest``, ``central`` or ``auto``."""
    spec = _model(model).spec
    if isinstance(image, np.ndarray):
        return align_face(image, spec.alignment, spec.input_size, mode, face=face).face
    return align_path(image, spec, mode, face)


def _calibrator(calibrator: CalibratorInput, model: FaceModel) -> Calibrator | None:
    """The calibration for ``model``'s C-Scores: loaded from a path, checked, else the model's own."""
    if isinstance(calibrator, str | Path):
        calibrator = load_calibrator(calibrator)
    return resolve_calibrator(calibrator, model)


def _photos_or_faces(faces: Sequence[FaceInput]) -> list[np.ndarray | Path]:
    """Inputs as :func:`~xfv.pipeline.quality.pair_quality` takes them: photo paths or aligned faces."""
    return [face if isinstance(face, np.ndarray) else Path(face) for face in faces]


def _face(face: FaceInput, model: FaceModel, mode: str, choice: FaceChoice) -> np.ndarray:
    """An aligned face: a path is aligned for ``model``, an array is taken as aligned already."""
    return np.asarray(face) if isinstance(face, np.ndarray) else align_path(face, model.spec, mode, choice)


def verify(
    image1: FaceInput,
    image2: FaceInput,
    model: ModelInput = None,
    threshold: float | None = None,
    mode: str = "detect",
    faces: tuple[FaceChoice, FaceChoice] = ("auto", "auto"),
    calibrator: CalibratorInput = None,
) -> Verification:
    """Same person or not: distance, threshold (default: the model's), decision and C-Score (of
    ``calibrator``, default the model's; a quality-aware one at the pair's quality); for two photos
    also the faces found in each, the one used and warnings."""
    face_model = _model(model)
    calibration = _calibrator(calibrator, face_model)
    if not isinstance(image1, np.ndarray) and not isinstance(image2, np.ndarray):
        return verify_paths(Path(image1), Path(image2), face_model, threshold, mode, faces, calibration)
    aligned = [_face(image, face_model, mode, face) for image, face in zip((image1, image2), faces)]
    names = [
        f"face {i}" if isinstance(image, np.ndarray) else str(image) for i, image in enumerate((image1, image2), 1)
    ]
    quality = quality_for(calibration, None, _photos_or_faces((image1, image2)), mode, faces)
    return verify_aligned(aligned[0], aligned[1], face_model, threshold, (names[0], names[1]), calibration, quality)


class XMaps:
    """An X-Map explainer, Captum style: it owns the model, the occlusion settings, the calibration
    and the cache of occlusion embeddings, and explains pairs with :meth:`explain`.

    ``calibrator`` (a fitted calibrator or the path of one saved by ``xfv calibrate``, refused if
    fitted on another model) and ``threshold`` default to the model's own, so explanations carry a
    C-Score whenever the model ships a calibration; a quality-aware calibration scores each pair at
    its quality. ``progress`` shows a progress bar of forward passes.
    """

    def __init__(
        self,
        model: ModelInput = None,
        settings: OcclusionSettings | None = None,
        *,
        calibrator: CalibratorInput = None,
        threshold: float | None = None,
        mode: str = "detect",
        cache: ArrayCache | None = None,
        progress: bool = False,
    ) -> None:
        self.model = _model(model)
        self.engine = OcclusionEngine(self.model, settings, cache)
        self.calibrator = _calibrator(calibrator, self.model)
        self.threshold = threshold
        self.mode = mode
        self.progress = progress

    @property
    def settings(self) -> OcclusionSettings:
        return self.engine.settings

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"XMaps(model={self.model.spec.name!r}, patch_sizes={s.patch_sizes}, stride={s.stride}, fill={s.fill!r}, "
            f"{s.count} occlusions per face, C-Score {'on' if self.calibrator else 'off (no calibration)'})"
        )

    def explain(
        self,
        face1: FaceInput,
        face2: FaceInput,
        methods: Sequence[int] | None = None,
        *,
        faces: tuple[FaceChoice, FaceChoice] = ("auto", "auto"),
        **options: Any,
    ) -> Explanation:
        """X-Maps of a pair for ``methods`` (default: every registered method); ``faces`` chooses
        the face of each photo (see :func:`align`); ``options`` go to
        :func:`~xfv.pipeline.explain.explain_pair` (``coverage_normalised``, ``smoothing``, ``colourmap``)."""
        methods = check_methods(methods)  # before aligning: a bad method costs nothing
        aligned = [_face(face, self.model, self.mode, choice) for face, choice in zip((face1, face2), faces)]
        inputs = _photos_or_faces((face1, face2))
        options["quality"] = quality_for(self.calibrator, options.get("quality"), inputs, self.mode, faces)
        if not self.progress:
            return self._explain(aligned, methods, options)
        unique = {face.tobytes(): face for face in aligned}.values()
        total = sum(0 if self.engine.is_cached(face) else len(self.engine.plan) + 1 for face in unique)
        with tqdm(total=total, desc=f"X-Maps ({self.model.spec.name})", unit="pass") as bar:
            self.engine.progress = bar.update
            try:
                return self._explain(aligned, methods, options)
            finally:
                self.engine.progress = None

    def _explain(self, faces: list[np.ndarray], methods: Sequence[int], options: dict[str, Any]) -> Explanation:
        return explain_pair(
            faces[0],
            faces[1],
            self.model,
            methods,
            threshold=self.threshold,
            calibrator=self.calibrator,
            engine=self.engine,
            **options,
        )


__all__ = ["CalibratorInput", "FaceInput", "XMaps", "align", "load_model", "verify"]
