"""Threshold search and verification metrics on small cases with known answers."""

from __future__ import annotations

import numpy as np

from xfv.method.distances import cosine_distance, cosine_distance_matrix
from xfv.method.metrics import fold_accuracies, roc_auc, tar_at_far
from xfv.method.thresholds import best_threshold, fold_thresholds, pair_thresholds


def brute_force_best_accuracy(distances: np.ndarray, same: np.ndarray) -> float:
    grid = np.concatenate([distances, distances - 1e-9, distances + 1e-9])
    return max(np.mean((distances <= t) == same) for t in grid)


def test_best_threshold_separates_separable_data() -> None:
    distances = np.array([0.1, 0.2, 0.3, 0.6, 0.7])
    same = np.array([True, True, True, False, False])
    t = best_threshold(distances, same)
    assert 0.3 < t < 0.6
    assert np.isclose(t, 0.45)


def test_best_threshold_is_exact_on_random_overlapping_data() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        same = rng.random(200) < 0.5
        distances = np.round(np.where(same, rng.normal(0.3, 0.1, 200), rng.normal(0.5, 0.1, 200)), 2)
        t = best_threshold(distances, same)
        assert np.isclose(np.mean((distances <= t) == same), brute_force_best_accuracy(distances, same))


def test_fold_thresholds_use_only_the_other_folds() -> None:
    # Fold 0's own data would want t ~ 0.9; the other folds want t ~ 0.45.
    distances = np.array([0.85, 0.95, 0.4, 0.5, 0.4, 0.5])
    same = np.array([True, False, True, False, True, False])
    folds = np.array([0, 0, 1, 1, 2, 2])
    thresholds = fold_thresholds(distances, same, folds)
    assert 0.4 <= thresholds[0] < 0.5
    assert fold_accuracies(distances, same, folds, thresholds)[0] == 0.5
    assert (
        pair_thresholds(thresholds, folds).tolist() == [thresholds[0]] * 2 + [thresholds[1]] * 2 + [thresholds[2]] * 2
    )


def test_roc_auc_and_tar_at_far() -> None:
    same = np.array([True] * 4 + [False] * 4)
    assert roc_auc(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]), same) == 1.0
    assert roc_auc(np.array([0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]), same) == 0.0
    assert roc_auc(np.full(8, 0.5), same) == 0.5
    # 1000 impostors at 0.5..1.5; FAR 1e-3 allows one impostor, so accept below the 2nd smallest.
    impostor = np.linspace(0.5, 1.5, 1000)
    genuine = np.array([0.1, 0.4, 0.5005, 0.9])
    distances = np.concatenate([genuine, impostor])
    labels = np.concatenate([np.ones(4, bool), np.zeros(1000, bool)])
    assert tar_at_far(distances, labels, 1e-3) == 0.75


def test_cosine_distances() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[1.0, 0.0], [0.0, -1.0]])
    assert np.allclose(cosine_distance(a, b), [0.0, 2.0])
    assert np.allclose(cosine_distance_matrix(a, b), [[0.0, 1.0], [1.0, 2.0]])
