"""Photos with several faces, and warnings about faces that are small, cut off, turned or tilted.

The real path uses a two-face photo made here from LFW (never committed): Colin Powell (larger,
left) and Tony Blair (right) pasted on one canvas, against another photo of Tony Blair.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import lfw_image
from tests.web_fixtures import TINY, WebStore
from xfv.cli import main
from xfv.errors import ImageError, NoFaceError, XfvError
from xfv.faces import Box, align_face, load_image, parse_face_choice, parse_face_choices
from xfv.faces.choice import choose_face, order_faces
from xfv.faces.report import FaceReport, quality_warnings, share_outside


def make_couple(folder: Path) -> tuple[Path, Path]:
    """``couple.jpg`` (Colin Powell left and larger, Tony Blair right) and ``single.jpg`` (another
    photo of Tony Blair), written to ``folder``."""

    def face(name: str) -> Image.Image:
        return Image.open(lfw_image(name, 1)).crop((40, 30, 210, 220))

    canvas = Image.new("RGB", (420, 260), (128, 128, 128))
    canvas.paste(face("Colin_Powell").resize((204, 228)), (10, 16))
    canvas.paste(face("Tony_Blair"), (240, 35))
    couple, single = folder / "couple.jpg", folder / "single.jpg"
    canvas.save(couple, quality=92)
    Image.open(lfw_image("Tony_Blair", 2)).save(single)
    return couple, single


@pytest.fixture(scope="module")
def couple(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_couple(tmp_path_factory.mktemp("couple"))


def xfv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the ``xfv`` command in this process; its exit status, stdout and stderr."""
    status = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- choosing a face ----------------------------------------------------------------------------

BIG_LEFT, SMALL_CENTRE, SMALL_RIGHT = Box(10, 40, 110, 140), Box(170, 60, 230, 120), Box(300, 60, 350, 110)
SHAPE = (200, 400, 3)


def test_faces_are_numbered_left_to_right() -> None:
    assert order_faces([SMALL_RIGHT, BIG_LEFT, SMALL_CENTRE]) == [BIG_LEFT, SMALL_CENTRE, SMALL_RIGHT]


def test_each_choice_and_its_reason() -> None:
    boxes = [BIG_LEFT, SMALL_CENTRE, SMALL_RIGHT]
    assert choose_face(boxes, SHAPE, "largest", "p") == (0, "largest, as asked")
    assert choose_face(boxes, SHAPE, "central", "p") == (1, "most central, as asked")
    assert choose_face(boxes, SHAPE, 3, "p") == (2, "face 3 as asked")
    assert choose_face(boxes, SHAPE, "auto", "p") == (0, "largest (face 2 is more central but smaller)")
    assert choose_face([SMALL_CENTRE], SHAPE, "auto", "p") == (0, "the only face")
    centred_big = Box(150, 40, 250, 140)
    assert choose_face([BIG_LEFT, centred_big], SHAPE, "auto", "p") == (1, "largest and most central")
    with pytest.raises(ImageError, match="p: no face 4: 3 faces found"):
        choose_face(boxes, SHAPE, 4, "p")
    with pytest.raises(NoFaceError, match="no face found"):
        choose_face([], SHAPE, "auto", "p")


def test_face_choices_from_user_input() -> None:
    assert parse_face_choice(" 2 ") == 2 and parse_face_choice("Largest") == "largest"
    assert parse_face_choices("2", 2) == [2, 2]
    assert parse_face_choices("2,auto", 2) == [2, "auto"]
    for bad in ("0", "-1", "left", "1.5"):
        with pytest.raises(XfvError, match="unknown face choice"):
            parse_face_choice(bad)
    with pytest.raises(XfvError, match="one per image"):
        parse_face_choices("1,2,3", 2)


# --- warnings ------------------------------------------------------------------------------------


def test_warnings_carry_their_figures() -> None:
    assert quality_warnings(Box(10, 10, 110, 110), 10.0, 5.0, SHAPE) == []
    small = quality_warnings(Box(10, 10, 42, 42), 10.0, 5.0, SHAPE)
    assert small == ["small face: 32 px wide (under 50 px the model sees little detail)"]
    assert share_outside(Box(-50, 0, 50, 100), SHAPE) == pytest.approx(0.5)
    cut = quality_warnings(Box(-50, 0, 50, 100), 10.0, 5.0, SHAPE)
    assert cut == ["face cut off: 50% of its box lies outside the photo"]
    turned = quality_warnings(Box(10, 10, 110, 110), 62.4, 35.0, SHAPE)
    assert "yaw about 62 degrees" in turned[0] and "roll 35 degrees" in turned[1]


def test_real_faces_get_warnings_when_tilted_cut_off_or_small(lfw_root: Path) -> None:
    photo = load_image(lfw_image("Aaron_Eckhart", 1))
    upright = align_face(photo, "dlib", 150, "detect").report
    assert upright is not None and upright.warnings == [] and upright.yaw < 15 and upright.roll < 5

    tilted = np.asarray(Image.fromarray(photo).rotate(40, resample=Image.BILINEAR, fillcolor=(128, 128, 128)))
    report = align_face(tilted, "dlib", 150, "detect").report
    assert report is not None and 30 < report.roll < 50
    assert any(warning.startswith("face tilted: roll") for warning in report.warnings)

    left = upright.box.left + upright.width // 3  # cut through the face: a third of its box is gone
    report = align_face(np.ascontiguousarray(photo[:, left:]), "dlib", 150, "detect").report
    assert report is not None
    assert share_outside(report.box, photo[:, left:].shape) > 0.1
    assert any(warning.startswith("face cut off") for warning in report.warnings)

    canvas = Image.new("RGB", (400, 400), (128, 128, 128))
    canvas.paste(Image.fromarray(photo).resize((110, 110), Image.LANCZOS), (150, 150))  # face ~47 px wide
    report = align_face(np.asarray(canvas), "dlib", 150, "detect").report
    assert report is not None and report.width < 50
    assert report.warnings[0] == f"small face: {report.width} px wide (under 50 px the model sees little detail)"


