"""Writes a TF.js graph (:mod:`~xfv.models.tfjs_graph`) as an equivalent ONNX graph.

Only the nodes the chosen output depends on are converted, so a graph's other heads (FaceRes's
gender and age) neither cost time nor need supported ops. TensorFlow's image tensors are NHWC and
ONNX convolutions are NCHW: the ONNX input is NCHW (float32, the values the TF.js graph takes) and
every 4-D image tensor stays NCHW inside; constants broadcast against one are transposed to match,
and a tensor goes back to NHWC only where order matters (a reshape, a reduction that keeps the
channels and a spatial axis, a graph output).

:func:`tfjs_to_onnx` raises :class:`~xfv.errors.ModelError` naming the node for an op it does not
support (the list is :data:`SUPPORTED_OPS`) or for an attribute it cannot honour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from xfv.config import get_settings
from xfv.errors import ModelError
from xfv.models.onnx_graph import GraphBuilder
from xfv.models.tfjs_graph import TfjsGraph, TfjsNode, read_tfjs_graph, weight_files
from xfv.models.weights import sha256_of_file, write_atomically

#: Bump when the converter's output changes, so cached conversions are rebuilt.
CONVERTER_VERSION = 2
OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
#: An NHWC tensor held as NCHW, and back.
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


@dataclass(frozen=True)
class Value:
    """A converted TF tensor: its ONNX name (None for a constant not yet written), its rank, and
    whether a 4-D NHWC tensor is held as NCHW; ``const`` holds a constant's value."""

    name: str | None
    rank: int | None
    nchw: bool = False
    const: np.ndarray | None = None


