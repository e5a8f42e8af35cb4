"""Systematic occlusion: positions, masks, fills, shapes, edge blur, lazy batches, bad options."""

from __future__ import annotations

import numpy as np
import pytest

from xfv.errors import XfvError
from xfv.method.occlusion import OcclusionPlan, OcclusionSettings, round_half_up


def _face(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, (size, size, 3), dtype=np.uint8)


def test_default_counts_follow_the_reference_positions() -> None:
    settings = OcclusionSettings()
    assert [len(settings.positions(p)) ** 2 for p in settings.patch_sizes] == [441, 400, 289]
    assert settings.count == 1130
    assert list(settings.positions(28)) == list(range(0, 84, 5))
    for size in (112, 150):
        plan = OcclusionPlan(settings, size)
        assert len(plan) == 1130
        assert [len(plan.segments[p]) for p in (7, 14, 28)] == [441, 400, 289]


def test_masks_are_exactly_p_by_p_at_the_reference_size() -> None:
    plan = OcclusionPlan(OcclusionSettings(), 112)
    for p in (7, 14, 28):
        segment = plan.segments[p]
        masks = plan.masks(segment.start, segment.start + 3)
        assert set(np.unique(masks)) == {0.0, 1.0}
        assert np.all(masks.sum(axis=(1, 2)) == p * p)
        rows, cols = np.nonzero(masks[1])
        assert (rows.min(), cols.min(), rows.max(), cols.max()) == (0, 5, p - 1, 5 + p - 1)


def test_sizes_and_positions_scale_to_the_model_input() -> None:
    plan = OcclusionPlan(OcclusionSettings(), 150)
    assert [grid.size_px for grid in plan.grids] == [9, 19, 38]  # 7, 14, 28 * 150/112, rounded half up
    grid = plan.grid(28)
    assert list(np.unique(grid.origins[:, 1])) == list(round_half_up(np.arange(0, 84, 5) * 150 / 112))
    assert int(grid.origins.max()) + grid.size_px <= 150


def test_black_occlusion_changes_only_the_patch() -> None:
    plan = OcclusionPlan(OcclusionSettings(), 150)
    face = _face(150)
    occluded = plan.occluded(face, 0, 5)
    masks = plan.masks(0, 5).astype(bool)
    for image, mask in zip(occluded, masks):
        assert np.all(image[mask] == 0)
        assert np.array_equal(image[~mask], face[~mask])


@pytest.mark.parametrize(("fill", "value"), [("gray", 128), ("white", 255)])
def test_solid_fills(fill: str, value: int) -> None:
    plan = OcclusionPlan(OcclusionSettings(patch_sizes=(14,), fill=fill), 112)
    image = plan.occluded(_face(112), 7, 8)[0]
    assert np.all(image[plan.masks(7, 8)[0].astype(bool)] == value)


def test_noise_is_seeded_per_occlusion_and_shared_by_both_faces() -> None:
    plan = OcclusionPlan(OcclusionSettings(patch_sizes=(14,), fill="noise", noise_seed=3), 112)
    mask = plan.masks(4, 5)[0].astype(bool)
    first = plan.occluded(_face(112, 1), 4, 5)[0][mask]
    assert np.array_equal(first, plan.occluded(_face(112, 2), 4, 5)[0][mask])
    assert np.array_equal(first, plan.occluded(_face(112, 1), 0, 6)[4][mask])  # independent of batching
    other_seed = OcclusionPlan(OcclusionSettings(patch_sizes=(14,), fill="noise", noise_seed=4), 112)
    assert not np.array_equal(first, other_seed.occluded(_face(112, 1), 4, 5)[0][mask])
    assert first.std() > 40  # uniform over 0..255


