"""A user's own calibration (``xfv calibrate``) applied to a new pair: ``xfv verify|explain
--calibration``, the Python API and the web's uploads; a quality-aware one scores each pair at its
image quality, measured as its calibration data was; another model's calibration is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.special import expit

import xfv
from tests.conftest import lfw_image
from tests.test_cli import assert_one_line_error
from tests.test_web_api import photo, wait_for
from xfv.errors import CalibrationError
from xfv.faces import load_image
from xfv.faces.quality import image_quality
from xfv.method.cscore import CScoreCalibrator, QualityCScoreCalibrator
from xfv.models import get_model
from xfv.pipeline.calibrate import load_calibrator, save_calibrator
from xfv.pipeline.verify import check_calibrator, confidence_of
from xfv.web import uploads

SHIPPED = Path(xfv.__file__).parent / "data"


def xfv_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xfv.cli", *args], capture_output=True, text=True, timeout=600)


def quality_calibration(threshold: float, seed: int = 0) -> QualityCScoreCalibrator:
    """dlib's quality-aware C-Score on synthetic pairs around ``threshold``: distances on [0, 2t],
    the genuine share falling steeply for good pairs (quality >= 0.5) and slowly for poor ones."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.0, 1.0, 20000)
    d = rng.uniform(0.0, 2 * threshold, quality.size)
    slope = np.where(quality < 0.5, 2.0, 20.0)
    same = rng.random(quality.size) < expit(-slope * (d - threshold) / threshold)
    return QualityCScoreCalibrator(groups=2).fit(
        d, same, threshold, quality=quality, model_name="dlib", data_description="synthetic pairs"
    )


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calibration") / "dlib-quality.json"
    threshold = get_model("dlib").spec.default_threshold
    assert threshold is not None
    save_calibrator(quality_calibration(threshold), path)
    return path