def _nchw_const(value: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against an NHWC tensor, made to broadcast against its NCHW form."""
    if value.ndim == 0:
        return value
    if value.ndim > 4:
        raise ValueError(f"a constant of rank {value.ndim} cannot broadcast against an image tensor")
    return value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(TO_NCHW)


class _Converter(GraphBuilder):
    """Converts the nodes one output needs, each after its inputs."""

    def __init__(self, graph: TfjsGraph) -> None:
        super().__init__(reserved=(INPUT_NAME, OUTPUT_NAME))
        self.graph = graph
        self.values: dict[str, Value] = {}
        self.input_shape: list[int] | None = None
        #: Bounds (low, high; None: open) of the clamps written (Relu and Clip), by output name.
        self.clamps: dict[str, tuple[float | None, float | None]] = {}

    def clamp(self, tensor: str, name: str, low: float | None, high: float | None) -> str:
        """``tensor`` clamped to [low, high]: a Relu for [0, inf), a Clip otherwise."""
        if (low, high) == (0.0, None):
            out = self.node("Relu", [tensor], name)
        else:
            bounds = [self.constant(f"{name}/min", np.array(low, np.float32)) if low is not None else ""]
            if high is not None:
                bounds.append(self.constant(f"{name}/max", np.array(high, np.float32)))
            out = self.node("Clip", [tensor, *bounds], name)
        self.clamps[out] = (low, high)
        return out

    def merge_clamps(self, outputs: set[str]) -> None:
        """Fold each chain of clamps into one Clip (TF's Relu6 is Relu, Minimum 6, Maximum 0):
        exact, and ONNX Runtime then fuses the one Clip into the convolution before it."""
        uses: dict[str, int] = {}
        for node in self.nodes:
            for name in node.input:
                uses[name] = uses.get(name, 0) + 1
        kept: list[onnx.NodeProto | None] = []
        producers: dict[str, int] = {}
        for node in self.nodes:
            position = producers.get(node.input[0]) if node.output[0] in self.clamps and node.input else None
            source = kept[position] if position is not None else None
            if source is not None and position is not None and self._mergeable(source, uses, outputs):
                merged = self._merged_clamp(source, node)
                if merged is not None:
                    kept[position] = None
                    node = merged
            producers[node.output[0]] = len(kept)
            kept.append(node)
        self.nodes = [node for node in kept if node is not None]
        used = {name for node in self.nodes for name in node.input}
        self.initializers = [tensor for tensor in self.initializers if tensor.name in used]

    def _mergeable(self, source: onnx.NodeProto, uses: dict[str, int], outputs: set[str]) -> bool:
        name = source.output[0]
        return name in self.clamps and uses.get(name) == 1 and name not in outputs

    def _merged_clamp(self, source: onnx.NodeProto, node: onnx.NodeProto) -> onnx.NodeProto | None:
        """One Clip doing ``source`` then ``node`` (both clamps), or None when they do not overlap."""
        (low1, high1), (low2, high2) = self.clamps[source.output[0]], self.clamps[node.output[0]]
        low = max((v for v in (low1, low2) if v is not None), default=None)
        high = min((v for v in (high1, high2) if v is not None), default=None)
        if low is not None and high is not None and low > high:
            return None
        bounds = [self.constant(f"{node.name}/min", np.array(low, np.float32)) if low is not None else ""]
        if high is not None:
            bounds.append(self.constant(f"{node.name}/max", np.array(high, np.float32)))
        self.clamps[node.output[0]] = (low, high)
        return helper.make_node("Clip", [source.input[0], *bounds], [node.output[0]], name=node.name)

    def fail(self, node: TfjsNode, message: str) -> ModelError:
        return ModelError(f"{self.graph.source}: {node.describe()}: {message}")

    def tensor(self, value: Value, name: str, nchw: bool | None = None) -> str:
        """The ONNX name of ``value``, as NCHW or NHWC if asked (constants written on demand)."""
        if value.const is not None:
            array = value.const
            if array.dtype == np.float64:
                array = array.astype(np.float32)
            return self.constant(name, _nchw_const(array) if nchw else array)
        assert value.name is not None
        if nchw is None or value.rank != 4 or value.nchw == nchw:
            return value.name
        return self.node(
            "Transpose", [value.name], f"{name}_{'nchw' if nchw else 'nhwc'}", perm=list(TO_NCHW if nchw else TO_NHWC)
        )

    def const_input(self, node: TfjsNode, index: int) -> np.ndarray:
        value = self.values[node.inputs[index]]
        if value.const is None:
            raise self.fail(node, f"input {index + 1} ({node.inputs[index]!r}) must be a constant")
        return value.const

    def image_input(self, node: TfjsNode) -> str:
        """A 4-D image input, NCHW; NHWC data formats only (what TF.js writes)."""
        if node.attrs.get("data_format", "NHWC") != "NHWC":
            raise self.fail(node, f"data format {node.attrs['data_format']!r} is not supported (NHWC only)")
        value = self.values[node.inputs[0]]
        if value.rank not in (4, None) or value.const is not None:
            raise self.fail(node, "the input is not a 4-D image tensor")
        return self.tensor(value, node.name, nchw=True)

    # ---- driving

    def convert(self, output: str) -> onnx.ModelProto:
        order = self._topological(output)
        for node in order:
            handler = HANDLERS.get(node.op)
            if handler is None:
                raise self.fail(
                    node,
                    f"op {node.op!r} is not supported by xfv's TF.js converter (supported: {', '.join(SUPPORTED_OPS)})",
                )
            try:
                self.values[node.name] = handler(self, node)
            except (ValueError, IndexError, KeyError) as exc:
                raise self.fail(node, f"cannot convert ({exc})") from None
        result = self.values[output.removesuffix(":0")]
        if result.const is not None:
            raise ModelError(f"{self.graph.source}: output {output!r} is a constant")
        final = self.tensor(result, "output", nchw=False)
        rank = result.rank or 2
        self.merge_clamps({final})
        self.nodes.append(helper.make_node("Identity", [final], [OUTPUT_NAME], name=OUTPUT_NAME))
        if self.input_shape is None:
            raise ModelError(f"{self.graph.source}: output {output!r} does not depend on an input")
        height, width, channels = self.input_shape[1:]
        graph = helper.make_graph(
            self.nodes,
            "tfjs_graph",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", channels, height, width])],
            [
                helper.make_tensor_value_info(
                    OUTPUT_NAME, TensorProto.FLOAT, ["batch", *(f"d{i}" for i in range(1, rank))]
                )
            ],
            self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="xfv.models.tfjs_onnx",
            producer_version=str(CONVERTER_VERSION),
        )
        onnx.checker.check_model(model)
        return model

    def _topological(self, output: str) -> list[TfjsNode]:
        """The nodes ``output`` depends on, each after its inputs."""
        graph = self.graph
        order: list[TfjsNode] = []
        done: set[str] = set()
        stack: list[tuple[TfjsNode, bool]] = [(graph.node(output), False)]
        while stack:
            node, expanded = stack.pop()
            if node.name in done:
                continue
            if expanded:
                done.add(node.name)
                order.append(node)
                continue
            stack.append((node, True))
            for name in node.inputs:
                if ":" in name and not name.endswith(":0"):
                    raise self.fail(node, f"input {name!r} is a second output of a node, which is not supported")
                producer = graph.node(name, node)
                if producer.name not in done:
                    stack.append((producer, False))
        return order


# ---- op handlers: each returns the Value of the node's output


def _placeholder(c: _Converter, node: TfjsNode) -> Value:
    shape = node.attrs.get("shape") or []
    if len(shape) != 4 or shape[3] != 3 or min(shape[1:3]) <= 0:
        raise c.fail(node, f"the input must be a batch of RGB images (-1, H, W, 3), not of shape {shape}")
    if c.input_shape is not None:
        raise c.fail(node, "the output depends on two inputs; one image input is supported")
    c.input_shape = shape
    return Value(INPUT_NAME, 4, nchw=True)


def _const(c: _Converter, node: TfjsNode) -> Value:
    value = c.graph.weights[node.name]
    return Value(None, value.ndim, const=value)


def _identity(c: _Converter, node: TfjsNode) -> Value:
    return c.values[node.inputs[0]]


def _conv_attributes(c: _Converter, node: TfjsNode, kernel: tuple[int, int]) -> dict[str, Any]:
    strides = node.attrs.get("strides", [1, 1, 1, 1])
    dilations = node.attrs.get("dilations", [1, 1, 1, 1])
    padding = node.attrs.get("padding", "VALID")
    attributes: dict[str, Any] = {
        "kernel_shape": list(kernel),
        "strides": [strides[1], strides[2]],
        "dilations": [dilations[1], dilations[2]],
    }
    if padding == "SAME":
        attributes["auto_pad"] = "SAME_UPPER"  # TensorFlow's SAME: any odd extra padding at the end
    elif padding == "EXPLICIT":
        pads = node.attrs.get("explicit_paddings", [])
        if len(pads) != 8:
            raise c.fail(node, f"explicit paddings {pads} are not 4 (before, after) pairs")
        attributes["pads"] = [pads[2], pads[4], pads[3], pads[5]]
    elif padding == "VALID":
        attributes["pads"] = [0, 0, 0, 0]
    else:
        raise c.fail(node, f"padding {padding!r} is not supported")
    return attributes


def _conv(c: _Converter, node: TfjsNode, depthwise: bool) -> str:
    """A (depthwise) convolution of the node's first two inputs; returns its ONNX output."""
    tensor = c.image_input(node)
    filters = c.const_input(node, 1).astype(np.float32)
    if filters.ndim != 4:
        raise c.fail(node, f"filters of shape {filters.shape} are not 4-D")
    rows, cols, channels, multiplier = filters.shape
    if depthwise:  # TF (H, W, C, M), output channel c * M + m; ONNX (C * M, 1, H, W), group C
        weights = filters.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, rows, cols)
    else:  # TF (H, W, in, out); ONNX (out, in, H, W)
        weights = filters.transpose(3, 2, 0, 1)
    attributes = _conv_attributes(c, node, (rows, cols))
    if depthwise:
        attributes["group"] = channels
    return c.node("Conv", [tensor, c.constant(f"{node.name}/filters", weights)], node.name, **attributes)


def _activation(c: _Converter, node: TfjsNode, tensor: str, name: str, extra: list[str]) -> str:
    """One fused activation after a fused convolution or matrix product."""
    if name == "Relu":
        return c.clamp(tensor, f"{node.name}/relu", 0.0, None)
    if name == "Relu6":
        return c.clamp(tensor, f"{node.name}/relu6", 0.0, 6.0)
    if name == "Elu":
        return c.node("Elu", [tensor], f"{node.name}/elu")
    if name == "Sigmoid":
        return c.node("Sigmoid", [tensor], f"{node.name}/sigmoid")
    if name == "LeakyRelu":
        return c.node(
            "LeakyRelu", [tensor], f"{node.name}/leakyrelu", alpha=float(node.attrs.get("leakyrelu_alpha", 0.2))
        )
    if name == "Prelu" and extra:
        return c.node("PRelu", [tensor, extra[0]], f"{node.name}/prelu")
    raise c.fail(node, f"fused activation {name!r} is not supported")


def _fused(c: _Converter, node: TfjsNode, tensor: str, nchw: bool) -> str:
    """The fused ops after a fused convolution or matrix product: BiasAdd, then an activation."""
    fused = list(node.attrs.get("fused_ops", []))
    extra = [c.tensor(c.values[name], f"{node.name}/arg", nchw=nchw) for name in node.inputs[2:]]
    if fused and fused[0] == "BiasAdd":
        if not extra:
            raise c.fail(node, "BiasAdd is fused but no bias is given")
        tensor = c.node("Add", [tensor, extra.pop(0)], f"{node.name}/bias")
        fused.pop(0)
    if len(fused) > 1:
        raise c.fail(node, f"fused ops {node.attrs.get('fused_ops')} are not supported")
    return _activation(c, node, tensor, fused[0], extra) if fused else tensor


def _conv2d(c: _Converter, node: TfjsNode) -> Value:
    return Value(_conv(c, node, depthwise=False), 4, nchw=True)


def _depthwise(c: _Converter, node: TfjsNode) -> Value:
    return Value(_conv(c, node, depthwise=True), 4, nchw=True)


def _fused_conv2d(c: _Converter, node: TfjsNode) -> Value:
    return Value(_fused(c, node, _conv(c, node, depthwise=False), nchw=True), 4, nchw=True)


def _fused_depthwise(c: _Converter, node: TfjsNode) -> Value:
    return Value(_fused(c, node, _conv(c, node, depthwise=True), nchw=True), 4, nchw=True)


def _matmul_product(c: _Converter, node: TfjsNode) -> str:
    a, b = (c.values[name] for name in node.inputs[:2])
    if a.rank != 2 or (b.rank not in (2, None)):
        raise c.fail(node, "only products of 2-D tensors are supported")
    left, right = c.tensor(a, f"{node.name}/a"), c.tensor(b, f"{node.name}/b")
    if node.attrs.get("transpose_a"):
        left = c.node("Transpose", [left], f"{node.name}/a_t", perm=[1, 0])
    if node.attrs.get("transpose_b"):
        right = c.node("Transpose", [right], f"{node.name}/b_t", perm=[1, 0])
    return c.node("MatMul", [left, right], node.name)


def _matmul(c: _Converter, node: TfjsNode) -> Value:
    return Value(_matmul_product(c, node), 2)


def _fused_matmul(c: _Converter, node: TfjsNode) -> Value:
    return Value(_fused(c, node, _matmul_product(c, node), nchw=False), 2)


#: NumPy twins of the element-wise ops, for folding constants.
_NUMPY_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": np.divide, "Maximum": np.maximum, "Minimum": np.minimum,
}  # fmt: skip
_ONNX_BINARY = {
    "Add": "Add",
    "AddV2": "Add",
    "BiasAdd": "Add",
    "Sub": "Sub",
    "Mul": "Mul",
    "RealDiv": "Div",
    "Maximum": "Max",
    "Minimum": "Min",
}