def test_circle_is_centred_in_its_square() -> None:
    grid = OcclusionPlan(OcclusionSettings(patch_sizes=(28,), shape="circle"), 112).grid(28)
    stamp = grid.stamp
    assert stamp.shape == (28, 28)
    assert abs(stamp.sum() - np.pi * 14**2) < 0.03 * np.pi * 14**2
    assert np.array_equal(stamp, stamp[::-1]) and np.array_equal(stamp, stamp.T)
    assert stamp[0, 0] == 0 and stamp[14, 14] == 1


def test_edge_blur_softens_and_widens_the_patch() -> None:
    plan = OcclusionPlan(OcclusionSettings(patch_sizes=(14,), edge_blur_sigma=3, edge_blur_kernel=7), 112)
    grid = plan.grid(14)
    assert grid.margin == 3 and grid.stamp.shape == (20, 20)
    assert 0 < grid.stamp.min() < 0.05 and grid.stamp.max() == pytest.approx(1)
    assert np.mean((grid.stamp > 0.05) & (grid.stamp < 0.95)) > 0.3
    face = _face(112)
    image = plan.occluded(face, 30, 31)[0].astype(float)
    mask = plan.masks(30, 31)[0]
    expected = np.rint(face * (1 - mask[..., None]))
    assert np.array_equal(image, expected)


def test_batches_equal_one_range_and_accumulate_equals_dense_masks() -> None:
    settings = OcclusionSettings(patch_sizes=(14, 40), stride=17, edge_blur_sigma=2)
    plan = OcclusionPlan(settings, 150)
    face = _face(150)
    batched = np.concatenate(list(plan.batches(face, 4)))
    assert np.array_equal(batched, plan.occluded(face, 0, len(plan)))
    weights = np.random.default_rng(0).normal(size=len(plan))
    for grid in plan.grids:
        segment = plan.segments[grid.patch_size]
        dense = np.tensordot(weights[segment.start : segment.stop], plan.masks(segment.start, segment.stop), axes=1)
        assert np.allclose(grid.accumulate(weights[segment.start : segment.stop]), dense, atol=1e-5)


def test_cache_key_is_stable_and_names_every_option() -> None:
    base = OcclusionSettings()
    assert base.cache_key() == OcclusionSettings(patch_sizes=[7, 14, 28]).cache_key()
    variants = [
        OcclusionSettings(patch_sizes=(7, 14)),
        OcclusionSettings(stride=4),
        OcclusionSettings(fill="gray"),
        OcclusionSettings(shape="circle"),
        OcclusionSettings(edge_blur_sigma=7),
        OcclusionSettings(edge_blur_sigma=7, edge_blur_kernel=14),
        OcclusionSettings(fill="noise"),
        OcclusionSettings(fill="noise", noise_seed=1),
    ]
    keys = [base.cache_key(), *(v.cache_key() for v in variants)]
    assert len(set(keys)) == len(keys)
    assert OcclusionSettings(noise_seed=9).cache_key() == base.cache_key()  # the seed only matters for noise


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patch_sizes": (112,)}, "does not fit"),
        ({"patch_sizes": (7, 200)}, "does not fit"),
        ({"patch_sizes": (0,)}, "does not fit"),
        ({"patch_sizes": ()}, "at least one"),
        ({"patch_sizes": (7, 7)}, "distinct"),
        ({"stride": 0}, "stride"),
        ({"fill": "pink"}, "unknown occlusion fill 'pink'"),
        ({"shape": "star"}, "unknown patch shape"),
        ({"edge_blur_sigma": -1.0}, "negative"),
        ({"edge_blur_kernel": 5}, "needs an edge blur sigma"),
    ],
)
def test_bad_options_are_clear_errors(options: dict, message: str) -> None:
    with pytest.raises(XfvError, match=message):
        OcclusionSettings(**options)


def test_wrong_face_is_a_clear_error() -> None:
    plan = OcclusionPlan(OcclusionSettings(), 150)
    with pytest.raises(XfvError, match=r"uint8 RGB face of shape \(150, 150, 3\)"):
        plan.occluded(_face(112), 0, 1)
