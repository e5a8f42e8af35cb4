"""``dlib``: dlib's ResNet face descriptor converted to ONNX and run by ONNX Runtime.

:func:`to_onnx` turns a :class:`~xfv.models.dlib_dat.DlibNet` into an equivalent ONNX graph whose
input is float32 NCHW RGB with raw pixel values 0..255 (dlib's mean subtraction and /256 happen
inside the graph). :class:`DlibOnnxModel` converts dlib's weight file once into the model cache,
keyed by the file's SHA-256, and embeds through :class:`~xfv.models.onnx_model.OnnxModel`.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from xfv.config import get_settings
from xfv.errors import ModelError
from xfv.models.base import FaceModel, ModelSpec
from xfv.models.dlib_dat import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    DlibNet,
    Fc,
    InputRGB,
    LossMetric,
    MaxPool,
    Relu,
    Shape,
    Skip,
    Tag,
    describe,
    read_dlib_net,
)
from xfv.models.incremental import IncrementalRunner
from xfv.models.onnx_graph import GraphBuilder
from xfv.models.onnx_model import OnnxModel, OnnxModelSpec, session_from_bytes
from xfv.models.weights import file_sha256, resnet_descriptor_path, write_atomically

#: Bump when the converter's output changes, so cached conversions are rebuilt.
CONVERTER_VERSION = 2
OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
#: Numeric precisions of the dlib model: float32, or int8 weights and activations.
PRECISIONS = ("fp32", "int8")
#: Bump when the int8 quantisation recipe changes, so cached quantised models are rebuilt.
QUANTISATION_VERSION = 1


def _fold_affine(weights: np.ndarray, bias: np.ndarray, affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights and bias with a following per-channel affine folded in."""
    gamma = affine.gamma.astype(np.float64)
    return weights * gamma[:, None, None, None], bias * gamma + affine.beta