def _binary(c: _Converter, node: TfjsNode) -> Value:
    """Element-wise ops with broadcasting; a scalar bound of Minimum/Maximum becomes a Clip."""
    op = "Add" if node.op in ("AddV2", "BiasAdd") else node.op
    a, b = (c.values[name] for name in node.inputs[:2])
    if a.const is not None and b.const is not None:
        value = _NUMPY_BINARY[op](a.const, b.const)
        return Value(None, value.ndim, const=value)
    nchw = any(v.nchw and v.rank == 4 for v in (a, b)) and all(v.const is not None or v.rank == 4 for v in (a, b))
    rank = max((v.rank or 0) for v in (a, b))
    if op in ("Maximum", "Minimum"):
        tensor, bound = (a, b) if b.const is not None else (b, a)
        if bound.const is not None and bound.const.size == 1:
            level = float(bound.const.reshape(()))
            low, high = (level, None) if op == "Maximum" else (None, level)
            return Value(c.clamp(c.tensor(tensor, node.name, nchw=nchw), node.name, low, high), rank, nchw=nchw)
    inputs = [c.tensor(v, f"{node.name}/{i}", nchw=nchw) for i, v in enumerate((a, b))]
    return Value(c.node(_ONNX_BINARY[node.op], inputs, node.name), rank, nchw=nchw)


