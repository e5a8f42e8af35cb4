"""Reads dlib's DNN serialization of ``dlib_face_recognition_resnet_model_v1.dat``, without dlib.

dlib writes a network as nested C++ templates: the loss layer, then every ``add_layer`` /
``add_tag_layer`` / ``add_skip_layer`` wrapper from the output down to the input (each only a
version number), then the input layer, then each computational layer's details from the input
back up to the output. Numbers are dlib's variable-length integers (a control byte holding the
sign and byte count, then little-endian bytes), floats are (mantissa, exponent) integer pairs,
strings are a length then bytes, and tensors are shapes then raw little-endian float32s.

Tags and skips store no tag id (it lives only in the C++ type), so the wiring is recovered from
dlib's ResNet convention used by the face descriptor: a lone tag is ``tag1``, a skip directly
over a tag is ``skip1<tag2<...>>``, and an ``add_prev`` adds the nearest tag below it.

:func:`read_dlib_net` returns a :class:`DlibNet`: the layers in forward order, numbered like
dlib's own printout (``layer<0>`` is the loss, the input has the highest index). Any problem
raises :class:`~xfv.errors.ModelError` naming the layer (index and type) where reading failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xfv.errors import ModelError

#: (channels, rows, columns) of one sample's tensor.
Shape = tuple[int, int, int]


@dataclass(frozen=True)
class InputRGB:
    """``input_rgb_image_sized``: RGB pixels to ``(pixel - mean) / 256``, fixed image size."""

    index: int
    mean: tuple[float, float, float]
    rows: int
    cols: int


@dataclass(frozen=True, eq=False)
class Conv:
    """``con``: cross-correlation with bias; weights (out, in, rows, cols), zero padding."""

    index: int
    weights: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True, eq=False)
class Affine:
    """``affine``: ``x * gamma + beta``, a batch norm folded at training time.

    ``gamma`` and ``beta`` have shape (k,) in dlib's conv mode (one value per channel) and
    (k, rows, cols) in fc mode (one value per element).
    """

    index: int
    gamma: np.ndarray
    beta: np.ndarray

    @property
    def per_channel(self) -> bool:
        return self.gamma.ndim == 1


@dataclass(frozen=True)
class Relu:
    """``relu``: ``max(x, 0)``."""

    index: int


@dataclass(frozen=True)
class MaxPool:
    """``max_pool``: max over each window clipped to the image; window (0, 0) is the whole input."""

    index: int
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AvgPool:
    """``avg_pool``: mean over each window clipped to the image (padding is not counted)."""

    index: int
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Tag:
    """``tag<id>``: names the output below it for a later skip or add_prev."""

    index: int
    id: int


@dataclass(frozen=True)
class Skip:
    """``skip<id>``: continues from the output of the nearest ``tag<id>`` below."""

    index: int
    id: int


@dataclass(frozen=True)
class AddPrev:
    """``add_prev<id>``: adds the nearest ``tag<id>`` output below to the input.

    Sizes may differ: the sum has the larger channel count, rows and columns, and whatever one
    operand lacks (top-left aligned) counts as zero.
    """

    index: int
    id: int


@dataclass(frozen=True, eq=False)
class Fc:
    """``fc`` / ``fc_no_bias``: flattened input (k, rows, cols) times weights (inputs, outputs)."""

    index: int
    weights: np.ndarray
    bias: np.ndarray | None


@dataclass(frozen=True)
class LossMetric:
    """``loss_metric``: outputs its input unchanged as the embedding (margin: training only)."""

    index: int
    margin: float
    distance_threshold: float


Layer = InputRGB | Conv | Affine | Relu | MaxPool | AvgPool | Tag | Skip | AddPrev | Fc | LossMetric

#: Names of the layer types as dlib prints them, for messages.
LAYER_NAMES: dict[type, str] = {
    InputRGB: "input_rgb_image_sized",
    Conv: "con",
    Affine: "affine",
    Relu: "relu",
    MaxPool: "max_pool",
    AvgPool: "avg_pool",
    Tag: "tag",
    Skip: "skip",
    AddPrev: "add_prev",
    Fc: "fc",
    LossMetric: "loss_metric",
}


@dataclass(frozen=True)
class DlibNet:
    """A parsed dlib network: ``layers`` in forward order, from the input to the loss."""

    layers: tuple[Layer, ...]

    @property
    def input(self) -> InputRGB:
        layer = self.layers[0]
        assert isinstance(layer, InputRGB)
        return layer

    @property
    def embedding_size(self) -> int:
        channels, rows, cols = self.shapes()[-1]
        return channels * rows * cols

    def shapes(self) -> list[Shape]:
        """Each layer's output shape for one sample; raises ModelError where layers do not fit."""
        shapes: list[Shape] = []
        tags: dict[int, Shape] = {}
        shape: Shape = (0, 0, 0)
        for layer in self.layers:
            shape = _output_shape(layer, shape, tags)
            if isinstance(layer, Tag):
                tags[layer.id] = shape
            shapes.append(shape)
        return shapes

    def flops(self) -> int:
        """Floating-point operations for one face: 2 per multiply-add in con and fc, plus one
        per output element of bias, relu, add_prev and the input scaling, two per affine output
        and one per summed or compared element of pooling."""
        total = 0
        shape: Shape = (0, 0, 0)
        for layer, out in zip(self.layers, self.shapes(), strict=True):
            size = out[0] * out[1] * out[2]
            if isinstance(layer, InputRGB):
                total += 2 * size
            elif isinstance(layer, Conv):
                _, cin, kr, kc = layer.weights.shape
                total += size * (2 * cin * kr * kc + 1)
            elif isinstance(layer, Affine):
                total += 2 * size
            elif isinstance(layer, (Relu, AddPrev)):
                total += size
            elif isinstance(layer, (MaxPool, AvgPool)):
                rows, cols = _pool_window(layer, shape)
                total += size * rows * cols
            elif isinstance(layer, Fc):
                total += 2 * layer.weights.size + (0 if layer.bias is None else layer.bias.size)
            shape = out
        return total


