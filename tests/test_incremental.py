"""Incremental occlusion inference equals full passes; progressive maps end in the one-shot map."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import lfw_image
from xfv.cache import ArrayCache
from xfv.method.occlusion import OcclusionPlan, OcclusionSettings
from xfv.models.base import FaceModel, ModelSpec
from xfv.models.incremental import IncrementalRunner
from xfv.models.onnx_model import session_from_bytes
from xfv.pipeline.explain import OcclusionEngine, explain_pair, explain_pair_progressively

TOLERANCE = 1e-4


def _small_resnet(seed: int = 0) -> onnx.ModelProto:
    """A 42x42 CNN with what dlib's ResNet has: an unpadded strided conv, max pool, padded convs,
    a residual add, a strided block whose average-pooled shortcut gains channels, and a global pool."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []

    def const(name: str, shape: tuple[int, ...], scale: float = 0.2) -> str:
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def conv(x: str, name: str, cin: int, cout: int, k: int, s: int, p: int) -> onnx.NodeProto:
        w, b = const(f"{name}_w", (cout, cin, k, k)), const(f"{name}_b", (cout,))
        return helper.make_node("Conv", [x, w, b], [name], name=name, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)

    eye = numpy_helper.from_array(np.eye(8, 4, dtype=np.float32).reshape(8, 4, 1, 1), "widen_w")
    inits.append(eye)
    nodes = [
        conv("image", "c1", 3, 4, 5, 2, 0),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("MaxPool", ["r1"], ["m1"], name="m1", kernel_shape=[3, 3], strides=[2, 2]),
        conv("m1", "c2", 4, 4, 3, 1, 1),
        helper.make_node("Relu", ["c2"], ["r2"], name="r2"),
        conv("r2", "c3", 4, 4, 3, 1, 1),
        helper.make_node("Add", ["c3", "m1"], ["a1"], name="a1"),
        helper.make_node("Relu", ["a1"], ["r3"], name="r3"),
        conv("r3", "c4", 4, 8, 3, 2, 0),
        helper.make_node("Relu", ["c4"], ["r4"], name="r4"),
        helper.make_node("AveragePool", ["r3"], ["p1"], name="p1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "widen_w"], ["w1"], name="w1", kernel_shape=[1, 1]),
        helper.make_node("Add", ["w1", "r4"], ["a2"], name="a2"),
        helper.make_node("Relu", ["a2"], ["r5"], name="r5"),
        helper.make_node("GlobalAveragePool", ["r5"], ["g"], name="g"),
        helper.make_node("Flatten", ["g"], ["embedding"], name="flat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 42, 42])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _preprocess(faces: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(faces.transpose(0, 3, 1, 2), dtype=np.float32) / 255


def test_incremental_inference_equals_full_passes_on_a_small_resnet() -> None:
    model = _small_resnet()
    runner = IncrementalRunner(model, 42, _preprocess, session_from_bytes, switch_fraction=1.0)
    assert [u.nodes[0].op_type for u in runner.units] == [
        "Conv",
        "MaxPool",
        "Conv",
        "Conv",
        "Conv",
        "AveragePool",
        "Conv",
    ]
    full = session_from_bytes(model.SerializeToString())
    rng = np.random.default_rng(1)
    face = rng.integers(0, 256, (42, 42, 3), dtype=np.uint8)
    for size in (3, 8, 17, 42):  # corners, edges and a patch covering the whole face
        boxes, occluded = [], []
        for y, x in [
            (0, 0),
            (42 - size, 42 - size),
            (0, 42 - size),
            (min(11, 42 - size), min(17, 42 - size)),
            (42 - size, 0),
        ]:
            copy = face.copy()
            copy[y : y + size, x : x + size] = rng.integers(0, 256, (size, size, 3))
            boxes.append((y, y + size, x, x + size))
            occluded.append(copy)
        occluded = np.stack(occluded)
        expected = full.run(None, {"image": _preprocess(occluded)})[0]
        got = runner.embed(face, occluded, np.array(boxes))
        assert np.abs(got - expected).max() <= 1e-5, size
        incremental_flops, full_flops = runner.flops(np.array(boxes))
        assert incremental_flops <= full_flops


def test_prepared_runner_builds_no_session_while_embedding() -> None:
    built: list[bytes] = []

    def factory(model: bytes) -> object:
        built.append(model)
        return session_from_bytes(model)

    runner = IncrementalRunner(_small_resnet(), 42, _preprocess, factory, switch_fraction=0.5)
    batches = [np.array([[0, 3, 0, 3], [0, 3, 5, 8]]), np.array([[10, 30, 10, 30]]), np.array([[0, 42, 0, 42]])]
    for boxes in batches:
        runner.prepare(boxes)
    prepared = len(built)
    assert prepared >= len(runner.units) + 2  # every unit, the clean pass, at least one suffix
    face = np.random.default_rng(3).integers(0, 256, (42, 42, 3), dtype=np.uint8)
    for boxes in batches:
        occluded = np.repeat(face[None], len(boxes), axis=0)
        for copy, (y0, y1, x0, x1) in zip(occluded, boxes, strict=True):
            copy[y0:y1, x0:x1] = 0
        runner.embed(face, occluded, boxes)
    assert len(built) == prepared


def test_worker_threads_and_concurrent_faces_give_the_single_thread_embeddings() -> None:
    model = _small_resnet()
    single = IncrementalRunner(model, 42, _preprocess, session_from_bytes, switch_fraction=1.0)
    split = IncrementalRunner(model, 42, _preprocess, session_from_bytes, switch_fraction=1.0, workers=2)
    rng = np.random.default_rng(5)
    faces = rng.integers(0, 256, (2, 42, 42, 3), dtype=np.uint8)
    boxes = np.array([[y, y + 9, x, x + 9] for y in range(0, 34, 6) for x in range(0, 34, 11)])
    occluded = np.repeat(faces[:, None], len(boxes), axis=1)
    for copies in occluded:
        for copy, (y0, y1, x0, x1) in zip(copies, boxes, strict=True):
            copy[y0:y1, x0:x1] = 255
    expected = [single.embed(face, copies, boxes) for face, copies in zip(faces, occluded, strict=True)]
    with ThreadPoolExecutor(2) as pool:  # two explanations at once on one runner
        futures = [pool.submit(split.embed, faces[i % 2], occluded[i % 2], boxes) for i in range(8)]
        for i, future in enumerate(futures):
            assert np.abs(future.result() - expected[i % 2]).max() <= 1e-5


class _Plain(FaceModel):
    """A generic backend without incremental inference: a fixed random projection of the pixels."""

    def __init__(self) -> None:
        self.spec = ModelSpec("plain", 16, 4, "arcface")
        self.weights = np.random.default_rng(0).standard_normal((16 * 16 * 3, 4)).astype(np.float32)

    def embed_batch(self, faces: np.ndarray) -> np.ndarray:
        return faces.reshape(len(faces), -1).astype(np.float32) @ self.weights


def test_generic_models_embed_changed_faces_in_full() -> None:
    model = _Plain()
    faces = np.random.default_rng(2).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    boxes = np.array([[0, 4, 0, 4]] * 3)
    assert np.array_equal(model.embed_changed(faces[0], faces, boxes), model.embed(faces))
    with pytest.raises(ValueError, match="one box"):
        model.embed_changed(faces[0], faces, boxes[:2])


class _Recording(_Plain):
    """Records the boxes of every batch it prepares and every batch it embeds as changed copies."""

    changed_batch_size = 7

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[np.ndarray] = []
        self.embedded: list[np.ndarray] = []

    def prepare_changed(self, boxes: np.ndarray) -> None:
        self.prepared.append(boxes)

    def embed_changed_batch(self, face: np.ndarray, faces: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        self.embedded.append(boxes)
        return self.embed_batch(faces)


def test_engine_warm_up_prepares_the_batches_an_explanation_embeds(tmp_path: Path) -> None:
    model = _Recording()
    engine = OcclusionEngine(model, OcclusionSettings(stride=3), ArrayCache(tmp_path / "a.sqlite"))
    engine.warm_up()
    engine.embeddings(np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    assert len(model.embedded) > len(engine.plan.segments)  # several batches per patch size
    assert len(model.prepared) == len(model.embedded)
    for prepared, embedded in zip(model.prepared, model.embedded, strict=True):
        assert np.array_equal(prepared, embedded)


@pytest.fixture(scope="module")
def dlib_faces(lfw_root: Path) -> tuple[np.ndarray, np.ndarray]:
    from xfv.faces import align_path
    from xfv.models import get_model

    spec = get_model("dlib").spec
    return tuple(
        align_path(lfw_image(name, n), spec, "lfw-funneled") for name, n in (("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2))
    )


def test_dlib_incremental_occlusion_embeddings_equal_full_passes(dlib_faces: tuple[np.ndarray, np.ndarray]) -> None:
    from xfv.models import get_model

    model = get_model("dlib")
    plan = OcclusionPlan(OcclusionSettings(), model.spec.input_size)
    face = dlib_faces[0]
    for segment in plan.segments.values():
        # first row (top border, left corner), the middle, and the last row (bottom-right corner)
        middle = (segment.start + segment.stop) // 2
        for start in (segment.start, middle, segment.stop - 12):
            occluded = plan.occluded(face, start, start + 12)
            full = model.embed(occluded)
            incremental = model.embed_changed(face, occluded, plan.boxes(start, start + 12))
            assert np.abs(incremental - full).max() <= TOLERANCE


def test_progressive_maps_end_in_the_one_shot_map(dlib_faces: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    from xfv.models import get_model

    model = get_model("dlib")
    settings = OcclusionSettings(stride=25)
    one_shot = explain_pair(*dlib_faces, model, settings=settings, cache=ArrayCache(tmp_path / "a.sqlite"))
    engine = OcclusionEngine(model, settings, ArrayCache(tmp_path / "b.sqlite"))
    steps = list(explain_pair_progressively(*dlib_faces, model, engine=engine))
    assert [step.settings.patch_sizes for step in steps] == [(28,), (14, 28), (7, 14, 28)]
    assert steps[0].forward_passes == 2 * (1 + len(settings.positions(28)) ** 2)
    final = steps[-1]
    for name, values in one_shot.arrays().items():
        assert np.array_equal(final.arrays()[name], values), name
    assert final.forward_passes == one_shot.forward_passes
    # cached faces: only the final explanation, no passes
    again = list(explain_pair_progressively(*dlib_faces, model, engine=engine))
    assert len(again) == 1 and again[0].forward_passes == 0
    assert np.array_equal(again[0].maps[1].merged1, one_shot.maps[1].merged1)