def test_reports_round_trip_through_json() -> None:
    report = FaceReport([BIG_LEFT, SMALL_CENTRE], 2, SMALL_CENTRE, "face 2 as asked", "2", 12.5, 3.25, ["w"])
    data = json.loads(json.dumps(report.to_dict()))
    assert FaceReport.from_dict(data).to_dict() == report.to_dict()
    assert data["faces_found"] == 2 and data["box"] == [170, 60, 230, 120] and data["face_width"] == 60


# --- the command line on a real two-face photo ---------------------------------------------------


def test_verify_reports_both_faces_and_face_switches_the_decision(
    couple: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    couple_path, single = couple
    status, out, _ = xfv(capsys, "verify", couple_path, single, "--json")
    assert status == 0
    default = json.loads(out)
    assert default["faces"][0]["faces_found"] == 2 and default["faces"][1]["faces_found"] == 1
    assert default["faces"][0]["face"] == 1 and default["faces"][0]["reason"] == "largest and most central"
    assert default["faces"][0]["box"] == default["faces"][0]["boxes"][0]
    assert default["same"] is False, "Colin Powell is not Tony Blair"

    status, out, _ = xfv(capsys, "verify", couple_path, single, "--face", "2,auto", "--json")
    assert status == 0
    chosen = json.loads(out)
    assert chosen["faces"][0]["face"] == 2 and chosen["faces"][0]["box"] == default["faces"][0]["boxes"][1]
    assert chosen["same"] is True, "face 2 is Tony Blair"
    assert chosen["distance"] < chosen["threshold"] < default["distance"]

    status, out, _ = xfv(capsys, "verify", couple_path, single)
    assert status == 0
    assert f"{couple_path}: 2 faces found; used face 1 " in out and "(largest and most central)" in out

    status, _, err = xfv(capsys, "verify", couple_path, single, "--face", "3,auto")
    assert status == 2
    assert err.strip() == f"xfv: error: {couple_path}: no face 3: 2 faces found (faces are numbered from the left)"


def test_embed_and_explain_say_which_face(
    couple: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    couple_path, single = couple
    images = (couple_path, single, couple_path)
    status, out, _ = xfv(capsys, "embed", *images, "--face", "2,auto,1", "--out", tmp_path / "e.npy")
    assert status == 0
    embeddings = np.load(tmp_path / "e.npy")
    assert not np.allclose(embeddings[0], embeddings[2]), "faces 2 and 1 of the couple differ"
    sidecar = json.loads((tmp_path / "e.json").read_text())
    assert [faces["face"] for faces in sidecar["faces"]] == [2, 1, 1]
    assert [faces["faces_found"] for faces in sidecar["faces"]] == [2, 1, 2]
    assert f"{couple_path}: 2 faces found; used face 2 " in out and "faces: 2 of 3 photos show several faces" in out

    status, out, err = xfv(
        capsys,
        "explain",
        couple_path,
        single,
        "--face",
        "2,auto",
        "--patch-sizes",
        "28",
        "--stride",
        "40",
        "--methods",
        "1",
        "--out",
        tmp_path / "maps",
        "--json",
    )
    assert status == 0, err
    summary = json.loads(out)
    assert summary["faces"][0]["faces_found"] == 2 and summary["faces"][0]["reason"] == "face 2 as asked"
    assert summary["decision"] == "genuine", "face 2 of the couple is Tony Blair"
    assert f"{couple_path}: 2 faces found; used face 2 " not in out, "--json prints only JSON"


# --- the upload API --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_upload_api_reports_every_face_and_takes_the_choice(
    couple: tuple[Path, Path],
    web_store: WebStore,  # noqa: F811
) -> None:
    from fastapi.testclient import TestClient  # imported here, where its deprecation warning is ignored

    from xfv.web import create_app

    couple_path, single = couple
    files = {f"image{n}": (path.name, path.read_bytes(), "image/jpeg") for n, path in ((1, couple_path), (2, single))}
    with TestClient(create_app(web_store.store, occlusion=TINY)) as client:
        default = client.post("/api/verify", files=files)
        assert default.status_code == 200, default.text
        first = default.json()["photos"][0]
        assert first["faces_found"] == 2 and first["face"] == 1 and first["box"] == first["boxes"][0]
        assert first["reason"] == "largest and most central" and default.json()["same"] is False

        chosen = client.post("/api/verify", files=files, data={"face1": "2"})
        assert chosen.status_code == 200, chosen.text
        first = chosen.json()["photos"][0]
        assert first["face"] == 2 and first["box"] == first["boxes"][1] and chosen.json()["same"] is True
        assert isinstance(first["yaw"], float) and first["face_width"] == first["box"][2] - first["box"][0]

        missing = client.post("/api/verify", files=files, data={"face1": "3"})
        assert missing.status_code == 422 and "no face 3: 2 faces found" in missing.json()["detail"]
        unknown = client.post("/api/explain", files=files, data={"face2": "left"})
        assert unknown.status_code == 400 and "unknown face choice 'left'" in unknown.json()["detail"]