_ONNX_UNARY = {"Sigmoid": "Sigmoid", "Tanh": "Tanh", "Elu": "Elu", "Abs": "Abs", "Sqrt": "Sqrt", "Exp": "Exp", "Log": "Log", "Neg": "Neg"}  # fmt: skip


def _unary(c: _Converter, node: TfjsNode) -> Value:
    value = c.values[node.inputs[0]]
    tensor = c.tensor(value, node.name)
    if node.op in ("Relu", "Relu6"):
        out = c.clamp(tensor, node.name, 0.0, 6.0 if node.op == "Relu6" else None)
    elif node.op == "Square":
        out = c.node("Mul", [tensor, tensor], node.name)
    elif node.op == "Rsqrt":
        out = c.node("Reciprocal", [c.node("Sqrt", [tensor], f"{node.name}/sqrt")], node.name)
    else:
        out = c.node(_ONNX_UNARY[node.op], [tensor], node.name)
    return Value(out, value.rank, nchw=value.nchw)


def _reduce(c: _Converter, node: TfjsNode) -> Value:
    """Mean, Sum and Max over constant axes; on an NCHW tensor when the axes allow it."""
    value = c.values[node.inputs[0]]
    axes = sorted({int(a) % (value.rank or 1) for a in np.atleast_1d(c.const_input(node, 1))})
    keep = bool(node.attrs.get("keep_dims", False))
    on_nchw = value.nchw and value.rank == 4 and (keep or {1, 2} <= set(axes))
    tensor = c.tensor(value, node.name, nchw=on_nchw if value.rank == 4 else None)
    onnx_axes = [TO_NHWC[a] for a in axes] if on_nchw else axes
    op = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax"}[node.op]
    keepdims = int(keep)
    if op == "ReduceSum":  # opset 13+: axes are an input
        out = c.node(
            op, [tensor, c.constant(f"{node.name}/axes", np.array(onnx_axes, np.int64))], node.name, keepdims=keepdims
        )
    else:
        out = c.node(op, [tensor], node.name, axes=onnx_axes, keepdims=keepdims)
    rank = (value.rank or 0) if keep else (value.rank or 0) - len(axes)
    return Value(out, rank, nchw=on_nchw and keep)


