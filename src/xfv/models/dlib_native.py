"""``dlib-native``: dlib's own C++ ResNet face descriptor, the reference for the ONNX backend."""

from __future__ import annotations

import dlib
import numpy as np

from xfv.models.base import FaceModel, ModelSpec
from xfv.models.weights import file_sha256, resnet_descriptor_path

DLIB_INPUT_SIZE = 150
DLIB_EMBEDDING_SIZE = 128


class DlibNativeModel(FaceModel):
    """Runs ``dlib.face_recognition_model_v1.compute_face_descriptor`` on 150x150 face chips."""

    batch_size = 16

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._net = dlib.face_recognition_model_v1(str(resnet_descriptor_path()))

    def embed_batch(self, faces: np.ndarray) -> np.ndarray:
        chips = [np.ascontiguousarray(face) for face in faces]
        return np.asarray(self._net.compute_face_descriptor(chips), dtype=np.float32)


def dlib_weights_hash() -> str:
    """Short hash of the descriptor weights, part of every cache key of the dlib models."""
    return file_sha256(resnet_descriptor_path())[:16]
