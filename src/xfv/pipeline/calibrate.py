"""Calibrators as files: JSON written by ``xfv calibrate``, named by a model spec's ``calibration``
or by ``xfv verify|explain --calibration`` (the maths in :mod:`xfv.method` keeps no file of its own)."""

from __future__ import annotations

import json
from pathlib import Path

from xfv.errors import CalibrationError
from xfv.method.calibration import Calibrator
from xfv.models.base import FaceModel
from xfv.pipeline.verify import check_calibrator


def save_calibrator(calibrator: Calibrator, path: str | Path) -> None:
    """Write a fitted calibrator as JSON (:meth:`~xfv.method.calibration.Calibrator.to_dict`)."""
    Path(path).write_text(json.dumps(calibrator.to_dict(), indent=2) + "\n")


def load_calibrator(path: str | Path) -> Calibrator:
    """Read a calibrator written by :func:`save_calibrator`; :class:`CalibrationError` if it cannot."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"cannot read calibrator {path}: {exc}") from exc
    try:
        return Calibrator.from_dict(data)
    except CalibrationError as exc:
        raise CalibrationError(f"calibrator {path}: {exc}") from None


def load_model_calibration(path: str | Path | None, model: FaceModel) -> Calibrator | None:
    """The calibrator saved at ``path``, checked to be one for ``model``'s distances (None when no
    path is given: the model's own calibration applies)."""
    if path is None:
        return None
    calibrator = load_calibrator(path)
    try:
        return check_calibrator(calibrator, model)
    except CalibrationError as exc:
        raise CalibrationError(f"calibrator {path}: {exc}") from None
