"""How good are confidences? Calibration and selective-prediction metrics, and the out-of-fold report.

Metrics take the confidence of the predicted decision (in [0.5, 1] for a calibrated method) and
whether the decision was right, or P(genuine) and the labels. :func:`calibration_report` scores the
C-Score against Platt scaling and isotonic regression out of fold and draws the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from xfv.method.calibration import Calibrator, IsotonicCalibrator, OutOfFold, PlattCalibrator, check_pairs, out_of_fold_confidence
from xfv.method.cscore import CScoreCalibrator, bin_ratios
from xfv.method.thresholds import fold_thresholds

#: Bins of the reliability diagram, ECE and MCE: equal widths over [0.5, 1].
CONFIDENCE_BINS = 20
#: Probabilities are clipped to [eps, 1 - eps] for the NLL (scikit-learn's log_loss convention).
NLL_EPS = float(np.finfo(np.float64).eps)


# --- metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityBins:
    """Per confidence bin: edges, pair count, mean confidence and accuracy (NaN where empty)."""

    edges: np.ndarray
    counts: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """|accuracy - mean confidence| per bin (NaN where empty)."""
        return np.abs(self.accuracy - self.mean_confidence)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = CONFIDENCE_BINS) -> ReliabilityBins:
    """Group decisions into equal-width confidence bins over [0.5, 1]; values outside go to the end bins."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    index = np.digitize(confidence, edges[1:-1])
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / counts
    return ReliabilityBins(edges, counts, mean_confidence, accuracy)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = CONFIDENCE_BINS) -> float:
    """ECE: the pair-weighted mean of |accuracy - mean confidence| over the confidence bins."""
    bins = reliability_bins(confidence, correct, n_bins)
    filled = bins.counts > 0
    return float(np.sum(bins.counts[filled] * bins.gaps[filled]) / bins.counts.sum())


def maximum_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = CONFIDENCE_BINS) -> float:
    """MCE: the largest |accuracy - mean confidence| over non-empty confidence bins."""
    bins = reliability_bins(confidence, correct, n_bins)
    return float(np.max(bins.gaps[bins.counts > 0]))


def brier_score(proba_same: np.ndarray, same: np.ndarray) -> float:
    """Mean squared error of P(genuine) against the 0/1 label."""
    return float(np.mean((np.asarray(proba_same, dtype=np.float64) - np.asarray(same, dtype=np.float64)) ** 2))


def negative_log_likelihood(proba_same: np.ndarray, same: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels under P(genuine), clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(proba_same, dtype=np.float64), NLL_EPS, 1.0 - NLL_EPS)
    same = np.asarray(same, dtype=bool)
    return float(-np.mean(np.where(same, np.log(p), np.log1p(-p))))


def error_auroc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """AUROC of confidence for telling right decisions from wrong ones (ties count half); NaN if one is absent."""
    correct = np.asarray(correct, dtype=bool)
    n_right, n_wrong = int(correct.sum()), int((~correct).sum())
    if n_right == 0 or n_wrong == 0:
        return float("nan")
    ranks = rankdata(np.asarray(confidence, dtype=np.float64))
    return float((ranks[correct].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong))


def risk_coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage k/n and error rate among the k most confident decisions, for k = 1..n.

    Decisions of equal confidence are taken together: within a tie the errors are spread evenly,
    i.e. the expected risk over the orders of the tied decisions, so ties cannot flatter a method.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    order = np.argsort(-confidence, kind="stable")
    ranked, wrong = confidence[order], wrong[order].astype(np.float64)
    n = len(ranked)
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    sizes = np.diff(np.r_[starts, n])
    group_errors = np.add.reduceat(wrong, starts)
    errors_before = np.r_[0.0, np.cumsum(group_errors)[:-1]]
    group = np.repeat(np.arange(len(starts)), sizes)
    k = np.arange(1, n + 1)
    expected_errors = errors_before[group] + (k - starts[group]) * group_errors[group] / sizes[group]
    return k / n, expected_errors / k


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve: the mean risk over coverages k/n (lower is better)."""
    return float(np.mean(risk_coverage_curve(confidence, correct)[1]))


def calibration_metrics(result: OutOfFold, same: np.ndarray) -> dict[str, float]:
    """All metrics of one method's out-of-fold predictions."""
    same = np.asarray(same, dtype=bool)
    correct = result.predicted_same == same
    return {
        "accuracy": float(np.mean(correct)),
        "ece": expected_calibration_error(result.confidence, correct),
        "mce": maximum_calibration_error(result.confidence, correct),
        "brier": brier_score(result.proba_same, same),
        "nll": negative_log_likelihood(result.proba_same, same),
        "error_auroc": error_auroc(result.confidence, correct),
        "aurc": aurc(result.confidence, correct),
    }
