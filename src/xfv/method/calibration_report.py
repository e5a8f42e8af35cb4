"""How good are confidences? Calibration and selective-prediction metrics, and the out-of-fold report.

Metrics take the confidence of the predicted decision (in [0.5, 1] for a calibrated method) and
whether the decision was right, or P(genuine) and the labels. :func:`calibration_report` scores the
C-Score against Platt scaling and isotonic regression out of fold and draws the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from matplotlib.figure import Figure

from xfv.method.calibration import (
    Calibrator,
    IsotonicCalibrator,
    OutOfFold,
    PlattCalibrator,
    check_pairs,
    out_of_fold_confidence,
)
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


def calibration_report(
    distances: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    out_dir: str | Path,
    model_name: str,
    *,
    bins: int = 400,
) -> dict[str, Any]:
    """Score C-Score, Platt and isotonic out of fold (10-fold protocol) and write the figures to ``out_dir``.

    Every fold is decided at its protocol threshold and scored by calibrators fitted on the other folds.
    Returns a JSON-ready dict: one metrics dict per method, the fold thresholds, the range of the
    C-Scores and their parameters per fold, and the paths of the figures.
    """
    d, same = check_pairs(distances, labels)
    folds = np.asarray(folds)
    thresholds = fold_thresholds(d, same, folds)
    factories: dict[str, Callable[[], Calibrator]] = {
        "cscore": lambda: CScoreCalibrator(bins=bins),
        "platt": PlattCalibrator,
        "isotonic": IsotonicCalibrator,
    }
    results = {name: out_of_fold_confidence(factory, d, same, folds, thresholds) for name, factory in factories.items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "reliability": plot_reliability(results, same, out_dir / "reliability.png", model_name),
        "risk_coverage": plot_risk_coverage(results, same, out_dir / "risk_coverage.png", model_name),
        "cscore_fit": _plot_first_fold_fit(d, same, folds, results["cscore"], out_dir / "cscore_fit.png", model_name),
    }
    cscore_folds = [
        {"fold": int(fold), **calibrator.to_dict()["parameters"], "t": calibrator.threshold_}
        for fold, calibrator in zip(results["cscore"].fold_ids, results["cscore"].calibrators)
    ]
    return {
        "model": model_name,
        "n_pairs": int(len(d)),
        "n_folds": int(len(thresholds)),
        "cscore_bins": bins,
        **{name: calibration_metrics(result, same) for name, result in results.items()},
        "thresholds": [float(t) for t in thresholds],
        "cscore_range": [float(results["cscore"].confidence.min()), float(results["cscore"].confidence.max())],
        "cscore_folds": cscore_folds,
        "figures": {name: str(path) for name, path in figures.items()},
    }


def _plot_first_fold_fit(
    d: np.ndarray, same: np.ndarray, folds: np.ndarray, result: OutOfFold, path: Path, model_name: str
) -> Path:
    """Figure 2 for the C-Score that scored the first fold, drawn on the folds it was fitted on."""
    fold = result.fold_ids[0]
    train = folds != fold
    calibrator = cast(CScoreCalibrator, result.calibrators[0])
    title = f"C-Score fit for fold {fold} (fitted on the others): {model_name}"
    return plot_cscore_fit(d[train], same[train], calibrator, path, title)


# --- figures -------------------------------------------------------------------------------------


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=120)
    return path


def plot_reliability(results: dict[str, OutOfFold], same: np.ndarray, path: Path, model_name: str) -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, with the pair count per bin below."""
    figure = Figure(figsize=(6.4, 6.4), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle=":", label="perfect calibration")
    for name, result in results.items():
        correct = result.predicted_same == same
        bins = reliability_bins(result.confidence, correct)
        filled = bins.counts > 0
        ece = expected_calibration_error(result.confidence, correct)
        top.plot(bins.mean_confidence[filled], bins.accuracy[filled], marker="o", label=f"{name} (ECE {ece:.4f})")
        bottom.stairs(bins.counts, bins.edges, label=name)
    top.set(ylabel="accuracy", title=f"Reliability, out of fold: {model_name}", xlim=(0.5, 1.0))
    top.legend(loc="upper left")
    bottom.set(xlabel="confidence of the decision", ylabel="pairs", yscale="log")
    return _save(figure, path)


def plot_risk_coverage(results: dict[str, OutOfFold], same: np.ndarray, path: Path, model_name: str) -> Path:
    """Risk-coverage curves: error rate among the most confident decisions against their share."""
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    axes = figure.subplots()
    for name, result in results.items():
        correct = result.predicted_same == same
        coverage, risk = risk_coverage_curve(result.confidence, correct)
        axes.plot(coverage, risk, label=f"{name} (AURC {aurc(result.confidence, correct):.5f})")
    axes.set(xlabel="coverage", ylabel="risk (error rate)", title=f"Risk-coverage, out of fold: {model_name}")
    axes.legend(loc="upper left")
    return _save(figure, path)


def plot_cscore_fit(
    distances: np.ndarray, labels: np.ndarray, calibrator: CScoreCalibrator, path: Path, title: str
) -> Path:
    """The paper's figure 2: histogram of the calibration distances, genuine share per bin, fitted curves."""
    ratios = bin_ratios(distances, labels, calibrator.threshold_, calibrator.bins, calibrator.x_position)
    width = ratios.edges[1] - ratios.edges[0]
    x_max = min(2.0, float(np.quantile(distances, 0.999)) + 10 * width)
    figure = Figure(figsize=(8.0, 4.8), layout="constrained")
    counts = figure.subplots()
    for name, mask, colour in (("genuine", labels, "tab:green"), ("impostor", ~labels, "tab:red")):
        histogram, _ = np.histogram(np.clip(distances[mask], 0.0, 2.0), bins=ratios.edges)
        counts.stairs(histogram, ratios.edges, fill=True, alpha=0.4, color=colour, label=name)
    counts.set(xlabel="cosine distance", ylabel="pairs", xlim=(0.0, x_max), title=title)
    curves = counts.twinx()
    grid = np.linspace(0.0, x_max, 1000)
    shown = ratios.x <= x_max
    curves.plot(ratios.x[shown], ratios.ratio[shown], ".", color="black", markersize=3, label="genuine share per bin")
    curves.plot(grid, calibrator.sigmoid_(grid), color="tab:blue", label="fitted c(d)")
    curves.plot(grid, calibrator.predict_confidence(grid), color="tab:orange", label="C-Score")
    curves.axvline(calibrator.threshold_, color="grey", linestyle="--", label=f"t = {calibrator.threshold_:.4f}")
    curves.set(ylabel="genuine share / confidence", ylim=(-0.02, 1.05))
    handles = counts.get_legend_handles_labels()[0] + curves.get_legend_handles_labels()[0]
    curves.legend(handles=handles, loc="center right", fontsize="small")
    return _save(figure, path)
