"""xfv's TF.js graph-model reader and ONNX writer on small graph models the tests write: every
supported op and stored dtype against TensorFlow.js itself, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.tfjs_fixtures import dequantised, node, run_reference, write_tfjs_model
from xfv.errors import ModelError
from xfv.models.tfjs_graph import read_tfjs_graph
from xfv.models.tfjs_onnx import SUPPORTED_OPS, converted_tfjs_path, tfjs_to_onnx

QUANTISE = {"bias": "float16", "gamma": "uint8", "dense": "float16"}
INPUT_SHAPE = {"shape": {"dim": [{"size": "-1"}, {"size": "8"}, {"size": "9"}, {"size": "3"}]}}


def conv_attrs(strides: int = 1, padding: str = "VALID") -> dict[str, object]:
    return {"strides": [1, strides, strides, 1], "padding": padding, "data_format": "NHWC", "dilations": [1, 1, 1, 1]}


def synthetic_weights() -> dict[str, np.ndarray]:
    f = np.float32
    rng = np.random.default_rng(7)
    return {
        "pads": np.array([[0, 0], [1, 1], [1, 2], [0, 0]], np.int32),
        "filters": rng.normal(0, 0.3, (3, 3, 3, 4)).astype(f),
        "bias": rng.normal(0, 0.5, 4).astype(f),
        "six": np.array(6, f),
        "zero": np.array(0, f),
        "depthwise": rng.normal(0, 0.3, (3, 3, 4, 2)).astype(f),
        "gamma": rng.uniform(0.5, 1.5, 8).astype(f),
        "alpha": rng.uniform(0.1, 0.3, 8).astype(f),
        "pointwise": rng.normal(0, 0.3, (1, 1, 8, 6)).astype(f),
        "pointwise_bias": rng.normal(0, 0.1, 6).astype(f),
        "axes": np.array([1, 2], np.int32),
        "dense": rng.normal(0, 0.3, (6, 5)).astype(f),
        "dense_bias": rng.normal(0, 0.1, 5).astype(f),
        "flat_shape": np.array([-1, 4 * 5 * 6], np.int32),
        "fc_weights": rng.normal(0, 0.1, (4 * 5 * 6, 7)).astype(f),
        "shift": rng.normal(0, 0.1, 7).astype(f),
        "mean": np.array([127.5], f),
        "scale": np.array([1 / 128], f),
    }


def synthetic_nodes() -> list[dict[str, object]]:
    """input (8x9 RGB) -> normalise -> pad -> conv -> relu6 -> depthwise (SAME, stride 2) -> PReLU
    -> fused 1x1 conv; then a mean-pooled head and a flattened head, and an unused Erf."""
    return [
        node("input", "Placeholder", shape=INPUT_SHAPE, dtype={"type": "DT_FLOAT"}),
        node("centred", "Sub", ["input", "mean"]),
        node("scaled", "Mul", ["centred", "scale"]),
        node("padded", "Pad", ["scaled", "pads"]),
        node("conv", "Conv2D", ["padded", "filters"], **conv_attrs()),
        node("biased", "BiasAdd", ["conv", "bias"], data_format="NHWC"),
        node("relu", "Relu", ["biased"]),
        node("clipped", "Minimum", ["relu", "six"]),
        node("relu6", "Maximum", ["clipped", "zero"]),
        node("dw", "DepthwiseConv2dNative", ["relu6", "depthwise"], **conv_attrs(2, "SAME")),
        node("dw_scaled", "Mul", ["dw", "gamma"]),
        node("positive", "Maximum", ["zero", "dw_scaled"]),
        node("negative", "Minimum", ["zero", "dw_scaled"]),
        node("leak", "Mul", ["alpha", "negative"]),
        node("prelu", "AddV2", ["positive", "leak"]),
        node("pw", "_FusedConv2D", ["prelu", "pointwise", "pointwise_bias"], fused_ops=["BiasAdd", "Relu"], num_args=1, epsilon=0.0, **conv_attrs()),
        node("pooled", "Mean", ["pw", "axes"], keep_dims=False),
        node("head", "_FusedMatMul", ["pooled", "dense", "dense_bias"], fused_ops=["BiasAdd", "Relu"], num_args=1, epsilon=0.0, transpose_a=False, transpose_b=False),
        node("probabilities", "Softmax", ["head"]),
        node("flat", "Reshape", ["pw", "flat_shape"]),
        node("fc", "MatMul", ["flat", "fc_weights"], transpose_a=False, transpose_b=False),
        node("embedding", "AddV2", ["fc", "shift"]),
        node("unused", "Erf", ["pooled"]),
    ]  # fmt: skip


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    return write_tfjs_model(
        tmp_path / "tfjs", synthetic_nodes(), synthetic_weights(), ["probabilities", "embedding"], QUANTISE
    )


def run_onnx(model_json: Path, output: str, inputs: np.ndarray) -> np.ndarray:
    onnx_model = tfjs_to_onnx(read_tfjs_graph(model_json), output)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))})[0]


def test_weights_are_dequantised_as_tfjs_does(synthetic: Path) -> None:
    graph = read_tfjs_graph(synthetic)
    for name, value in synthetic_weights().items():
        expected = dequantised(value, QUANTISE.get(name))
        assert graph.weights[name].dtype == expected.dtype and np.array_equal(graph.weights[name], expected), name
    assert graph.inputs == ("input",) and graph.outputs == ("probabilities", "embedding")


def test_every_op_matches_tensorflow_js(synthetic: Path, reference_runtime: Path, tmp_path: Path) -> None:
    inputs = np.random.default_rng(1).uniform(0, 255, (3, 8, 9, 3)).astype(np.float32)
    for output in ("probabilities", "embedding"):
        ours = run_onnx(synthetic, output, inputs)
        theirs = run_reference(reference_runtime, synthetic, output, inputs, tmp_path / output)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1e-5, output
    used = {n["op"] for n in synthetic_nodes()} - {"Erf"}
    assert used <= set(SUPPORTED_OPS)


def test_unsupported_op_names_the_node(synthetic: Path) -> None:
    graph = read_tfjs_graph(synthetic)
    tfjs_to_onnx(graph, "embedding")  # the unused Erf is never converted
    with pytest.raises(ModelError, match=r"node 'unused' \(Erf\): op 'Erf' is not supported"):
        tfjs_to_onnx(graph, "unused")


def test_output_must_be_named_when_there_are_several(synthetic: Path) -> None:
    graph = read_tfjs_graph(synthetic)
    with pytest.raises(ModelError, match="name the output to use as the embedding .*probabilities, embedding"):
        tfjs_to_onnx(graph)
    with pytest.raises(ModelError, match="tensor 'nowhere' is not in the graph"):
        tfjs_to_onnx(graph, "nowhere")


def test_bad_files_are_clear_errors(synthetic: Path) -> None:
    weights = synthetic.with_suffix(".bin")
    data = weights.read_bytes()
    weights.write_bytes(data[:-10])
    with pytest.raises(
        ModelError, match=r"model.bin\): the weight files hold .* bytes, but weight 'shift' needs .*truncated"
    ):
        read_tfjs_graph(synthetic)
    weights.write_bytes(data + b"extra")
    with pytest.raises(ModelError, match="but the manifest describes"):
        read_tfjs_graph(synthetic)
    weights.unlink()
    with pytest.raises(ModelError, match="model.bin: weight file named by model.json not found"):
        read_tfjs_graph(synthetic)
    synthetic.write_text(synthetic.read_text()[:100])
    with pytest.raises(ModelError, match="model.json: not a TF.js graph model \\(invalid JSON"):
        read_tfjs_graph(synthetic)
    with pytest.raises(ModelError, match="missing.json: TF.js model file not found"):
        read_tfjs_graph(synthetic.with_name("missing.json"))


def test_const_without_a_value_and_unsupported_dtype(tmp_path: Path) -> None:
    path = write_tfjs_model(tmp_path, [node("x", "Placeholder")], {"w": np.ones(2, np.float32)}, ["x"])
    model = json.loads(path.read_text())
    model["modelTopology"]["node"].append({"name": "lonely", "op": "Const", "attr": {}})
    path.write_text(json.dumps(model))
    with pytest.raises(ModelError, match=r"node 'lonely' \(Const\) has no value in the weights manifest"):
        read_tfjs_graph(path)
    model["weightsManifest"][0]["weights"][0]["dtype"] = "string"
    path.write_text(json.dumps(model))
    with pytest.raises(ModelError, match="weight 'w' has an unsupported dtype 'string'"):
        read_tfjs_graph(path)


def test_conversion_is_cached_by_content(synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFV_CACHE_DIR", str(tmp_path / "cache"))
    first = converted_tfjs_path(synthetic, "embedding")
    assert first.parent == tmp_path / "cache" / "models" and first.is_file()
    assert converted_tfjs_path(synthetic, "embedding") == first and first.stat().st_mtime_ns == first.stat().st_mtime_ns
    assert converted_tfjs_path(synthetic, "probabilities") != first  # another output, another graph
    weights = synthetic.with_suffix(".bin")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # other weights, another conversion
    weights.write_bytes(bytes(data))
    assert converted_tfjs_path(synthetic, "embedding") != first
    assert not list((tmp_path / "cache" / "models").glob(".*"))  # no temporary file left behind
