"""Verifying one pair of photos: distance, threshold, decision (and C-Score when calibrated)."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from xfv.errors import XfvError
from xfv.faces import align_path
from xfv.method.calibration import Calibrator
from xfv.method.distances import cosine_distance
from xfv.models.base import FaceModel


@dataclass
class Verification:
    """The decision on one pair and where its threshold came from."""

    image1: str
    image2: str
    model: str
    distance: float
    threshold: float
    threshold_source: str
    same: bool
    confidence: float | None
    calibration: str | None

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
            return text + "\nC-Score: none (the model has no calibration)"
        return text + f"\nC-Score {self.confidence:.3f} (probability the decision is right; calibration: {self.calibration})"


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
    image1: Path, image2: Path, model: FaceModel, threshold: float | None = None, mode: str = "detect"
) -> Verification:
    """Align both photos, embed them and decide."""
    face1, face2 = align_path(image1, model.spec, mode), align_path(image2, model.spec, mode)
    return verify_aligned(face1, face2, model, threshold, (str(image1), str(image2)))
