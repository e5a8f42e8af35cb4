"""Decision thresholds on cosine distance: genuine iff d <= t."""

from __future__ import annotations

import numpy as np


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold that maximises accuracy, searched exactly over the midpoints between sorted
    unique distances (and one point beyond each end); the first maximum wins."""
    distances = np.asarray(distances, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    values = np.unique(distances)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    order = np.argsort(distances, kind="stable")
    sorted_d, sorted_same = distances[order], same[order]
    # Pairs at or below each candidate: genuine ones are right, impostors above it are right.
    below = np.searchsorted(sorted_d, candidates, side="right")
    genuine_below = np.concatenate([[0], np.cumsum(sorted_same)])[below]
    impostor_above = (~same).sum() - (below - genuine_below)
    correct = genuine_below + impostor_above
    return float(candidates[int(np.argmax(correct))])


def fold_thresholds(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """One threshold per fold, each chosen on the other folds (the 10-fold protocol)."""
    folds = np.asarray(folds)
    return np.array([best_threshold(distances[folds != k], same[folds != k]) for k in np.unique(folds)])


def pair_thresholds(thresholds: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """The threshold that applies to each pair: its fold's."""
    folds = np.asarray(folds)
    index = {fold: i for i, fold in enumerate(np.unique(folds))}
    return np.asarray(thresholds)[[index[f] for f in folds]]
