"""How good are confidences? Calibration and selective-prediction metrics, and the out-of-fold report.

Metrics take the confidence of the predicted decision (in [0.5, 1] for a calibrated method) and
whether the decision was right, or P(genuine) and the labels. :func:`calibration_report` scores the
C-Score against Platt scaling and isotonic regression out of fold; its figures are in :mod:`xfv.plots`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from xfv.method.calibration import (
    Calibrator,
    IsotonicCalibrator,
    OutOfFold,
    PlattCalibrator,
    check_pairs,
    out_of_fold_confidence,
)
from xfv.method.cscore import CScoreCalibrator
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
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    right, wrong = confidence[correct], np.sort(confidence[~correct])
    if len(right) == 0 or len(wrong) == 0:
        return float("nan")
    below = np.searchsorted(wrong, right, side="left")
    tied = np.searchsorted(wrong, right, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (len(right) * len(wrong)))


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


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationReport:
    """C-Score, Platt and isotonic scored out of fold on one benchmark (figures: :mod:`xfv.plots`)."""

    model_name: str
    distances: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    thresholds: np.ndarray
    bins: int
    results: dict[str, OutOfFold]

    def first_fold_cscore(self) -> tuple[int, np.ndarray, CScoreCalibrator]:
        """The first fold, the mask of the pairs its C-Score was fitted on (all other folds), the C-Score."""
        cscore = self.results["cscore"]
        fold = int(cscore.fold_ids[0])
        return fold, self.folds != fold, cast(CScoreCalibrator, cscore.calibrators[0])

    def summary(self) -> dict[str, Any]:
        """JSON-ready: metrics per method, fold thresholds, the range of the C-Scores and their parameters per fold."""
        cscore = self.results["cscore"]
        cscore_folds = [
            {"fold": int(fold), **calibrator.to_dict()["parameters"], "t": calibrator.threshold_}
            for fold, calibrator in zip(cscore.fold_ids, cscore.calibrators)
        ]
        return {
            "model": self.model_name,
            "n_pairs": int(len(self.distances)),
            "n_folds": int(len(self.thresholds)),
            "cscore_bins": self.bins,
            **{name: calibration_metrics(result, self.same) for name, result in self.results.items()},
            "thresholds": [float(t) for t in self.thresholds],
            "cscore_range": [float(cscore.confidence.min()), float(cscore.confidence.max())],
            "cscore_folds": cscore_folds,
        }


def calibrator_factories(bins: int = 400) -> dict[str, Callable[[], Calibrator]]:
    """New, unfitted calibrators by kind: the paper's C-Score (``bins`` histogram bins over [0, 2])
    and the Platt and isotonic baselines; ``xfv calibrate`` and the report choose among these."""
    return {"cscore": lambda: CScoreCalibrator(bins=bins), "platt": PlattCalibrator, "isotonic": IsotonicCalibrator}


def calibration_report(
    distances: np.ndarray, labels: np.ndarray, folds: np.ndarray, model_name: str, *, bins: int = 400
) -> CalibrationReport:
    """Score C-Score, Platt and isotonic out of fold (10-fold protocol).

    Every fold is decided at its protocol threshold and scored by calibrators fitted on the other folds.
    """
    d, same = check_pairs(distances, labels)
    folds = np.asarray(folds)
    thresholds = fold_thresholds(d, same, folds)
    results = {
        name: out_of_fold_confidence(factory, d, same, folds, thresholds)
        for name, factory in calibrator_factories(bins).items()
    }
    return CalibrationReport(model_name, d, same, folds, np.asarray(thresholds), bins, results)