@pytest.fixture(scope="module")
def blurred_photo(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> Path:
    """Aaron Peirsol's second LFW photo, blurred: the face is still found, its quality is poor."""
    path = tmp_path_factory.mktemp("photos") / "blurred.png"
    image = load_image(lfw_image("Aaron_Peirsol", 2))
    cv2.imwrite(str(path), cv2.cvtColor(cv2.GaussianBlur(image, (0, 0), 2.5), cv2.COLOR_RGB2BGR))
    return path


def photo_quality(*paths: Path) -> float:
    """The pair quality, computed here from its definition: the lower photo score, faces detected."""
    return min(image_quality(load_image(path), "detect").score for path in paths)


def test_verify_scores_a_pair_at_its_quality(calibration_file: Path, blurred_photo: Path, lfw_root: Path) -> None:
    calibrator = load_calibrator(calibration_file)
    first, second = lfw_image("Aaron_Peirsol", 1), lfw_image("Aaron_Peirsol", 2)
    scores = {}
    for other in (second, blurred_photo):
        result = xfv_cli("verify", str(first), str(other), "--calibration", str(calibration_file), "--json")
        assert result.returncode == 0, result.stderr
        verification = json.loads(result.stdout)
        assert verification["quality"] == pytest.approx(photo_quality(first, other), abs=1e-9)
        expected = calibrator.predict_confidence(verification["distance"], verification["quality"])
        assert verification["confidence"] == pytest.approx(float(expected), abs=1e-9)
        assert verification["calibration"] == "cscore-quality of dlib fitted on synthetic pairs"
        scores[other] = verification
    good, poor = scores[second], scores[blurred_photo]
    assert good["quality"] > 0.5 > poor["quality"]  # one pair in each quality group
    assert good["same"] and poor["same"] and good["confidence"] > poor["confidence"] + 0.05
    text = xfv_cli("verify", str(first), str(blurred_photo), "--calibration", str(calibration_file))
    assert f"at pair quality {poor['quality']:.3f}" in text.stdout
    plain = json.loads(xfv_cli("verify", str(first), str(second), "--json").stdout)
    assert plain["quality"] is None and plain["calibration"].startswith("cscore of dlib fitted on LFW")


def test_explain_and_the_python_api_score_as_verify_does(
    calibration_file: Path, blurred_photo: Path, tmp_path: Path, lfw_root: Path
) -> None:
    first = lfw_image("Aaron_Peirsol", 1)
    verification = xfv.verify(first, blurred_photo, calibrator=calibration_file)
    assert verification.quality == pytest.approx(photo_quality(first, blurred_photo), abs=1e-9)
    small = ["--patch-sizes", "28", "--stride", "30", "--methods", "1"]
    explained = xfv_cli(
        "explain", str(first), str(blurred_photo), "--out", str(tmp_path), "--calibration", str(calibration_file),
        *small, "--json",
    )  # fmt: skip
    assert explained.returncode == 0, explained.stderr
    summary = json.loads(explained.stdout)
    assert summary["quality"] == pytest.approx(verification.quality, abs=1e-9)
    assert summary["confidence"] == pytest.approx(verification.confidence, abs=1e-4)
    settings = xfv.OcclusionSettings(patch_sizes=(28,), stride=30)
    explanation = xfv.XMaps("dlib", settings, calibrator=calibration_file).explain(first, blurred_photo, [1])
    assert explanation.quality == pytest.approx(verification.quality, abs=1e-9)
    assert "at pair quality" in explanation.title()
    aligned = [xfv.align(path) for path in (first, blurred_photo)]
    from_faces = xfv.verify(aligned[0], aligned[1], calibrator=calibration_file)
    assert from_faces.quality == pytest.approx(min(image_quality(face).score for face in aligned), abs=1e-9)


def test_another_models_calibration_is_refused_before_any_work(calibration_file: Path, tmp_path: Path) -> None:
    faceres = SHIPPED / "faceres-calibration.json"
    missing = str(tmp_path / "missing.jpg")  # never read: the calibration is checked first
    assert_one_line_error(
        xfv_cli("verify", missing, missing, "--calibration", str(faceres)), str(faceres), "faceres's distances"
    )
    assert_one_line_error(
        xfv_cli("explain", missing, missing, "--out", str(tmp_path), "--calibration", str(faceres)),
        "fitted on faceres's distances, not dlib's",
    )
    (tmp_path / "broken.json").write_text("{")
    assert_one_line_error(
        xfv_cli("verify", missing, missing, "--calibration", str(tmp_path / "broken.json")), "cannot read calibrator"
    )
    with pytest.raises(CalibrationError, match="faceres's distances"):
        xfv.XMaps("dlib", calibrator=faceres)
    dlib = load_calibrator(SHIPPED / "dlib-calibration.json")
    assert check_calibrator(dlib, get_model("dlib-int8")) is dlib  # int8 ships float32 dlib's calibration
    with pytest.raises(CalibrationError, match="needs each pair's quality"):
        confidence_of(load_calibrator(calibration_file), 0.05, 0.07)
    plain = CScoreCalibrator().fit(np.r_[np.zeros(20), np.ones(20)], np.r_[np.ones(20), np.zeros(20)] > 0)
    assert confidence_of(plain, 0.1, 0.5, quality=0.3) == confidence_of(plain, 0.1, 0.5)  # quality unused


def test_an_upload_is_scored_at_its_quality(
    client: TestClient, calibration_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose own calibration is quality-aware (a plug-in's spec may name one): the upload
    is scored at the uploaded photos' quality, which it keeps, and its X-Map job runs."""
    calibrator = load_calibrator(calibration_file)
    rule = uploads.decision_rule

    def quality_aware_rule(*args: object) -> tuple[float, str, object]:
        threshold, source, _ = rule(*args)  # type: ignore[arg-type]
        return threshold, source, calibrator

    monkeypatch.setattr(uploads, "decision_rule", quality_aware_rule)
    files = {"image1": photo("Aaron_Peirsol", 1), "image2": photo("Aaron_Peirsol", 2)}
    started = client.post("/api/explain", files=files)
    assert started.status_code == 202, started.text
    body = started.json()
    expected_quality = photo_quality(lfw_image("Aaron_Peirsol", 1), lfw_image("Aaron_Peirsol", 2))
    assert body["quality"] == pytest.approx(expected_quality, abs=1e-9)
    assert body["cscore"] == pytest.approx(float(calibrator.predict_confidence(body["distance"], body["quality"])))
    assert wait_for(client, body["job"])["status"] == "done"
    fetched = client.get(f"/api/uploads/{body['id']}").json()
    assert fetched["quality"] == body["quality"] and fetched["xmaps_ready"] is True
    monkeypatch.undo()  # the model's own calibration again: its C-Score depends on the distance alone
    plain = client.post("/api/verify", files=files).json()
    assert plain["quality"] is None and plain["cscore"] is not None
