"""Faces: reading photos, detecting faces, landmarks and alignment."""

from xfv.faces.align import INPUT_MODES, LFW_FUNNELED_BOX, AlignedFace, align_face, align_path
from xfv.faces.detect import Box, detect_faces
from xfv.faces.io import decode_image, load_image

__all__ = [
    "INPUT_MODES",
    "LFW_FUNNELED_BOX",
    "AlignedFace",
    "Box",
    "align_face",
    "align_path",
    "decode_image",
    "detect_faces",
    "load_image",
]
