"""Do X-Maps show what drives the model? Cut-and-paste and deletion on LFW photos with the real model.

The checks are ``xfv.pipeline.faithfulness`` (``bench/faithfulness.py`` runs them at the paper's
settings on more pairs); here they run with method 3 and one patch size (28, stride 10: 81
occlusions per face) to stay fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xfv.cache import ArrayCache
from xfv.errors import ModelError
from xfv.method.occlusion import OcclusionSettings
from xfv.models.base import FaceModel, ModelSpec
from xfv.pipeline import faithfulness
from xfv.pipeline.explain import OcclusionEngine, explain_pair

LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"
PAIRS = 20
FAST_SETTINGS = OcclusionSettings(patch_sizes=(28,), stride=10)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> OcclusionEngine:
    if not (LFW / "pairs.txt").is_file() or not (LFW / "images_deepfunneled").is_dir():
        pytest.skip(f"LFW (pairs.txt and images_deepfunneled) not found under {LFW}")
    from xfv.models import get_model

    try:
        model = get_model("dlib")
    except ModelError as exc:
        pytest.skip(f"the default model 'dlib' is not available: {exc}")
    return OcclusionEngine(model, FAST_SETTINGS, cache=ArrayCache(tmp_path_factory.mktemp("cache") / "arrays.sqlite"))


def _quiet(_: str) -> None:
    """Progress lines are not wanted in tests."""


def test_pasted_regions_come_out_similar(engine: OcclusionEngine) -> None:
    rates = faithfulness.paste_rates(faithfulness.select_pairs(LFW, same=False, count=PAIRS), engine, _quiet)
    for region, found in rates.items():
        assert found["pairs"] == PAIRS
        assert found["pointing_rate"] >= 0.7, f"{region}: {found}"
        assert found["rise_rate"] >= 0.7, f"{region}: {found}"


def test_deleting_by_the_map_raises_the_distance_faster_than_at_random(engine: OcclusionEngine) -> None:
    found = faithfulness.deletion_rate(faithfulness.select_pairs(LFW, same=True, count=PAIRS), engine, _quiet)
    assert found["faster_rate"] >= 0.8, found


def test_method3_maps_are_identical_for_both_faces(engine: OcclusionEngine) -> None:
    face1, face2 = next(faithfulness.aligned_pairs(faithfulness.select_pairs(LFW, same=False, count=1), engine.model))
    maps = explain_pair(face1, face2, engine.model, methods=(3,), engine=engine).maps[3]
    assert np.array_equal(maps.merged1, maps.merged2)
    assert all(np.array_equal(maps.raw1[p], maps.raw2[p]) for p in maps.raw1)
    assert np.max(np.abs(maps.merged1)) == pytest.approx(1.0)


class ConstantModel(FaceModel):
    """A model whose output ignores its input."""

    def __init__(self) -> None:
        self.spec = ModelSpec("constant", 150, 16, "dlib")
        self.embedding = np.random.default_rng(0).normal(size=16).astype(np.float32)

    def embed_batch(self, faces: np.ndarray) -> np.ndarray:
        return np.tile(self.embedding, (len(faces), 1))


def test_a_model_ignoring_its_input_gives_all_zero_maps(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    faces = [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(2)]
    explanation = explain_pair(*faces, ConstantModel(), settings=FAST_SETTINGS, cache=ArrayCache(tmp_path / "a.sqlite"))
    for maps in explanation.maps.values():
        for values in (maps.merged1, maps.merged2, *maps.raw1.values(), *maps.raw2.values()):
            assert not np.any(values)
