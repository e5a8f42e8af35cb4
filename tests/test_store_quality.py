"""The no-reference image-quality score stored per image: in [0, 1], and lower for degraded faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import lfw_image
from xfv.faces import load_image
from xfv.faces.quality import face_box, image_quality


@pytest.fixture
def face(lfw_root: Path) -> np.ndarray:
    return load_image(lfw_image("Aaron_Eckhart", 1))


def test_quality_is_in_the_unit_interval_and_high_for_a_clean_lfw_face(face: np.ndarray) -> None:
    quality = image_quality(face, "lfw-funneled")
    parts = quality.to_dict()
    assert all(0 <= value <= 1 for value in parts.values())
    assert quality.score == pytest.approx(quality.sharpness * quality.contrast * quality.exposure * quality.resolution)
    assert quality.score > 0.5 and quality.resolution == 1


def test_degradations_lower_the_part_that_measures_them(face: np.ndarray) -> None:
    clean = image_quality(face, "lfw-funneled")
    blurred = image_quality(cv2.GaussianBlur(face, (0, 0), 2), "lfw-funneled")
    upsampled = image_quality(
        cv2.resize(cv2.resize(face, (30, 30), interpolation=cv2.INTER_AREA), (250, 250)), "lfw-funneled"
    )
    dark = image_quality((face * 0.2).astype(np.uint8), "lfw-funneled")
    tiny = image_quality(cv2.resize(face[80:187, 67:175], (24, 24), interpolation=cv2.INTER_AREA), "aligned")
    assert blurred.sharpness < clean.sharpness / 2 and blurred.score < clean.score / 2
    assert upsampled.score < blurred.score
    assert dark.exposure < 0.6 and dark.contrast < 0.5 and dark.score < clean.score / 3
    assert tiny.resolution == pytest.approx(24 / 64)


def test_the_face_region_follows_the_input_mode(face: np.ndarray) -> None:
    assert face_box(face, "aligned").to_list() == [0, 0, 250, 250]
    assert face_box(face, "lfw-funneled").to_list() == [67, 80, 175, 187]
    half = cv2.resize(face, (125, 125))
    assert face_box(half, "lfw-funneled").to_list() == [34, 40, 88, 94]
    detected = face_box(face, "detect")
    assert 40 < detected.left < 100 and 150 < detected.right < 200
    assert face_box(np.full((100, 100, 3), 128, np.uint8), "detect").to_list() == [0, 0, 100, 100]
