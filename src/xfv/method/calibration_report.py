"""How good are confidences? Calibration and selective-prediction metrics, and the out-of-fold report.

Metrics take the confidence of the predicted decision (in [0.5, 1] for a calibrated method) and
whether the decision was right, or P(genuine) and the labels. :func:`calibration_report` scores the
C-Score (and, given pair qualities, the quality-aware C-Score) against Platt scaling and isotonic
regression out of fold; :func:`transfer_report` scores calibrators fitted on another benchmark
(LFW: what a deployed model ships) on every pair. Their figures are in :mod:`xfv.plots`.
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
    check_quality,
    fit_calibrator,
    out_of_fold_confidence,
    predict,
)
from xfv.method.cscore import CScoreCalibrator, QualityCScoreCalibrator
from xfv.method.thresholds import best_threshold, fold_thresholds

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


def calibrator_factories(
    bins: int = 400, quality_groups: int = 3, with_quality: bool = False
) -> dict[str, Callable[[], Calibrator]]:
    """Unfitted calibrators by method name: the C-Score with ``bins``, the quality-aware C-Score
    (``quality_groups`` groups; only ``with_quality``), Platt and isotonic."""
    factories: dict[str, Callable[[], Calibrator]] = {"cscore": lambda: CScoreCalibrator(bins=bins)}
    if with_quality:
        factories["cscore-quality"] = lambda: QualityCScoreCalibrator(groups=quality_groups, bins=bins)
    factories.update(platt=PlattCalibrator, isotonic=IsotonicCalibrator)
    return factories


#: Every calibration method by name, in report order (``cscore-quality`` needs each pair's quality).
METHODS = tuple(calibrator_factories(with_quality=True))


@dataclass(frozen=True)
class CalibrationReport:
    """C-Score (quality-aware too, given qualities), Platt and isotonic scored out of fold on one
    benchmark (figures: :mod:`xfv.plots`)."""

    model_name: str
    distances: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    thresholds: np.ndarray
    bins: int
    results: dict[str, OutOfFold]
    quality_groups: int | None = None

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
        quality = {"cscore_quality_groups": self.quality_groups} if self.quality_groups else {}
        return {
            "model": self.model_name,
            "n_pairs": int(len(self.distances)),
            "n_folds": int(len(self.thresholds)),
            "cscore_bins": self.bins,
            **quality,
            **{name: calibration_metrics(result, self.same) for name, result in self.results.items()},
            "thresholds": [float(t) for t in self.thresholds],
            "cscore_range": [float(cscore.confidence.min()), float(cscore.confidence.max())],
            "cscore_folds": cscore_folds,
        }


def calibration_report(
    distances: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    model_name: str,
    *,
    bins: int = 400,
    quality: np.ndarray | None = None,
    quality_groups: int = 3,
) -> CalibrationReport:
    """Score C-Score, Platt and isotonic (and, given each pair's ``quality``, the quality-aware
    C-Score) out of fold (10-fold protocol).

    Every fold is decided at its protocol threshold and scored by calibrators fitted on the other folds.
    """
    d, same = check_pairs(distances, labels)
    folds = np.asarray(folds)
    thresholds = fold_thresholds(d, same, folds)
    factories = calibrator_factories(bins, quality_groups, with_quality=quality is not None)
    results = {
        name: out_of_fold_confidence(factory, d, same, folds, thresholds, quality)
        for name, factory in factories.items()
    }
    groups = quality_groups if quality is not None else None
    return CalibrationReport(model_name, d, same, folds, np.asarray(thresholds), bins, results, groups)


@dataclass(frozen=True)
class TransferReport:
    """Calibrators fitted on one benchmark (``fitted_on``, at its best threshold) scoring every pair of another."""

    model_name: str
    fitted_on: str
    n_fit_pairs: int
    threshold: float
    same: np.ndarray
    results: dict[str, OutOfFold]

    def summary(self) -> dict[str, Any]:
        """JSON-ready: what the calibrators were fitted on, their threshold, the metrics per method."""
        cscore = self.results["cscore"]
        return {
            "fitted_on": self.fitted_on,
            "n_fit_pairs": self.n_fit_pairs,
            "threshold": self.threshold,
            **{name: calibration_metrics(result, self.same) for name, result in self.results.items()},
            "cscore_range": [float(cscore.confidence.min()), float(cscore.confidence.max())],
        }


def transfer_report(
    fit_distances: np.ndarray,
    fit_labels: np.ndarray,
    distances: np.ndarray,
    labels: np.ndarray,
    model_name: str,
    fitted_on: str,
    *,
    bins: int = 400,
    fit_quality: np.ndarray | None = None,
    quality: np.ndarray | None = None,
    quality_groups: int = 3,
) -> TransferReport:
    """Fit every method on the first benchmark (threshold: its accuracy-maximising one, as
    ``xfv calibrate`` does for a model's shipped calibration) and score all pairs of the second.

    With qualities of both (``fit_quality``, ``quality``) the quality-aware C-Score is scored too.
    """
    fit_d, fit_same = check_pairs(fit_distances, fit_labels)
    d, same = check_pairs(distances, labels)
    with_quality = fit_quality is not None and quality is not None
    if with_quality:
        fit_quality, quality = check_quality(fit_quality, fit_d), check_quality(quality, d)
    threshold = best_threshold(fit_d, fit_same)
    results = {}
    for name, factory in calibrator_factories(bins, quality_groups, with_quality).items():
        calibrator = fit_calibrator(factory(), fit_d, fit_same, threshold, fit_quality)
        proba, confidence, decision = predict(calibrator, d, quality)
        results[name] = OutOfFold(proba, confidence, decision, np.zeros(1, dtype=np.int64), (calibrator,))
    return TransferReport(model_name, fitted_on, len(fit_d), threshold, same, results)