def describe(layer: Layer) -> str:
    """``layer<12> con``: the layer as dlib's printout names it."""
    name = LAYER_NAMES[type(layer)]
    if isinstance(layer, (Tag, Skip, AddPrev)):
        name += str(layer.id)
    return f"layer<{layer.index}> {name}"


def _pool_window(layer: MaxPool | AvgPool, shape: Shape) -> tuple[int, int]:
    rows, cols = layer.window
    return (rows or shape[1], cols or shape[2])


def _conv_size(size: int, window: int, stride: int, padding: int) -> int:
    return 1 + (size + 2 * padding - window) // stride


def _output_shape(layer: Layer, shape: Shape, tags: dict[int, Shape]) -> Shape:
    def fail(message: str) -> ModelError:
        return ModelError(f"{describe(layer)}: {message}")

    channels, rows, cols = shape
    if isinstance(layer, InputRGB):
        return (3, layer.rows, layer.cols)
    if isinstance(layer, Conv):
        out, cin, kr, kc = layer.weights.shape
        if cin != channels:
            raise fail(f"filters take {cin} channels but the input has {channels}")
        if rows + 2 * layer.padding[0] < kr or cols + 2 * layer.padding[1] < kc:
            raise fail(f"{kr}x{kc} filters do not fit a {rows}x{cols} input")
        return (
            out,
            _conv_size(rows, kr, layer.stride[0], layer.padding[0]),
            _conv_size(cols, kc, layer.stride[1], layer.padding[1]),
        )
    if isinstance(layer, Affine):
        expected = (channels,) if layer.per_channel else shape
        if layer.gamma.shape != expected:
            raise fail(f"parameters of shape {layer.gamma.shape} do not fit an input of shape {shape}")
        return shape
    if isinstance(layer, (MaxPool, AvgPool)):
        wr, wc = _pool_window(layer, shape)
        if rows + 2 * layer.padding[0] < wr or cols + 2 * layer.padding[1] < wc:
            raise fail(f"{wr}x{wc} window does not fit a {rows}x{cols} input")
        return (
            channels,
            _conv_size(rows, wr, layer.stride[0], layer.padding[0]),
            _conv_size(cols, wc, layer.stride[1], layer.padding[1]),
        )
    if isinstance(layer, (Skip, AddPrev)):
        if layer.id not in tags:
            raise fail(f"no tag{layer.id} below it")
        if isinstance(layer, Skip):
            return tags[layer.id]
        other = tags[layer.id]
        return (max(channels, other[0]), max(rows, other[1]), max(cols, other[2]))
    if isinstance(layer, Fc):
        if layer.weights.shape[0] != channels * rows * cols:
            raise fail(f"weights take {layer.weights.shape[0]} inputs but the input has {channels * rows * cols}")
        return (layer.weights.shape[1], 1, 1)
    return shape  # Relu, Tag, LossMetric


