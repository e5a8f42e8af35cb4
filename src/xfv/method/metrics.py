"""Verification metrics: fold accuracy, ROC AUC, TAR at a FAR."""

from __future__ import annotations

import numpy as np


def fold_accuracies(distances: np.ndarray, same: np.ndarray, folds: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy of each fold at its own threshold."""
    folds = np.asarray(folds)
    return np.array(
        [np.mean((distances[folds == k] <= t) == same[folds == k]) for k, t in zip(np.unique(folds), thresholds)]
    )


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve with -distance as the genuine score (ties count half)."""
    from scipy.stats import rankdata

    same = np.asarray(same, dtype=bool)
    ranks = rankdata(-np.asarray(distances))
    n_pos, n_neg = same.sum(), (~same).sum()
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float = 1e-3) -> float:
    """True accept rate at the largest threshold whose false accept rate is at most ``far``."""
    same = np.asarray(same, dtype=bool)
    impostor = np.sort(np.asarray(distances)[~same])
    allowed = int(np.floor(far * len(impostor)))  # impostors that may fall at or below t
    threshold = impostor[allowed] if allowed < len(impostor) else np.inf
    return float(np.mean(np.asarray(distances)[same] < threshold))
