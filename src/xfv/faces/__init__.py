"""Faces: reading photos, detecting faces, landmarks and alignment."""

from xfv.faces.align import INPUT_MODES, LFW_FUNNELED_BOX, AlignedFace, align_face, align_path, align_photo
from xfv.faces.choice import NAMED_CHOICES, FaceChoice, parse_face_choice, parse_face_choices
from xfv.faces.detect import Box, detect_faces
from xfv.faces.io import decode_image, load_image
from xfv.faces.report import FaceReport

__all__ = [
    "INPUT_MODES",
    "LFW_FUNNELED_BOX",
    "NAMED_CHOICES",
    "AlignedFace",
    "Box",
    "FaceChoice",
    "FaceReport",
    "align_face",
    "align_path",
    "align_photo",
    "decode_image",
    "detect_faces",
    "load_image",
    "parse_face_choice",
    "parse_face_choices",
]