def _fold_input(weights: np.ndarray, bias: np.ndarray, layer: InputRGB) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights and bias taking raw pixels: dlib's ``(pixel - mean) / 256`` folded in.

    Only valid for an unpadded first convolution (dlib pads the centred image with zeros).
    Dividing by 256 is exact; the mean becomes a bias term.
    """
    mean = np.asarray(layer.mean, dtype=np.float64)
    scaled = weights / 256
    return scaled, bias - (scaled * mean[None, :, None, None]).sum(axis=(1, 2, 3))


def _zero_pad_to(graph: GraphBuilder, tensor: str, shape: Shape, target: Shape, name: str) -> str:
    """Extend channels, rows and columns at their ends with zeros, as dlib's add_prev does.

    Extra channels alone come from a 1x1 convolution with identity weights (exact, and unlike
    Pad it keeps ONNX Runtime's blocked-layout convolutions and their fused adds together).
    """
    if shape == target:
        return tensor
    if shape[1:] == target[1:]:
        identity = np.eye(target[0], shape[0], dtype=np.float32).reshape(target[0], shape[0], 1, 1)
        return graph.node("Conv", [tensor, graph.constant(f"{name}_w", identity)], name, kernel_shape=[1, 1])
    pads = np.array([0, 0, 0, 0, 0, *(t - s for t, s in zip(target, shape, strict=True))], dtype=np.int64)
    return graph.node("Pad", [tensor, graph.constant(f"{name}_pads", pads)], name, mode="constant")


def _pool(graph: GraphBuilder, layer: MaxPool | AvgPool, tensor: str, shape: Shape, name: str) -> str:
    """dlib pooling: windows clipped to the image, so padding never counts (floor output size)."""
    op = "MaxPool" if isinstance(layer, MaxPool) else "AveragePool"
    if layer.window == (0, 0) and layer.stride == (1, 1) and layer.padding == (0, 0):
        return graph.node(f"Global{op}", [tensor], name)
    window = [w or s for w, s in zip(layer.window, shape[1:], strict=True)]
    pads = [*layer.padding, *layer.padding]
    extra = {"count_include_pad": 0} if op == "AveragePool" else {}
    return graph.node(op, [tensor], name, kernel_shape=window, strides=list(layer.stride), pads=pads, **extra)


def to_onnx(net: DlibNet) -> onnx.ModelProto:
    """An ONNX graph computing what dlib computes for ``net``, for any batch size."""
    graph = GraphBuilder()
    layers = net.layers
    shapes = net.shapes()
    tags: dict[int, tuple[str, Shape]] = {}
    tensor, shape = INPUT_NAME, (0, 0, 0)
    folded: set[int] = set()
    for position, layer in enumerate(layers):
        if position in folded:
            continue
        name = f"l{layer.index}_{type(layer).__name__.lower()}"
        out_shape = shapes[position]
        if isinstance(layer, InputRGB):
            following = layers[position + 1] if position + 1 < len(layers) else None
            if not (isinstance(following, Conv) and following.padding == (0, 0)):
                mean = np.array(layer.mean, dtype=np.float32).reshape(1, 3, 1, 1)
                centred = graph.node("Sub", [tensor, graph.constant(f"{name}_mean", mean)], f"{name}_centred")
                scale = graph.constant(f"{name}_scale", np.array(1 / 256, dtype=np.float32))
                tensor = graph.node("Mul", [centred, scale], name)
        elif isinstance(layer, Conv):
            weights, bias = layer.weights.astype(np.float64), layer.bias.astype(np.float64)
            following = layers[position + 1] if position + 1 < len(layers) else None
            if isinstance(following, Affine) and following.per_channel:
                weights, bias = _fold_affine(weights, bias, following)
                folded.add(position + 1)
                name = f"{name}_affine"
            if tensor == INPUT_NAME:
                weights, bias = _fold_input(weights, bias, net.input)
            tensor = graph.node(
                "Conv",
                [
                    tensor,
                    graph.constant(f"{name}_w", weights.astype(np.float32)),
                    graph.constant(f"{name}_b", bias.astype(np.float32)),
                ],
                name,
                kernel_shape=list(weights.shape[2:]),
                strides=list(layer.stride),
                pads=[*layer.padding, *layer.padding],
            )
        elif isinstance(layer, Affine):
            param_shape = (1, -1, 1, 1) if layer.per_channel else (1, *layer.gamma.shape)
            gamma = graph.constant(f"{name}_gamma", layer.gamma.reshape(param_shape))
            beta = graph.constant(f"{name}_beta", layer.beta.reshape(param_shape))
            tensor = graph.node("Add", [graph.node("Mul", [tensor, gamma], f"{name}_scaled"), beta], name)
        elif isinstance(layer, Relu):
            tensor = graph.node("Relu", [tensor], name)
        elif isinstance(layer, (MaxPool, AvgPool)):
            tensor = _pool(graph, layer, tensor, shape, name)
        elif isinstance(layer, Tag):
            tags[layer.id] = (tensor, out_shape)
        elif isinstance(layer, Skip):
            tensor = tags[layer.id][0]
        elif isinstance(layer, AddPrev):
            other, other_shape = tags[layer.id]
            this = _zero_pad_to(graph, tensor, shape, out_shape, f"{name}_pad_input")
            other = _zero_pad_to(graph, other, other_shape, out_shape, f"{name}_pad_tag")
            tensor = graph.node("Add", [this, other], name)
        elif isinstance(layer, Fc):
            flat = graph.node("Flatten", [tensor], f"{name}_flat", axis=1)
            tensor = graph.node("MatMul", [flat, graph.constant(f"{name}_w", layer.weights)], name)
            if layer.bias is not None:
                tensor = graph.node("Add", [tensor, graph.constant(f"{name}_b", layer.bias)], f"{name}_biased")
        elif isinstance(layer, LossMetric):
            tensor = graph.node("Flatten", [tensor], OUTPUT_NAME, axis=1)
        shape = out_shape
    if tensor != OUTPUT_NAME:
        raise ModelError(f"{describe(layers[-1])}: the network does not end in a loss_metric layer")
    height, width = net.input.rows, net.input.cols
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "dlib_face_descriptor",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, height, width])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", net.embedding_size])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="xfv.models.dlib_onnx",
        producer_version=str(CONVERTER_VERSION),
    )
    onnx.checker.check_model(model)
    return model


def converted_model_path(dat_path: Path | None = None) -> Path:
    """The ONNX conversion of dlib's weight file in the model cache, converting it if needed.

    The file name holds the weight file's SHA-256 and the converter version; it is written to a
    temporary file and renamed, so concurrent processes never see a partial model.
    """
    dat_path = Path(dat_path or resnet_descriptor_path())
    folder = get_settings().model_cache_dir
    target = folder / f"dlib-{file_sha256(dat_path)}-v{CONVERTER_VERSION}.onnx"
    if target.is_file():
        return target
    model = to_onnx(read_dlib_net(dat_path))
    return write_atomically(target, model.SerializeToString(), "the converted dlib model")


def quantized_model_path(dat_path: Path | None = None) -> Path:
    """dlib's converted model with int8 weights (per output channel) and dynamically quantised
    activations (ONNX Runtime's ``quantize_dynamic``), in the model cache beside the float model.
    The first convolution stays float32: it sees raw pixels, and quantising it costs the most
    map fidelity for the least work."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = converted_model_path(dat_path)
    target = source.with_name(f"{source.stem}-int8-q{QUANTISATION_VERSION}.onnx")
    if target.is_file():
        return target
    handle, temp = tempfile.mkstemp(dir=source.parent, prefix=f".{target.stem}-", suffix=".onnx")
    os.close(handle)
    try:
        first = onnx.load(source).graph.node[0].name
        quantize_dynamic(str(source), temp, weight_type=QuantType.QUInt8, per_channel=True, nodes_to_exclude=[first])
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


#: At most this many threads split a batch of incremental inference (parts stay of tens of samples).
INCREMENTAL_WORKERS = 4


class DlibOnnxModel(FaceModel):
    """dlib's face descriptor on ONNX Runtime: same embeddings as ``dlib-native``, much faster.

    Occluded copies of a face are embedded by incremental inference
    (:class:`~xfv.models.incremental.IncrementalRunner`) unless ``XFV_INCREMENTAL=0``.

    ``precision="int8"`` runs the int8-quantised graph instead (:func:`quantized_model_path`), a
    face at a time: its activations are quantised with each input's own range, so a face's
    embedding never depends on the batch it came in. It is judged by map fidelity and accuracy
    against float32, not by speed, and always makes full passes.
    """

    batch_size = 32
    #: Occlusions per incremental batch (measured best of 32 to 256 on 2 cores at 28 px).
    changed_batch_size = 128

    def __init__(self, spec: ModelSpec, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.spec = spec
        self.precision = precision
        path = converted_model_path() if precision == "fp32" else quantized_model_path()
        onnx_spec = OnnxModelSpec(
            path=path,
            name=spec.name,
            input_size=spec.input_size,
            layout="NCHW",
            colour="RGB",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            alignment="dlib",
        )
        self._onnx = OnnxModel(onnx_spec, spec=spec)
        self._path = path
        self._runner: IncrementalRunner | None = None

    def embed_batch(self, faces: np.ndarray) -> np.ndarray:
        if self.precision == "int8":
            return np.concatenate([self._onnx.embed_batch(faces[i : i + 1]) for i in range(len(faces))])
        return self._onnx.embed_batch(faces)

    def incremental_runner(self) -> IncrementalRunner:
        """The incremental-inference runner over this model's graph (built on first use): the
        ``XFV_THREADS`` cores shared by up to :data:`INCREMENTAL_WORKERS` worker threads, each on
        its share of a batch with sessions of the remaining threads (on 2 cores: 2 workers with
        single-threaded sessions, measured faster than one with two threads: the many small
        operations scale better across samples than inside one)."""
        if self._runner is None:
            threads = get_settings().threads
            workers = min(threads, INCREMENTAL_WORKERS)
            factory = functools.partial(session_from_bytes, threads=max(1, threads // workers))
            self._runner = IncrementalRunner(
                onnx.load(self._path), self.spec.input_size, self._onnx.preprocess, factory, workers=workers
            )
        return self._runner

    def _incremental(self) -> bool:
        return self.precision == "fp32" and get_settings().incremental_occlusion

    def embed_changed_batch(self, face: np.ndarray, faces: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        if not self._incremental():
            return self.embed_batch(faces)
        return self.incremental_runner().embed(face, faces, boxes)

    def prepare_changed(self, boxes: np.ndarray) -> None:
        if self._incremental():
            self.incremental_runner().prepare(boxes)
