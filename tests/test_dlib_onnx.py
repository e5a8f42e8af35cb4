"""The ``dlib`` ONNX backend: parser of dlib's .dat file, converter, cache, equivalence with dlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from xfv.errors import ModelError
from xfv.faces import align_path
from xfv.models import dlib_onnx
from xfv.models.base import ModelSpec
from xfv.models.dlib_dat import (
    AddPrev,
    Affine,
    AvgPool,
    Conv,
    DlibNet,
    Fc,
    InputRGB,
    Layer,
    LossMetric,
    MaxPool,
    Relu,
    Skip,
    Tag,
    parse_dlib_net,
    read_dlib_net,
)
from xfv.models.dlib_native import DLIB_EMBEDDING_SIZE, DLIB_INPUT_SIZE, DlibNativeModel
from xfv.models.weights import file_sha256, resnet_descriptor_path

N_FACES = 200
TOLERANCE = 1e-4


def _spec(name: str) -> ModelSpec:
    return ModelSpec(name=name, input_size=DLIB_INPUT_SIZE, embedding_size=DLIB_EMBEDDING_SIZE, alignment="dlib")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XFV_CACHE_DIR", str(tmp_path))
    return tmp_path / "models"


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return resnet_descriptor_path().read_bytes()


@pytest.fixture(scope="module")
def lfw_faces(lfw_root: Path) -> np.ndarray:
    """Aligned faces of the first photo of the first ``N_FACES`` LFW people (sorted by name)."""
    people = sorted(p for p in (lfw_root / "images_deepfunneled").iterdir() if p.is_dir())[:N_FACES]
    spec = _spec("dlib")
    return np.stack([align_path(p / f"{p.name}_0001.jpg", spec, mode="lfw-funneled") for p in people])


def test_parses_dlibs_face_descriptor() -> None:
    net = read_dlib_net(resnet_descriptor_path())
    layers = net.layers
    assert isinstance(layers[0], InputRGB) and (layers[0].rows, layers[0].cols) == (150, 150)
    assert np.allclose(layers[0].mean, (122.782, 117.001, 104.298))
    assert isinstance(layers[-1], LossMetric) and layers[-1].index == 0
    assert sum(isinstance(layer, Conv) for layer in layers) == 29
    skips = [position for position, layer in enumerate(layers) if isinstance(layer, Skip)]
    assert len(skips) == 4  # residual_down: add_prev2<avg_pool<skip1<tag2<block<tag1<...>>>>>>
    for position in skips:
        tag, skip, add = layers[position - 1], layers[position], layers[position + 2]
        assert isinstance(tag, Tag) and isinstance(skip, Skip) and isinstance(add, AddPrev)
        assert (tag.id, skip.id, add.id) == (2, 1, 2)
    assert {layer.id for layer in layers if isinstance(layer, Tag)} == {1, 2}
    assert isinstance(layers[-2], Fc) and layers[-2].weights.shape == (256, 128) and layers[-2].bias is None
    shapes = net.shapes()
    assert shapes[-1] == (128, 1, 1) and net.embedding_size == 128
    # the 8x8 -> 3x3 down-sampling block adds a 4x4 skip: dlib zero-pads to the larger size
    assert (256, 4, 4) in shapes and (256, 3, 3) in shapes
    assert 0.5e9 < net.flops() < 0.6e9


def test_truncated_dat_names_the_layer(tmp_path: Path, dat_bytes: bytes) -> None:
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(dat_bytes[: len(dat_bytes) // 2])
    with pytest.raises(
        ModelError, match=r"truncated\.dat: layer<\d+> (con|affine|relu|fc|avg_pool|add_prev): file ends .*truncated"
    ):
        read_dlib_net(truncated)


def test_unknown_layer_type_names_the_layer(dat_bytes: bytes) -> None:
    # details are stored from the input up, so the first relu in the file is layer<128>
    corrupt = dat_bytes.replace(b"\x01\x05relu_", b"\x01\x05rexu_", 1)
    with pytest.raises(ModelError, match=r"layer<128> computational layer: unknown layer type 'rexu_'"):
        parse_dlib_net(corrupt)


def test_not_a_dat_file_is_a_model_error(dat_bytes: bytes) -> None:
    with pytest.raises(ModelError, match=r"layer<0> loss_metric"):
        parse_dlib_net(b"\x89PNG\r\n\x1a\n not a dlib model")
    with pytest.raises(ModelError, match=r"unexpected bytes after the network"):
        parse_dlib_net(dat_bytes + b"\x00")


def _reference_forward(net: DlibNet, images: np.ndarray) -> np.ndarray:
    """dlib's forward pass written out plainly in float64, following dlib's CPU code."""
    x: np.ndarray = images
    tags: dict[int, np.ndarray] = {}
    for layer in net.layers:
        if isinstance(layer, InputRGB):
            x = (images.transpose(0, 3, 1, 2) - np.array(layer.mean)[None, :, None, None]) / 256
        elif isinstance(layer, Conv):
            (py, px), (sy, sx) = layer.padding, layer.stride
            padded = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
            _, _, kr, kc = layer.weights.shape
            rows, cols = (padded.shape[2] - kr) // sy + 1, (padded.shape[3] - kc) // sx + 1
            x = layer.bias[None, :, None, None].astype(np.float64)
            for r in range(kr):
                for c in range(kc):
                    patch = padded[:, :, r : r + sy * (rows - 1) + 1 : sy, c : c + sx * (cols - 1) + 1 : sx]
                    x = x + np.einsum("nihw,oi->nohw", patch, layer.weights[:, :, r, c])
        elif isinstance(layer, Affine):
            shape = (1, -1, 1, 1) if layer.per_channel else (1, *layer.gamma.shape)
            x = x * layer.gamma.reshape(shape) + layer.beta.reshape(shape)
        elif isinstance(layer, Relu):
            x = np.maximum(x, 0)
        elif isinstance(layer, (MaxPool, AvgPool)):
            # windows start at output * stride - padding and are clipped to the image
            wr, wc = layer.window[0] or x.shape[2], layer.window[1] or x.shape[3]
            (py, px), (sy, sx) = layer.padding, layer.stride
            rows, cols = (x.shape[2] + 2 * py - wr) // sy + 1, (x.shape[3] + 2 * px - wc) // sx + 1
            pooled = np.empty((*x.shape[:2], rows, cols))
            reduce = np.max if isinstance(layer, MaxPool) else np.mean
            for r in range(rows):
                for c in range(cols):
                    top, left = max(r * sy - py, 0), max(c * sx - px, 0)
                    window = x[:, :, top : r * sy - py + wr, left : c * sx - px + wc]
                    pooled[:, :, r, c] = reduce(window, axis=(2, 3))
            x = pooled
        elif isinstance(layer, Tag):
            tags[layer.id] = x
        elif isinstance(layer, Skip):
            x = tags[layer.id]
        elif isinstance(layer, AddPrev):
            other = tags[layer.id]
            total = np.zeros((len(x), *np.maximum(x.shape[1:], other.shape[1:])))
            total[:, : x.shape[1], : x.shape[2], : x.shape[3]] += x
            total[:, : other.shape[1], : other.shape[2], : other.shape[3]] += other
            x = total
        elif isinstance(layer, Fc):
            x = x.reshape(len(x), -1) @ layer.weights + (0 if layer.bias is None else layer.bias)
        elif isinstance(layer, LossMetric):
            x = x.reshape(len(x), -1)
    return x


def test_converter_follows_dlib_semantics_on_a_synthetic_net() -> None:
    """Paths the face descriptor does not take: a padded first con, an element-wise affine,
    padded max and average pooling, and add_prev padding channels of one operand and rows and
    columns of the other."""
    rng = np.random.default_rng(7)

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(size=shape).astype(np.float32)

    layers: list[Layer] = [
        InputRGB(18, (120.5, 110.25, 100.0), 12, 10),
        Conv(17, normal(4, 3, 3, 3), normal(4), (1, 1), (1, 1)),
        Affine(16, normal(4, 12, 10), normal(4, 12, 10)),
        Relu(15),
        MaxPool(14, (3, 3), (2, 2), (1, 1)),
        Tag(13, 1),
        Conv(12, normal(6, 4, 3, 3), normal(6), (2, 2), (0, 0)),
        Affine(11, normal(6), normal(6)),
        Tag(10, 2),
        Skip(9, 1),
        AvgPool(8, (2, 2), (2, 2), (1, 1)),
        AddPrev(7, 2),
        Relu(6),
        AvgPool(5, (0, 0), (1, 1), (0, 0)),
        Fc(4, normal(6, 5), normal(5)),
        LossMetric(0, 0.04, 0.6),
    ]
    net = DlibNet(tuple(layers))
    assert net.shapes()[4] == (4, 6, 5) and net.shapes()[10] == (4, 4, 3) and net.shapes()[11] == (6, 4, 3)
    images = rng.integers(0, 256, size=(3, 12, 10, 3)).astype(np.float32)
    session = ort.InferenceSession(dlib_onnx.to_onnx(net).SerializeToString(), providers=["CPUExecutionProvider"])
    output = session.run(None, {dlib_onnx.INPUT_NAME: images.transpose(0, 3, 1, 2).copy()})[0]
    expected = _reference_forward(net, images.astype(np.float64))
    assert output.shape == (3, 5)
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)


def test_converted_model_is_cached_and_reused(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = dlib_onnx.converted_model_path()
    assert path.parent == cache_dir and file_sha256(resnet_descriptor_path()) in path.name
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temporary file left behind
    written = path.stat().st_mtime_ns

    def no_conversion(*args: object) -> None:
        raise AssertionError("the cached ONNX model should have been reused")

    monkeypatch.setattr(dlib_onnx, "to_onnx", no_conversion)
    model = dlib_onnx.DlibOnnxModel(_spec("dlib"))
    assert dlib_onnx.converted_model_path() == path and path.stat().st_mtime_ns == written
    assert model.embed(np.zeros((2, 150, 150, 3), dtype=np.uint8)).shape == (2, 128)


def test_onnx_matches_dlib_native_on_lfw(cache_dir: Path, lfw_faces: np.ndarray) -> None:
    assert len(lfw_faces) >= N_FACES
    onnx_embeddings = dlib_onnx.DlibOnnxModel(_spec("dlib")).embed(lfw_faces)
    native_embeddings = DlibNativeModel(_spec("dlib-native")).embed(lfw_faces)
    difference = np.abs(onnx_embeddings - native_embeddings).max()
    assert difference <= TOLERANCE, f"largest embedding difference {difference:.2e} > {TOLERANCE}"
