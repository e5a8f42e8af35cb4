"""The ``xfv`` command as a user runs it: real model, real LFW photos, clear one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import lfw_image


def xfv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xfv.cli", *args], capture_output=True, text=True, timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_verify_same_and_different_people(lfw_root: Path) -> None:
    same = xfv("verify", str(lfw_image("Aaron_Peirsol", 1)), str(lfw_image("Aaron_Peirsol", 2)), "--json")
    assert same.returncode == 0, same.stderr
    result = json.loads(same.stdout)
    assert result["same"] is True and result["distance"] <= result["threshold"]
    assert "LFW" in result["threshold_source"]
    assert 0.5 <= result["confidence"] <= 1 and result["calibration"].startswith("cscore of dlib fitted on LFW")
    different = xfv("verify", str(lfw_image("Aaron_Peirsol", 1)), str(lfw_image("Colin_Powell", 1)))
    assert different.returncode == 0, different.stderr
    assert different.stdout.startswith("different people") and "LFW" in different.stdout
    assert "C-Score 0.9" in different.stdout


def test_bad_inputs_exit_non_zero_with_one_line(tmp_path: Path, lfw_root: Path) -> None:
    good = str(lfw_image("Aaron_Peirsol", 1))
    assert_one_line_error(xfv("verify", str(tmp_path / "missing.jpg"), good), "missing.jpg", "file not found")
    (tmp_path / "notes.jpg").write_text("hello")
    assert_one_line_error(xfv("verify", str(tmp_path / "notes.jpg"), good), "notes.jpg", "not an image")
    data = lfw_image("Aaron_Peirsol", 1).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    assert_one_line_error(xfv("verify", str(tmp_path / "cut.jpg"), good), "cut.jpg", "truncated or corrupt")
    buffer = io.BytesIO()
    Image.new("RGB", (250, 250), (180, 200, 220)).save(buffer, "JPEG")
    (tmp_path / "sky.jpg").write_bytes(buffer.getvalue())
    assert_one_line_error(xfv("verify", good, str(tmp_path / "sky.jpg")), "sky.jpg", "no face found")
    root = tmp_path / "lfw"
    (root / "images_deepfunneled").mkdir(parents=True)
    (root / "pairs.txt").write_text("10 300\nAaron 1 two\n")
    assert_one_line_error(
        xfv("evaluate", "--protocol", "lfw", "--root", str(root)), "pairs.txt:2", "image number 'two'"
    )
    assert_one_line_error(xfv("verify", good, good, "--model", "nope"), "unknown model 'nope'")


def test_embed_writes_embeddings_in_input_order_with_a_sidecar(tmp_path: Path, lfw_root: Path) -> None:
    images = [str(lfw_image("Aaron_Peirsol", 1)), str(lfw_image("Colin_Powell", 1)), str(lfw_image("Aaron_Peirsol", 1))]
    result = xfv("embed", *images, "--out", str(tmp_path / "gallery.npy"))
    assert result.returncode == 0, result.stderr
    embeddings = np.load(tmp_path / "gallery.npy")
    assert embeddings.shape == (3, 128)
    assert np.allclose(embeddings[0], embeddings[2]) and not np.allclose(embeddings[0], embeddings[1])
    sidecar = json.loads((tmp_path / "gallery.json").read_text())
    assert sidecar["images"] == images and sidecar["model"]["name"] == "dlib"


def test_models_lists_the_builtin_models() -> None:
    result = xfv("models", "--json")
    assert result.returncode == 0, result.stderr
    names = {spec["name"]: spec for spec in json.loads(result.stdout)}
    assert names["dlib"]["embedding_size"] == 128 and names["dlib-native"]["input_size"] == 150


@pytest.mark.parametrize("command", [["explain", "--help"], ["evaluate", "--help"]])
def test_help_works(command: list[str]) -> None:
    assert xfv(*command).returncode == 0
