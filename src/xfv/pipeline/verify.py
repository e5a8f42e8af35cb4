"""Verifying one pair of photos: distance, threshold, decision (and C-Score when calibrated)."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from xfv.errors import XfvError
from xfv.faces import FaceChoice, FaceReport, align_photo
from xfv.method.calibration import Calibrator
from xfv.method.distances import cosine_distance
from xfv.models.base import FaceModel


@dataclass
class Verification:
    """The decision on one pair, where its threshold came from, and per image the faces found, the
    one used and any warnings about it (``faces``: :meth:`FaceReport.to_dict`, None if aligned)."""

    image1: str
    image2: str
    model: str
    distance: float
    threshold: float
    threshold_source: str
    same: bool
    confidence: float | None
    calibration: str | None
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
            text += (
                f"\nC-Score {self.confidence:.3f} (probability the decision is right; calibration: {self.calibration})"
            )
        for image, faces in zip((self.image1, self.image2), self.faces):
            if faces is not None:
                text += f"\n{image}: {FaceReport.from_dict(faces).describe()}"
        return text


def model_calibrator(model: FaceModel) -> Calibrator | None:
    """The calibration stored with the model, if any."""
    return Calibrator.from_dict(model.spec.calibration) if model.spec.calibration else None


def calibration_name(calibrator: Calibrator) -> str:
    """How a calibration is named to users: method, model and the data it was fitted on."""
    return f"{calibrator.kind} of {calibrator.model_name_} fitted on {calibrator.fitted_on_.get('description', 'unknown data')}"


def confidence_of(calibrator: Calibrator | None, distance: float, threshold: float) -> float | None:
    """The C-Score of a decision at ``threshold`` (None without a calibration).

    The calibrator's own threshold is replaced by the one actually used, so the confidence is
    always that of the decision reported."""
    if calibrator is None:
        return None
    at_threshold = copy.copy(calibrator)
    at_threshold.threshold_ = threshold
    return float(at_threshold.predict_confidence(distance))


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
) -> Verification:
    """Decide on two aligned faces at ``threshold`` (default: the model's), with the model's C-Score."""
    threshold, source = resolve_threshold(model, threshold)
    distance, same = verify_faces(face1, face2, model, threshold)
    calibrator = model_calibrator(model)
    confidence = confidence_of(calibrator, distance, threshold)
    name = calibration_name(calibrator) if calibrator else None
    return Verification(*names, model.spec.name, distance, threshold, source, same, confidence, name)


def verify_paths(
    image1: Path,
    image2: Path,
    model: FaceModel,
    threshold: float | None = None,
    mode: str = "detect",
    faces: tuple[FaceChoice, FaceChoice] = ("auto", "auto"),
) -> Verification:
    """Align the chosen face of both photos, embed them and decide."""
    aligned = [align_photo(path, model.spec, mode, face) for path, face in zip((image1, image2), faces)]
    verification = verify_aligned(aligned[0].face, aligned[1].face, model, threshold, (str(image1), str(image2)))
    reports = [photo.report for photo in aligned]
    verification.faces = [report.to_dict() if report else None for report in reports]
    verification.warnings = face_warnings([image1, image2], reports)
    return verification