# --------------------------------------------------------------------------------------------
# dlib's serialization primitives


class _FormatError(Exception):
    """A malformed value, reported by the caller with the layer being read."""


class _Reader:
    """Reads dlib's serialized primitives from a byte buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise _FormatError(f"file ends at byte {len(self.data)}, {size} more bytes needed (truncated?)")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise _FormatError(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def count(self) -> int:
        """A non-negative integer (sizes, counts, strides)."""
        value = self.integer()
        if value < 0:
            raise _FormatError(f"negative size {value} at byte {self.pos}")
        return value

    def peek_integer(self) -> int:
        start = self.pos
        try:
            return self.integer()
        finally:
            self.pos = start

    def floating(self) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise _FormatError(f"float at byte {self.pos} uses dlib's old text format, which is not supported")
        mantissa = self.integer()
        exponent = self.integer()
        specials = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        if exponent in specials:
            return specials[exponent]
        return float(np.ldexp(float(mantissa), exponent))

    def boolean(self) -> bool:
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise _FormatError(f"bad bool {byte!r} at byte {self.pos - 1}")
        return byte == b"1"

    def text(self, limit: int = 256) -> str:
        size = self.count()
        if size > limit:
            raise _FormatError(f"implausible string length {size} at byte {self.pos}")
        raw = self._take(size)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise _FormatError(f"non-text layer name {raw!r}") from None

    def expect_version(self, what: str, allowed: tuple[int, ...]) -> int:
        version = self.integer()
        if version not in allowed:
            raise _FormatError(f"unsupported {what} version {version} (expected {' or '.join(map(str, allowed))})")
        return version

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: (samples, k, rows, cols) float32."""
        self.expect_version("tensor", (2,))
        shape = tuple(self.count() for _ in range(4))
        size = int(np.prod(shape))
        return np.frombuffer(self._take(4 * size), dtype="<f4").astype(np.float32).reshape(shape)

    def alias_shape(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: only a shape, a view into a layer's parameter tensor."""
        self.expect_version("alias_tensor", (1,))
        return (self.count(), self.count(), self.count(), self.count())


# --------------------------------------------------------------------------------------------
# Layers


def _read_loss(reader: _Reader, index: int) -> LossMetric:
    name = reader.text()
    if name == "loss_metric_":  # dlib's first version had these values hard-coded
        return LossMetric(index, 0.1, 0.75)
    if name == "loss_metric_2":
        return LossMetric(index, reader.floating(), reader.floating())
    raise _FormatError(f"unsupported loss layer type {name!r} (only loss_metric is known)")


def _read_input(reader: _Reader, index: int) -> InputRGB:
    name = reader.text()
    if name != "input_rgb_image_sized":
        raise _FormatError(f"unsupported input layer type {name!r} (only input_rgb_image_sized is known)")
    mean = (reader.floating(), reader.floating(), reader.floating())
    return InputRGB(index, mean, reader.count(), reader.count())


def _split_params(params: np.ndarray, first: tuple[int, ...], second: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    flat = params.reshape(-1)
    n1, n2 = int(np.prod(first)), int(np.prod(second))
    if flat.size != n1 + n2:
        raise _FormatError(f"parameter tensor holds {flat.size} values, {n1} + {n2} expected")
    return flat[:n1].reshape(first), flat[n1:].reshape(second)


def _read_con(reader: _Reader, index: int) -> Conv:
    params = reader.tensor()
    filters, rows, cols = reader.count(), reader.count(), reader.count()
    stride = (reader.count(), reader.count())
    padding = (reader.count(), reader.count())
    weights_shape, bias_shape = reader.alias_shape(), reader.alias_shape()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.floating()
    if weights_shape[0] != filters or weights_shape[2:] != (rows, cols) or bias_shape[1] != filters:
        raise _FormatError(f"filter shape {weights_shape} disagrees with {filters} filters of {rows}x{cols}")
    if 0 in stride or padding[0] >= rows or padding[1] >= cols:
        raise _FormatError(f"bad stride {stride} or padding {padding} for {rows}x{cols} filters")
    weights, bias = _split_params(params, weights_shape, (filters,))
    return Conv(index, weights, bias, stride, padding)


def _read_affine(reader: _Reader, index: int) -> Affine:
    params = reader.tensor()
    gamma_shape, beta_shape = reader.alias_shape(), reader.alias_shape()
    mode = reader.integer()
    if gamma_shape != beta_shape or mode not in (0, 1):
        raise _FormatError(f"bad gamma/beta shapes {gamma_shape}/{beta_shape} or mode {mode}")
    # mode 0 is dlib's CONV_MODE (one value per channel), 1 its FC_MODE (one per element)
    shape = (gamma_shape[1],) if mode == 0 else gamma_shape[1:]
    gamma, beta = _split_params(params, shape, shape)
    return Affine(index, gamma, beta)


def _read_pool(reader: _Reader, index: int, kind: type[MaxPool] | type[AvgPool]) -> MaxPool | AvgPool:
    window = (reader.count(), reader.count())
    stride = (reader.count(), reader.count())
    padding = (reader.count(), reader.count())
    if 0 in stride:
        raise _FormatError(f"bad stride {stride}")
    return kind(index, window, stride, padding)


def _read_fc(reader: _Reader, index: int) -> Fc:
    outputs, inputs = reader.count(), reader.count()
    params = reader.tensor()
    weights_shape, _ = reader.alias_shape(), reader.alias_shape()
    bias_mode = reader.integer()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.floating()
    if weights_shape[:2] != (inputs, outputs) or bias_mode not in (0, 1):
        raise _FormatError(f"weight shape {weights_shape} or bias mode {bias_mode} disagrees with {inputs}x{outputs}")
    if bias_mode == 1:  # dlib's FC_NO_BIAS
        weights, _ = _split_params(params, (inputs, outputs), (0,))
        return Fc(index, weights, None)
    weights, bias = _split_params(params, (inputs, outputs), (outputs,))
    return Fc(index, weights, bias)


#: dlib's versioned layer names: the type as dlib prints it, and the reader of its details.
_DETAIL_READERS: dict[str, tuple[str, Callable[[_Reader, int], Layer]]] = {
    "con_4": ("con", _read_con),
    "affine_": ("affine", _read_affine),
    "relu_": ("relu", lambda reader, index: Relu(index)),
    "max_pool_2": ("max_pool", lambda reader, index: _read_pool(reader, index, MaxPool)),
    "avg_pool_2": ("avg_pool", lambda reader, index: _read_pool(reader, index, AvgPool)),
    # the tag id is not stored; it is resolved from the wiring afterwards
    "add_prev_": ("add_prev", lambda reader, index: AddPrev(index, 0)),
    "fc_2": ("fc", _read_fc),
}


def _read_layer_state(reader: _Reader) -> None:
    """Skip what ``add_layer`` stores after the details: three flags and three training-time
    tensors (x_grad, cached_output, and params_grad, or grad_final for the input add_layer)."""
    for _ in range(3):
        reader.boolean()
    for _ in range(3):
        reader.tensor()


# --------------------------------------------------------------------------------------------
# The network


_ADD_LAYER, _TAG_OR_SKIP = "add_layer", "tag or skip"


def _marker_layers(kinds: list[str]) -> dict[int, Tag | Skip]:
    """Tags and skips by position in ``kinds`` (top-down), per dlib's ResNet convention."""
    markers: dict[int, Tag | Skip] = {}
    position = 0
    while position < len(kinds):
        run = position
        while run < len(kinds) and kinds[run] == _TAG_OR_SKIP:
            run += 1
        if run - position == 1:
            markers[position] = Tag(position + 1, 1)
        elif run - position == 2:
            markers[position] = Skip(position + 1, 1)
            markers[position + 1] = Tag(position + 2, 2)
        elif run - position > 2:
            raise ModelError(
                f"layer<{position + 1}> tag or skip: {run - position} tag/skip layers in a row, "
                "which dlib's ResNet convention does not explain"
            )
        position = max(run, position + 1)
    return markers


def _wire_add_prevs(layers: list[Layer]) -> list[Layer]:
    """Give each add_prev the id of the nearest tag below it."""
    wired: list[Layer] = []
    last_tag: Tag | None = None
    for layer in layers:
        if isinstance(layer, Tag):
            last_tag = layer
        elif isinstance(layer, AddPrev):
            if last_tag is None:
                raise ModelError(f"{describe(layer)}: no tag below it")
            layer = AddPrev(layer.index, last_tag.id)
        wired.append(layer)
    return wired


class _NetReader:
    """Reads the layers in file order, remembering which layer it is in for error messages."""

    def __init__(self, data: bytes) -> None:
        self.reader = _Reader(data)
        self.index = 0
        self.what = "loss_metric"

    def at(self, index: int, what: str) -> None:
        self.index, self.what = index, what

    def details(self, index: int) -> Layer:
        """A computational layer's details and the add_layer state stored after them."""
        self.at(index, "computational layer")
        name = self.reader.text()
        if name not in _DETAIL_READERS:
            raise _FormatError(f"unknown layer type {name!r}")
        what, read = _DETAIL_READERS[name]
        self.at(index, what)
        layer = read(self.reader, index)
        _read_layer_state(self.reader)
        return layer

    def read(self) -> list[Layer]:
        """All layers in forward order, add_prev tag ids not yet resolved."""
        reader = self.reader
        reader.expect_version("add_loss_layer", (1,))
        loss = _read_loss(reader, 0)
        # Wrappers from the output down: add_layer version 2, tag or skip version 1. The input
        # add_layer (version 2 or 3) is followed by the input layer's name instead of a wrapper.
        kinds: list[str] = []
        while True:
            self.at(len(kinds) + 1, "add_layer, tag or skip")
            version = reader.integer()
            if version in (2, 3) and reader.peek_integer() > 3:
                break
            if version not in (1, 2):
                raise _FormatError(f"unsupported layer version {version}")
            kinds.append(_ADD_LAYER if version == 2 else _TAG_OR_SKIP)
        first = len(kinds) + 1
        self.at(first + 1, "input_rgb_image_sized")
        upward: list[Layer] = [_read_input(reader, first + 1), self.details(first)]
        if version == 3:
            reader.count()  # the input add_layer's sample expansion factor
        markers = _marker_layers(kinds)
        for position in reversed(range(len(kinds))):
            upward.append(markers[position] if position in markers else self.details(position + 1))
        self.at(0, "loss_metric")
        if reader.pos != len(reader.data):
            raise _FormatError(f"{len(reader.data) - reader.pos} unexpected bytes after the network")
        return [*upward, loss]


def parse_dlib_net(data: bytes, source: str = "dlib network") -> DlibNet:
    """Parse a serialized ``loss_metric`` network (see the module docstring for the format)."""
    net_reader = _NetReader(data)
    try:
        layers = net_reader.read()
        net = DlibNet(tuple(_wire_add_prevs(layers)))
        net.shapes()
    except _FormatError as exc:
        raise ModelError(
            f"{source}: layer<{net_reader.index}> {net_reader.what}: {exc} "
            "(corrupt, or not a dlib face descriptor network?)"
        ) from None
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    return net


def read_dlib_net(path: Path) -> DlibNet:
    """Read and parse a dlib ``.dat`` network file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read dlib model ({exc.strerror})") from None
    return parse_dlib_net(data, str(path))
