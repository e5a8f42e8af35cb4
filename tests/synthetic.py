"""Small benchmark data the store tests build themselves: a dataset in LFW's official layout and a
fast ONNX "face model" whose distances separate the synthetic identities (with some overlap).

Load the fixtures with ``pytest_plugins = ["tests.synthetic"]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from xfv.store import Store
from xfv.store.catalog import find_dataset, find_model
from xfv.store.pair_table import result_rows

FOLDS = 10
IMAGE_SIZE = 48
MODEL_INPUT = 16
EMBEDDING_SIZE = 32


def _person(rng: np.random.Generator) -> np.ndarray:
    """A random smooth colour pattern standing in for a face."""
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.resize(coarse, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC).astype(np.float64)


def write_lfw_dataset(
    root: Path, pairs_per_class: int = 10, seed: int = 0, images_folder: str = "lfw-deepfunneled"
) -> Path:
    """``root/pairs.txt`` (header ``10 N``, per fold N genuine then N impostor lines) and
    ``root/<images_folder>/Name/Name_000k.jpg``: 3 noisy photos of each person."""
    rng = np.random.default_rng(seed)
    people = [f"Person_{i:03d}" for i in range(FOLDS * pairs_per_class + 1)]
    for name in people:
        folder = root / images_folder / name
        folder.mkdir(parents=True, exist_ok=True)
        base = _person(rng)
        for number in (1, 2, 3):
            noisy = np.clip(base + rng.normal(0, 200, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{name}_{number:04d}.jpg"), noisy)
    lines = [f"{FOLDS}\t{pairs_per_class}"]
    for fold in range(FOLDS):
        block = people[fold * pairs_per_class : (fold + 1) * pairs_per_class]
        lines += [f"{name}\t1\t{2 + i % 2}" for i, name in enumerate(block)]
        lines += [f"{name}\t3\t{people[people.index(name) + 1]}\t1" for name in block]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def write_fake_model(folder: Path, name: str = "fake", seed: int = 0) -> Path:
    """A JSON model spec and ONNX file: embedding = a fixed random projection of the 16x16 face."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = (
        np.random.default_rng(seed).normal(size=(3 * MODEL_INPUT * MODEL_INPUT, EMBEDDING_SIZE)).astype(np.float32)
    )
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["embedding"]),
        ],
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, MODEL_INPUT, MODEL_INPUT])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, EMBEDDING_SIZE])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, folder / f"{name}.onnx")
    spec = {"onnx": f"{name}.onnx", "name": name, "input_size": MODEL_INPUT, "alignment": "arcface"}
    (folder / f"{name}.json").write_text(json.dumps(spec))
    return folder / f"{name}.json"


@pytest.fixture(scope="session")
def synthetic_lfw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-pair dataset in LFW's layout (read it with input mode ``aligned``); do not modify it."""
    return write_lfw_dataset(tmp_path_factory.mktemp("synthetic-lfw"))


@pytest.fixture(scope="session")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of the fake model's JSON spec (its name in the store is ``fake``)."""
    return str(write_fake_model(tmp_path_factory.mktemp("fake-model")))


def result_table(store: Store, dataset: str = "syn", model: str = "fake") -> list[tuple[object, ...]]:
    """A model's stored results on a dataset, one tuple per pair in protocol order."""
    with store.transaction() as session:
        rows = result_rows(session, find_dataset(session, dataset), find_model(session, model))
    return [(r.position, r.distance, r.threshold, r.predicted_same, r.correct, r.cscore) for r in rows]
