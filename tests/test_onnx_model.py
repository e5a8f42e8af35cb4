"""The generic ONNX backend on a tiny ONNX model the test builds itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from xfv.errors import ModelError
from xfv.models import available_models, get_model
from xfv.models.onnx_model import OnnxModel, OnnxModelSpec

WEIGHTS = np.arange(24, dtype=np.float32).reshape(3, 8) / 10


def tiny_model(path: Path, layout: str = "NCHW", size: int = 112) -> Path:
    """Embedding = per-channel mean of the input tensor times a fixed 3x8 matrix."""
    shape = [None, 3, size, size] if layout == "NCHW" else [None, size, size, 3]
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "weights"], ["embedding"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, 8])],
        initializer=[
            numpy_helper.from_array(WEIGHTS, "weights"),
            numpy_helper.from_array(np.array(axes, np.int64), "axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def expected_embedding(faces: np.ndarray, colour: str, mean: float, std: float) -> np.ndarray:
    x = faces[..., ::-1] if colour == "BGR" else faces
    pooled = ((x.astype(np.float32) - mean) / std).mean(axis=(1, 2))
    return pooled @ WEIGHTS


@pytest.mark.parametrize(("layout", "colour"), [("NCHW", "RGB"), ("NHWC", "BGR")])
def test_preprocessing_follows_the_spec(tmp_path: Path, layout: str, colour: str) -> None:
    path = tiny_model(tmp_path / "tiny.onnx", layout)
    model = OnnxModel(OnnxModelSpec(path=path, layout=layout, colour=colour))
    faces = np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    faces[..., 0] = 250  # make the colour order matter
    assert model.spec.embedding_size == 8 and model.spec.alignment == "arcface"
    assert np.allclose(model.embed(faces), expected_embedding(faces, colour, 127.5, 127.5), rtol=1e-4, atol=1e-4)


def test_json_spec_and_user_registry(tmp_path: Path, xfv_home: Path) -> None:
    tiny_model(tmp_path / "tiny.onnx", size=128)
    spec = {
        "onnx": "tiny.onnx",
        "name": "tiny-face",
        "input_size": 128,
        "mean": [0, 0, 0],
        "std": [255, 255, 255],
        "threshold": 0.4,
    }
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    model = get_model(str(tmp_path / "tiny.json"))
    assert (model.spec.name, model.spec.input_size, model.spec.default_threshold) == ("tiny-face", 128, 0.4)
    registry = xfv_home / "models"
    registry.mkdir(exist_ok=True)
    (registry / "tiny-face.json").write_text(json.dumps({**spec, "onnx": str(tmp_path / "tiny.onnx")}))
    assert "tiny-face" in [s.name for s in available_models()]
    (registry / "tiny-face.json").unlink()


def test_bad_models_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.onnx: not a loadable ONNX model"):
        get_model(str(tmp_path / "junk.onnx"))
    with pytest.raises(ModelError, match="missing.onnx: ONNX model file not found"):
        get_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match="unknown model 'arcface'"):
        get_model("arcface")
    (tmp_path / "bad.json").write_text(json.dumps({"onnx": "x.onnx", "layout": "CHW"}))
    with pytest.raises(ModelError, match="layout must be NCHW or NHWC"):
        get_model(str(tmp_path / "bad.json"))
    (tmp_path / "typo.json").write_text(json.dumps({"onnx": "x.onnx", "input_sise": 112}))
    with pytest.raises(ModelError, match="unknown model spec keys: input_sise"):
        get_model(str(tmp_path / "typo.json"))


def test_spec_with_a_calibration_gives_threshold_and_confidence(tmp_path: Path) -> None:
    from xfv.method.cscore import CScoreCalibrator
    from xfv.pipeline.calibrate import save_calibrator
    from xfv.pipeline.verify import confidence_of, model_calibrator

    rng = np.random.default_rng(1)
    distances = np.concatenate([rng.normal(0.3, 0.05, 300), rng.normal(0.7, 0.05, 300)])
    labels = np.arange(600) < 300
    calibrator = CScoreCalibrator().fit(distances, labels, model_name="tiny", data_description="synthetic")
    save_calibrator(calibrator, tmp_path / "cal.json")
    tiny_model(tmp_path / "tiny.onnx")
    (tmp_path / "tiny.json").write_text(json.dumps({"onnx": "tiny.onnx", "calibration": "cal.json"}))
    model = get_model(str(tmp_path / "tiny.json"))
    assert 0.4 < model.spec.default_threshold < 0.6 and model.spec.threshold_source == "synthetic"
    calibrator = model_calibrator(model)
    assert confidence_of(calibrator, 0.1, model.spec.default_threshold) > 0.99
    assert confidence_of(calibrator, model.spec.default_threshold, model.spec.default_threshold) < 0.8
    (tmp_path / "broken.json").write_text(json.dumps({"onnx": "tiny.onnx", "calibration": "nowhere.json"}))
    with pytest.raises(ModelError, match="calibration .*nowhere.json cannot be read"):
        get_model(str(tmp_path / "broken.json"))
