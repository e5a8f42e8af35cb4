"""Verifying one pair of photos: distance, threshold, decision (and C-Score when calibrated)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from xfv.errors import CalibrationError, XfvError
from xfv.faces import FaceChoice, FaceReport, align_photo
from xfv.method.calibration import Calibrator, QualityAwareCalibrator, predict
from xfv.method.distances import cosine_distance
from xfv.models.base import FaceModel
from xfv.pipeline.quality import pair_quality


@dataclass
class Verification:
    """The decision on one pair, where its threshold came from, and per image the faces found, the
    one used and any warnings about it (``faces``: :meth:`FaceReport.to_dict`, None if aligned);
    ``quality`` is the pair's quality where the C-Score depends on it (a quality-aware calibration)."""

    image1: str
    image2: str
    model: str
    distance: float
    threshold: float
    threshold_source: str
    same: bool
    confidence: float | None
    calibration: str | None
    quality: float | None = None
    faces: list[dict[str, object] | None] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        verdict = "same person" if self.same else "different people"
        relation = "<=" if self.same else ">"
        text = (
            f"{verdict}: distance {self.distance:.4f} {relation} threshold {self.threshold:.4f} "
            f"({self.threshold_source}; model {self.model})"
        )
        if self.confidence is None:
            text += "\nC-Score: none (the model has no calibration)"
        else:
            at_quality = "" if self.quality is None else f", at pair quality {self.quality:.3f}"
            text += f"\nC-Score {self.confidence:.3f} (probability the decision is right; calibration: {self.calibration}{at_quality})"
        for image, faces in zip((self.image1, self.image2), self.faces):
            if faces is not None:
                text += f"\n{image}: {FaceReport.from_dict(faces).describe()}"
        return text


def model_calibrator(model: FaceModel) -> Calibrator | None:
    """The calibration stored with the model, if any."""
    return Calibrator.from_dict(model.spec.calibration) if model.spec.calibration else None


def check_calibrator(calibrator: Calibrator, model: FaceModel) -> Calibrator:
    """``calibrator`` if it may score ``model``'s distances: fitted on this model, or on the one the
    model's own calibration was fitted on (dlib-int8 ships float32 dlib's); another model's distances
    are on another scale, so its C-Scores would be meaningless."""
    own = (model.spec.calibration or {}).get("model")
    if calibrator.model_name_ and calibrator.model_name_ not in (model.spec.name, own):
        raise CalibrationError(
            f"the calibration was fitted on {calibrator.model_name_}'s distances, not {model.spec.name}'s: "
            f"fit one for {model.spec.name} with `xfv calibrate --model {model.spec.name}`"
        )
    return calibrator


def resolve_calibrator(calibrator: Calibrator | None, model: FaceModel) -> Calibrator | None:
    """The calibration a C-Score of ``model`` comes from: the given one (checked), else the model's."""
    return check_calibrator(calibrator, model) if calibrator is not None else model_calibrator(model)


def needs_quality(calibrator: Calibrator | None) -> bool:
    """Whether the C-Score of ``calibrator`` depends on the pair's quality as well as its distance."""
    return isinstance(calibrator, QualityAwareCalibrator)


def quality_for(
    calibrator: Calibrator | None,
    quality: float | None,
    faces: Sequence[np.ndarray | Path],
    mode: str = "aligned",
    choices: Sequence[FaceChoice] = ("auto", "auto"),
) -> float | None:
    """The pair quality a C-Score of ``calibrator`` is scored at: None unless it is quality-aware;
    then ``quality`` where given, else measured on ``faces`` (:func:`~xfv.pipeline.quality.pair_quality`)."""
    if not needs_quality(calibrator):
        return None
    return quality if quality is not None else pair_quality(faces, mode, choices)


def calibration_name(calibrator: Calibrator) -> str:
    """How a calibration is named to users: method, model and the data it was fitted on."""
    return f"{calibrator.kind} of {calibrator.model_name_} fitted on {calibrator.fitted_on_.get('description', 'unknown data')}"


def confidence_of(
    calibrator: Calibrator | None, distance: float, threshold: float, quality: float | None = None
) -> float | None:
    """The C-Score of a decision at ``threshold`` (None without a calibration); ``quality`` is the
    pair's (:func:`~xfv.pipeline.quality.pair_quality`), needed by quality-aware calibrations.

    The calibrator's own threshold is replaced by the one actually used, so the confidence is
    always that of the decision reported."""
    if calibrator is None:
        return None
    at_threshold = copy.copy(calibrator)
    at_threshold.threshold_ = threshold
    qualities = None if quality is None else np.array([quality])
    return float(predict(at_threshold, np.array([distance]), qualities)[1][0])


def resolve_threshold(model: FaceModel, threshold: float | None) -> tuple[float, str]:
    """The user's threshold, else the model's stored one; says which."""
    if threshold is not None:
        return threshold, "given threshold"
    if model.spec.default_threshold is None:
        raise XfvError(f"model {model.spec.name} has no stored threshold: pass --threshold")
    return model.spec.default_threshold, f"threshold of {model.spec.name} from {model.spec.threshold_source}"


def verify_faces(face1: np.ndarray, face2: np.ndarray, model: FaceModel, threshold: float) -> tuple[float, bool]:
    """Distance and decision for two aligned faces."""
    embeddings = model.embed(np.stack([face1, face2]))
    distance = float(cosine_distance(embeddings[0], embeddings[1]))
    return distance, distance <= threshold


def face_warnings(paths: list[Path], reports: list[FaceReport | None]) -> list[str]:
    """Every report's warnings, each prefixed with its image."""
    return [f"{path}: {warning}" for path, report in zip(paths, reports) if report for warning in report.warnings]


def verify_aligned(
    face1: np.ndarray,
    face2: np.ndarray,
    model: FaceModel,
    threshold: float | None = None,
    names: tuple[str, str] = ("face 1", "face 2"),
    calibrator: Calibrator | None = None,
    quality: float | None = None,
) -> Verification:
    """Decide on two aligned faces at ``threshold`` (default: the model's), with the C-Score of
    ``calibrator`` (default: the model's); a quality-aware one gets ``quality``, else the faces' own."""
    threshold, source = resolve_threshold(model, threshold)
    calibrator = resolve_calibrator(calibrator, model)
    quality = quality_for(calibrator, quality, (face1, face2))
    distance, same = verify_faces(face1, face2, model, threshold)
    confidence = confidence_of(calibrator, distance, threshold, quality)
    name = calibration_name(calibrator) if calibrator else None
    return Verification(*names, model.spec.name, distance, threshold, source, same, confidence, name, quality)


def verify_paths(
    image1: Path,
    image2: Path,
    model: FaceModel,
    threshold: float | None = None,
    mode: str = "detect",
    faces: tuple[FaceChoice, FaceChoice] = ("auto", "auto"),
    calibrator: Calibrator | None = None,
) -> Verification:
    """Align the chosen face of both photos, embed them and decide (C-Score: see :func:`verify_aligned`;
    a quality-aware calibration gets the photos' quality, measured as its calibration data was)."""
    aligned = [align_photo(path, model.spec, mode, face) for path, face in zip((image1, image2), faces)]
    calibrator = resolve_calibrator(calibrator, model)
    quality = quality_for(calibrator, None, (image1, image2), mode, faces)
    names = (str(image1), str(image2))
    verification = verify_aligned(aligned[0].face, aligned[1].face, model, threshold, names, calibrator, quality)
    reports = [photo.report for photo in aligned]
    verification.faces = [report.to_dict() if report else None for report in reports]
    verification.warnings = face_warnings([image1, image2], reports)
    return verification