def _softmax(c: _Converter, node: TfjsNode) -> Value:
    value = c.values[node.inputs[0]]
    return Value(c.node("Softmax", [c.tensor(value, node.name, nchw=False)], node.name, axis=-1), value.rank)


def _pad(c: _Converter, node: TfjsNode) -> Value:
    """Pad, PadV2 (with a constant value) and MirrorPad (REFLECT) of an image tensor."""
    paddings = c.const_input(node, 1).astype(np.int64)
    if paddings.shape != (4, 2) or paddings[0].any() or paddings[3].any():
        raise c.fail(node, f"paddings {paddings.tolist()} are not spatial paddings of an image tensor")
    tensor = c.image_input(node)
    pads = [0, 0, int(paddings[1, 0]), int(paddings[2, 0]), 0, 0, int(paddings[1, 1]), int(paddings[2, 1])]
    inputs = [tensor, c.constant(f"{node.name}/pads", np.array(pads, np.int64))]
    mode = "constant"
    if node.op == "PadV2":
        inputs.append(c.constant(f"{node.name}/value", c.const_input(node, 2).astype(np.float32).reshape(())))
    elif node.op == "MirrorPad":
        if node.attrs.get("mode") != "REFLECT":
            raise c.fail(node, f"mirror pad mode {node.attrs.get('mode')!r} is not supported (REFLECT only)")
        mode = "reflect"
    return Value(c.node("Pad", inputs, node.name, mode=mode), 4, nchw=True)


