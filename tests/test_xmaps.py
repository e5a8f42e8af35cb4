"""X-Maps: the three methods' distances, equations 9 and 10, colours, reuse of occlusion embeddings, CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xfv.cache import ArrayCache
from xfv.errors import MethodError, XfvError
from xfv.method.colour import blend, colour_map, overlay, xmap_image
from xfv.method.occlusion import OcclusionPlan, OcclusionSettings
from xfv.method.xmaps import (
    OcclusionEmbeddings,
    compute_xmaps,
    merge_maps,
    method1_distances,
    method2_distances,
    method3_distances,
    normalise_map,
    similarity_map,
)
from xfv.models.base import FaceModel, ModelSpec
from xfv.pipeline.explain import OcclusionEngine, explain_pair

SIZE = 150
BLOCK = 10


class BlockProjectionModel(FaceModel):
    """Fast fake model: 10x10 pixel-block means through a fixed random projection and a tanh."""

    batch_size = 64

    def __init__(self, seed: int = 0, embedding_size: int = 32) -> None:
        self.spec = ModelSpec(f"fake-blocks-{seed}", SIZE, embedding_size, "dlib", default_threshold=0.4)
        features = (SIZE // BLOCK) ** 2 * 3
        self.projection = np.random.default_rng(seed).normal(size=(features, embedding_size)) / np.sqrt(features)

    def embed_batch(self, faces: np.ndarray) -> np.ndarray:
        n, side = len(faces), SIZE // BLOCK
        rows = faces.reshape(n * side, BLOCK, SIZE * 3).sum(axis=1, dtype=np.float32)  # contiguous sums: fast
        blocks = rows.reshape(n, side, side, BLOCK, 3).sum(axis=3) / (BLOCK * BLOCK * 255.0)
        return np.tanh((blocks.reshape(n, -1) - 0.5) @ self.projection).astype(np.float32)


def _face(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _embeddings(rng: np.random.Generator, n: int, d: int = 8) -> OcclusionEmbeddings:
    return OcclusionEmbeddings(original=rng.normal(size=d), occluded=rng.normal(size=(n, d)))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --- distances of the three methods -------------------------------------------------------------


def test_method_distances_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    e1, e2 = _embeddings(rng, 6), _embeddings(rng, 6)
    d1, d2 = method1_distances(e1.occluded, e2.occluded, e1.original, e2.original)
    assert np.allclose(d1, [np.mean([_cos(a, b) for b in e2.occluded]) for a in e1.occluded])
    assert np.allclose(d2, [np.mean([_cos(a, b) for a in e1.occluded]) for b in e2.occluded])
    d1, d2 = method2_distances(e1.occluded, e2.occluded, e1.original, e2.original)
    assert np.allclose(d1, [_cos(a, e2.original) for a in e1.occluded])
    assert np.allclose(d2, [_cos(e1.original, b) for b in e2.occluded])
    d1, d2 = method3_distances(e1.occluded, e2.occluded, e1.original, e2.original)
    assert np.allclose(d1, [_cos(a, b) for a, b in zip(e1.occluded, e2.occluded)])
    assert d1 is d2


def test_method1_averages_within_each_patch_size() -> None:
    plan = OcclusionPlan(OcclusionSettings(patch_sizes=(28, 56), stride=20), SIZE)
    rng = np.random.default_rng(1)
    e1, e2 = _embeddings(rng, len(plan)), _embeddings(rng, len(plan))
    maps = compute_xmaps(1, e1, e2, plan, smoothing=False)
    d_orig = _cos(e1.original, e2.original)
    for grid in plan.grids:
        segment = plan.segments[grid.patch_size]
        block = e2.occluded[segment.start : segment.stop]
        d1 = [np.mean([_cos(a, b) for b in block]) for a in e1.occluded[segment.start : segment.stop]]
        masks = plan.masks(segment.start, segment.stop)
        expected = np.tensordot(np.asarray(d1) - d_orig, masks, axes=1) / len(masks)
        assert np.allclose(maps.raw1[grid.patch_size], expected, atol=1e-6)


# --- equations 9 and 10, smoothing, normalisation ------------------------------------------------


def test_similarity_map_is_equation_9_and_coverage_variant_divides_by_coverage() -> None:
    plan = OcclusionPlan(OcclusionSettings(patch_sizes=(14,), stride=9), SIZE)
    grid = plan.grid(14)
    deviations = np.random.default_rng(2).normal(size=len(grid))
    masks = plan.masks(0, len(grid))
    assert np.allclose(similarity_map(deviations, grid), np.tensordot(deviations, masks, axes=1) / len(grid))
    coverage = masks.sum(axis=0)
    normalised = similarity_map(deviations, grid, coverage_normalised=True)
    covered = coverage > 0
    assert np.allclose(normalised[covered], np.tensordot(deviations, masks, axes=1)[covered] / coverage[covered])
    assert np.all(normalised[~covered] == 0)
    flat = similarity_map(np.full(len(grid), 0.3), grid, coverage_normalised=True)
    assert np.allclose(flat[covered], 0.3)  # an even deviation gives an even map


def test_merge_is_equation_10() -> None:
    maps = {7: np.full((4, 4), 49.0), 14: np.full((4, 4), 2 * 196.0)}
    assert np.allclose(merge_maps(maps), (1 + 2) / 2)
    assert np.allclose(merge_maps(maps, coverage_normalised=True), (49 + 392) / 2)


def test_normalise_map_scales_by_peak_and_keeps_zero_maps() -> None:
    values = np.array([[-2.0, 1.0], [0.5, 0.0]])
    assert np.allclose(normalise_map(values), values / 2)
    assert np.array_equal(normalise_map(np.zeros((3, 3))), np.zeros((3, 3)))


def test_merged_maps_are_in_range_and_method3_maps_are_identical() -> None:
    plan = OcclusionPlan(OcclusionSettings(patch_sizes=(14, 28), stride=10), SIZE)
    rng = np.random.default_rng(3)
    e1, e2 = _embeddings(rng, len(plan)), _embeddings(rng, len(plan))
    for method in (1, 2, 3):
        maps = compute_xmaps(method, e1, e2, plan)
        for merged in (maps.merged1, maps.merged2):
            assert merged.shape == (SIZE, SIZE)
            assert np.max(np.abs(merged)) == pytest.approx(1.0)
    maps = compute_xmaps(3, e1, e2, plan)
    assert np.array_equal(maps.merged1, maps.merged2)


def test_occluding_what_the_model_reads_is_what_the_map_shows() -> None:
    """A model that sees only one region gives a map that is zero wherever no mask touches it."""

    class RegionModel(BlockProjectionModel):
        def embed_batch(self, faces: np.ndarray) -> np.ndarray:
            window = np.zeros_like(faces)
            window[:, 60:90, 40:70] = faces[:, 60:90, 40:70]
            return super().embed_batch(window)

    model = RegionModel()
    engine = OcclusionEngine(model, OcclusionSettings(patch_sizes=(14,), stride=5), cache=_memory_cache())
    explanation = explain_pair(_face(1), _face(2), model, methods=(2,), engine=engine, smoothing=False)
    raw = explanation.maps[2].raw1[14]
    plan, touching = engine.plan, np.zeros((SIZE, SIZE), bool)
    for mask in plan.masks(0, len(plan)):
        if mask[60:90, 40:70].any():
            touching |= mask.astype(bool)
    assert np.all(raw[~touching] == 0)
    assert np.abs(raw[60:90, 40:70]).min() > 0


# --- colour ---------------------------------------------------------------------------------------


def test_colour_map_is_green_for_similar_magenta_for_dissimilar_white_for_neutral() -> None:
    colours = colour_map(np.array([[1.0, -1.0, 0.0]])).astype(int)[0]
    similar, dissimilar, neutral = colours
    assert similar[1] > similar[0] and similar[1] > similar[2]
    assert dissimilar[0] > dissimilar[1] and dissimilar[2] > dissimilar[1]
    assert np.all(neutral > 235)
    with pytest.raises(XfvError, match="unknown colour map"):
        colour_map(np.zeros((2, 2)), "no-such-map")


def test_blend_keeps_the_face_lightness_and_takes_the_map_hue() -> None:
    import cv2

    face = _face(4)
    similarity = np.tile(np.linspace(-1, 1, SIZE), (SIZE, 1))
    blended = blend(face, colour_map(similarity))
    assert blended.shape == face.shape and blended.dtype == np.uint8
    lightness = [cv2.cvtColor(image, cv2.COLOR_RGB2HLS)[..., 1].astype(int) for image in (face, blended)]
    assert np.abs(lightness[0] - lightness[1]).max() <= 2
    neutral = xmap_image(face, np.zeros((SIZE, SIZE)))
    assert np.abs(neutral.astype(int) - neutral.mean(axis=2, keepdims=True)).max() <= 3  # grey where neutral
    green = xmap_image(np.full((SIZE, SIZE, 3), 128, np.uint8), np.ones((SIZE, SIZE)))
    assert np.all(green[..., 1] > green[..., 0])


def test_overlay_mixes_by_opacity() -> None:
    face, similarity = _face(5), np.full((SIZE, SIZE), 0.5)
    assert np.array_equal(overlay(face, similarity, opacity=0.0), face)
    assert np.array_equal(overlay(face, similarity, opacity=1.0), colour_map(similarity))
    with pytest.raises(XfvError, match="opacity"):
        overlay(face, similarity, opacity=1.5)


# --- the engine: reuse of occlusion embeddings ---------------------------------------------------


def _memory_cache() -> ArrayCache:
    return ArrayCache(Path(":memory:"))


def test_all_methods_share_one_set_of_occlusion_embeddings_per_face(tmp_path: Path) -> None:
    model = BlockProjectionModel()
    cache = ArrayCache(tmp_path / "arrays.sqlite")
    engine = OcclusionEngine(model, cache=cache)
    first = explain_pair(_face(1), _face(2), model, engine=engine)
    assert sorted(first.maps) == [1, 2, 3]
    assert first.forward_passes == 2 * (1 + 1130)
    shared = explain_pair(_face(1), _face(3), model, methods=(3,), engine=engine)
    assert shared.forward_passes == 1 + 1130
    again = explain_pair(_face(2), _face(1), model, engine=OcclusionEngine(model, cache=cache))  # a new process
    assert again.forward_passes == 0
    assert again.distance == pytest.approx(first.distance)
    assert np.allclose(again.maps[3].merged1, first.maps[3].merged1)
    other = explain_pair(_face(1), _face(2), model, methods=(3,), settings=OcclusionSettings(fill="gray"), cache=cache)
    assert other.forward_passes == 2 * (1 + 1130)  # other settings are other occlusions


def test_explanation_holds_decision_maps_and_arrays() -> None:
    model = BlockProjectionModel()
    settings = OcclusionSettings(patch_sizes=(14, 28))
    explanation = explain_pair(_face(1), _face(1), model, settings=settings, cache=_memory_cache())
    assert explanation.distance == pytest.approx(0, abs=1e-6)
    assert explanation.threshold == 0.4 and explanation.decision == "genuine" and explanation.confidence is None
    arrays = explanation.arrays()
    expected = {"aligned1", "aligned2"} | {
        f"m{m}_img{i}_{suffix}" for m in (1, 2, 3) for i in (1, 2) for suffix in ("p14", "p28", "merged")
    }
    assert set(arrays) == expected
    assert all(arrays[name].shape == (SIZE, SIZE) for name in expected - {"aligned1", "aligned2"})
    for style in ("blend", "heat", "map"):
        for which in (1, 2):
            assert explanation.image(1, which, style).shape == (SIZE, SIZE, 3)
    assert not np.array_equal(explanation.image(2, 1, "blend"), explanation.image(2, 1, "map"))
    assert repr(explanation).startswith("Explanation(fake-blocks-0: distance 0.0000, threshold 0.4000 -> genuine")
    assert len(repr(explanation)) < 200 and repr(explanation).endswith("methods 1, 2, 3)")
    assert len(explanation.figure().axes) == 2 * 4 + 1  # faces and three methods, two rows, and a colour bar
    with pytest.raises(MethodError, match="methods must be among"):
        explanation.image(4)
    with pytest.raises(XfvError, match="unknown style"):
        explanation.image(1, 1, "glow")  # type: ignore[arg-type]
    summary = explanation.summary()
    assert summary["forward_passes"] == 1 + 400 + 289 and summary["occlusions_per_face"] == 400 + 289
    json.dumps(summary)


def test_calibrator_gives_the_cscore_of_the_reported_decision() -> None:
    from xfv.method.cscore import CScoreCalibrator
    from xfv.pipeline.verify import confidence_of

    rng = np.random.default_rng(0)
    distances = np.concatenate([rng.normal(0.3, 0.08, 300), rng.normal(0.8, 0.1, 300)])
    calibrator = CScoreCalibrator().fit(distances, np.arange(600) < 300)
    model = BlockProjectionModel()
    explanation = explain_pair(
        _face(1),
        _face(2),
        model,
        methods=(3,),
        settings=OcclusionSettings(patch_sizes=(28,)),
        calibrator=calibrator,
        cache=_memory_cache(),
    )
    assert explanation.threshold == 0.4  # the model's
    assert explanation.confidence == pytest.approx(confidence_of(calibrator, explanation.distance, 0.4))
    assert 0.5 <= explanation.confidence <= 1.0


def test_bad_inputs_are_clear_errors() -> None:
    model = BlockProjectionModel()
    with pytest.raises(XfvError, match="methods must be among"):
        explain_pair(_face(1), _face(2), model, methods=(4,), cache=_memory_cache())
    with pytest.raises(XfvError, match=r"aligned uint8 RGB face of shape \(150, 150, 3\)"):
        explain_pair(_face(1)[:112, :112], _face(2), model, cache=_memory_cache())


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_writes_pngs_figure_and_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import xfv.api
    import xfv.cli.explain as cli_explain

    model = BlockProjectionModel()
    monkeypatch.setattr(xfv.api, "get_model", lambda name: model)
    monkeypatch.setenv("XFV_CACHE_DIR", str(tmp_path / "cache"))
    paths = []
    for seed in (1, 2):
        paths.append(tmp_path / f"face{seed}.png")
        Image.fromarray(_face(seed)).save(paths[-1])
    parser = argparse.ArgumentParser()
    cli_explain.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            "explain",
            str(paths[0]),
            str(paths[1]),
            "--out",
            str(out),
            "--input-mode",
            "aligned",
            "--methods",
            "1,3",
            "--patch-sizes",
            "14,28",
            "--json",
        ]
    )
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["forward_passes"] == 2 * (1 + 400 + 289)
    assert summary["distance"] > 0 and summary["methods"] == [1, 3]
    names = {path.name for path in out.iterdir()}
    assert names == {"figure.png", "maps.npz"} | {f"xmap_m{m}_img{i}.png" for m in (1, 3) for i in (1, 2)}
    with np.load(out / "maps.npz") as maps:
        assert np.array_equal(maps["aligned1"], _face(1))
        assert maps["m3_img2_p14"].shape == (SIZE, SIZE) and maps["m1_img1_merged"].shape == (SIZE, SIZE)
