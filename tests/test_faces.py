"""Reading photos and aligning faces, on synthetic files and real LFW photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import lfw_image
from xfv.errors import ImageError, NoFaceError
from xfv.faces import LFW_FUNNELED_BOX, align_face, align_path, detect_faces, load_image
from xfv.models.base import ModelSpec

DLIB_SPEC = ModelSpec(name="t", input_size=150, embedding_size=128, alignment="dlib")
ARCFACE_SPEC = ModelSpec(name="t", input_size=112, embedding_size=512, alignment="arcface")


def test_greyscale_rgba_and_exif_rotation_become_upright_rgb(tmp_path: Path) -> None:
    Image.new("L", (20, 10), 128).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").shape == (10, 20, 3)
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png")[0, 0].tolist() == [255, 255, 255]  # over white, not black
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (30, 10)).save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").shape == (30, 10, 3)


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="missing.jpg: file not found"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="text.jpg: not an image"):
        load_image(tmp_path / "text.jpg")
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (90, 120, 30)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.jpg: truncated or corrupt"):
        load_image(tmp_path / "cut.jpg")


def test_photo_without_a_face_is_an_error_not_a_centre_crop(tmp_path: Path) -> None:
    Image.new("RGB", (250, 250), (200, 180, 160)).save(tmp_path / "wall.jpg")
    with pytest.raises(NoFaceError, match="wall.jpg: no face found"):
        align_path(tmp_path / "wall.jpg", DLIB_SPEC, "detect")
    # Asking for the known LFW face box is asking for a fixed crop where no face is found.
    aligned = align_face(load_image(tmp_path / "wall.jpg"), "dlib", 150, "lfw-funneled")
    assert aligned.face.shape == (150, 150, 3) and aligned.box == LFW_FUNNELED_BOX and not aligned.detected


def test_real_lfw_photo_is_detected_and_aligned(lfw_root: Path) -> None:
    image = load_image(lfw_image("Aaron_Eckhart", 1))
    boxes = detect_faces(image)
    assert boxes, "HOG finds the face of an LFW photo"
    aligned = align_face(image, "dlib", 150, "detect")
    assert aligned.detected and aligned.face.shape == (150, 150, 3)
    # The box is near the known LFW deep-funneled box and the eyes land where dlib's chip puts them.
    assert abs(aligned.box.centre[0] - LFW_FUNNELED_BOX.centre[0]) < 20
    assert np.array_equal(align_face(image, "dlib", 150, "lfw-funneled").face, aligned.face)


def test_large_photo_is_detected_on_a_scaled_copy(lfw_root: Path) -> None:
    image = load_image(lfw_image("Aaron_Eckhart", 1))
    large = np.kron(image, np.ones((8, 8, 1), np.uint8))  # 2000x2000
    small_box, large_box = detect_faces(image)[0], detect_faces(large)[0]
    assert np.allclose(np.array(large_box.to_list()) / 8, small_box.to_list(), atol=10)


def test_arcface_alignment_puts_eyes_on_the_template(lfw_root: Path) -> None:
    from xfv.faces.align import ARCFACE_TEMPLATE, arcface_points
    from xfv.faces.detect import landmarks, shape_to_array

    face = align_path(lfw_image("Aaron_Eckhart", 1), ARCFACE_SPEC, "detect")
    assert face.shape == (112, 112, 3)
    boxes = detect_faces(face)
    if boxes:  # landmarks found again on the aligned face sit close to the template
        points = arcface_points(shape_to_array(landmarks(face, boxes[0], 68)))
        assert np.abs(points[:2] - ARCFACE_TEMPLATE[:2]).max() < 6


def test_aligned_mode_only_resizes() -> None:
    image = np.zeros((112, 112, 3), np.uint8)
    image[:56] = 255
    face = align_face(image, "dlib", 150, "aligned").face
    assert face.shape == (150, 150, 3) and face[10, 10, 0] == 255 and face[140, 10, 0] == 0


def test_face_locations_are_cached_by_content(lfw_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A photo's faces are found once: another model (alignment, size) and another copy of the
    same bytes reuse the location; other content, mode or face choice is located anew."""
    import shutil

    from xfv.cache import ArrayCache
    from xfv.faces import align as align_module
    from xfv.faces import align_photo

    cache = ArrayCache(tmp_path / "arrays.sqlite")
    calls: list[int] = []
    detect = align_module.detect_faces
    monkeypatch.setattr(align_module, "detect_faces", lambda image: calls.append(1) or detect(image))
    photo = lfw_image("Aaron_Eckhart", 1)
    first = align_photo(photo, DLIB_SPEC, "lfw-funneled", cache=cache)
    assert calls == [1]
    copy = tmp_path / "copy.jpg"
    shutil.copy(photo, copy)
    again = align_photo(copy, DLIB_SPEC, "lfw-funneled", cache=cache)
    arcface = align_photo(photo, ARCFACE_SPEC, "lfw-funneled", cache=cache)
    assert calls == [1]  # the same bytes elsewhere, and another alignment: no detection
    assert np.array_equal(first.face, again.face) and again.report is not None
    assert again.report.to_dict() == first.report.to_dict()  # pose assessed from the cached landmarks
    uncached = align_module.align_face(load_image(photo), "arcface", 112, "lfw-funneled")  # detects
    assert np.array_equal(arcface.face, uncached.face) and calls == [1, 1]
    align_photo(photo, DLIB_SPEC, "detect", cache=cache)
    align_photo(photo, DLIB_SPEC, "lfw-funneled", face="largest", cache=cache)
    flipped = tmp_path / "flipped.jpg"
    Image.fromarray(load_image(photo)[:, ::-1]).save(flipped)
    align_photo(flipped, DLIB_SPEC, "lfw-funneled", cache=cache)
    assert calls == [1] * 5


CONCURRENT_DETECTION = """
import sys, threading
import cv2
from xfv.faces import detect_faces, load_image

photos = [cv2.resize(load_image(path), (800, 800)) for path in sys.argv[1:]]
expected = [detect_faces(photo) for photo in photos]
wrong = []

def detect_all() -> None:
    for _ in range(15):
        for photo, boxes in zip(photos, expected):
            if detect_faces(photo) != boxes:
                wrong.append(boxes)

threads = [threading.Thread(target=detect_all) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(wrong))
"""


def test_faces_are_detected_in_several_threads_at_once(lfw_root: Path) -> None:
    """Concurrent uploads detect faces at the same time: each thread finds what one thread alone
    finds (a detector shared between threads corrupted the heap: the process aborted)."""
    import subprocess
    import sys

    paths = [str(lfw_image(name, 1)) for name in ("Aaron_Eckhart", "Abel_Pacheco", "Akhmed_Zakayev", "Aaron_Peirsol")]
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_DETECTION, *paths], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0", "a thread found other faces than one thread alone"