def _reshape(c: _Converter, node: TfjsNode) -> Value:
    value = c.values[node.inputs[0]]
    shape = c.const_input(node, 1).astype(np.int64).reshape(-1)
    tensor = c.tensor(value, node.name, nchw=False)  # TF reshapes in NHWC order
    return Value(c.node("Reshape", [tensor, c.constant(f"{node.name}/shape", shape)], node.name), len(shape))


def _squeeze(c: _Converter, node: TfjsNode) -> Value:
    value = c.values[node.inputs[0]]
    axes = [int(a) for a in node.attrs.get("squeeze_dims", [])]
    if not axes or value.rank is None:
        raise c.fail(node, "a squeeze needs explicit axes")
    tensor = c.tensor(value, node.name, nchw=False)
    out = c.node("Squeeze", [tensor, c.constant(f"{node.name}/axes", np.array(axes, np.int64))], node.name)
    return Value(out, value.rank - len(axes))


HANDLERS: dict[str, Callable[[_Converter, TfjsNode], Value]] = {
    "Placeholder": _placeholder,
    "Const": _const,
    "Identity": _identity,
    "Conv2D": _conv2d,
    "DepthwiseConv2dNative": _depthwise,
    "_FusedConv2D": _fused_conv2d,
    "FusedDepthwiseConv2dNative": _fused_depthwise,
    "MatMul": _matmul,
    "_FusedMatMul": _fused_matmul,
    **{op: _binary for op in _ONNX_BINARY},
    **{op: _unary for op in (*_ONNX_UNARY, "Relu", "Relu6", "Square", "Rsqrt")},
    "Mean": _reduce,
    "Sum": _reduce,
    "Max": _reduce,
    "Softmax": _softmax,
    "Pad": _pad,
    "PadV2": _pad,
    "MirrorPad": _pad,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
}
#: The TF ops :func:`tfjs_to_onnx` converts.
SUPPORTED_OPS = tuple(sorted(HANDLERS))


def choose_output(graph: TfjsGraph, output: str | None) -> str:
    """``output`` checked against the graph, or the graph's only signature output."""
    if output:
        graph.node(output)
        return output.removesuffix(":0")
    if len(graph.outputs) == 1:
        return graph.outputs[0]
    named = ", ".join(graph.outputs) or "none"
    raise ModelError(f"{graph.source}: name the output to use as the embedding (the signature lists: {named})")


def tfjs_to_onnx(graph: TfjsGraph, output: str | None = None) -> onnx.ModelProto:
    """An ONNX graph computing ``output`` (default: the only signature output) of ``graph`` from an
    NCHW float32 input holding what the TF.js graph takes in NHWC."""
    return _Converter(graph).convert(choose_output(graph, output))


def tfjs_digest(model_json: Path, output: str | None = None) -> str:
    """SHA-256 over a TF.js model's JSON, its weight files (in manifest order) and the output."""
    digest = hashlib.sha256()
    for path in (Path(model_json), *weight_files(Path(model_json))):
        try:
            digest.update(bytes.fromhex(sha256_of_file(path)))
        except FileNotFoundError:
            raise ModelError(f"{path}: weight file named by {Path(model_json).name} not found") from None
        except OSError as exc:
            raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    digest.update((output or "").encode())
    return digest.hexdigest()


def converted_tfjs_path(model_json: Path, output: str | None = None) -> Path:
    """The ONNX conversion of a TF.js graph model in the model cache, converting it if needed.

    The file name holds a hash of the model's files and output and the converter version; it is
    written atomically (:func:`~xfv.models.weights.write_atomically`)."""
    model_json = Path(model_json)
    digest = tfjs_digest(model_json, output)
    target = get_settings().model_cache_dir / f"tfjs-{model_json.stem}-{digest}-v{CONVERTER_VERSION}.onnx"
    if target.is_file():
        return target
    model = tfjs_to_onnx(read_tfjs_graph(model_json), output)
    return write_atomically(target, model.SerializeToString(), f"the converted model {model_json.name}")
