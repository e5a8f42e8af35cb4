"""Calibration figures: reliability diagram, risk-coverage curves and the C-Score fit (paper figure 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from xfv.method.calibration import OutOfFold
from xfv.method.calibration_report import (
    CalibrationReport,
    ReliabilityBins,
    aurc,
    expected_calibration_error,
    reliability_bins,
    risk_coverage_curve,
)
from xfv.method.cscore import BinRatios, CScoreCalibrator, bin_ratios


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """``ax``, or the axes of a new figure of ``size`` inches."""
    return ax if ax is not None else Figure(figsize=size, layout="constrained").subplots()


def _figure(ax: Axes) -> Figure:
    figure = ax.get_figure()
    assert isinstance(figure, Figure)
    return figure


def _decisions(results: dict[str, OutOfFold], same: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per method: its name, the confidence of each decision, and whether the decision was right."""
    labels = np.asarray(same, dtype=bool)
    return [(name, result.confidence, result.predicted_same == labels) for name, result in results.items()]


@dataclass
class ReliabilityDisplay:
    """Reliability diagram: accuracy against mean confidence per bin, one curve per method, with
    the pair count per bin on a second axes below (when drawn on a new figure or given ``counts_ax``)."""

    bins: dict[str, ReliabilityBins]
    ece: dict[str, float]
    model_name: str = ""
    #: How the confidences were fitted, for the title ("out of fold", "fitted on LFW").
    scope: str = "out of fold"

    @classmethod
    def from_results(
        cls,
        results: dict[str, OutOfFold],
        same: np.ndarray,
        model_name: str = "",
        ax: Axes | None = None,
        scope: str = "out of fold",
    ) -> ReliabilityDisplay:
        """The diagram of each method's out-of-fold decisions (``same``: the labels)."""
        decisions = _decisions(results, same)
        bins = {name: reliability_bins(confidence, correct) for name, confidence, correct in decisions}
        ece = {name: expected_calibration_error(confidence, correct) for name, confidence, correct in decisions}
        return cls(bins, ece, model_name, scope).plot(ax)

    def plot(self, ax: Axes | None = None, counts_ax: Axes | None = None) -> ReliabilityDisplay:
        if ax is None:
            figure = Figure(figsize=(6.4, 6.4), layout="constrained")
            ax, counts_ax = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle=":", label="perfect calibration")
        for name, bins in self.bins.items():
            filled = bins.counts > 0
            label = f"{name} (ECE {self.ece[name]:.4f})"
            ax.plot(bins.mean_confidence[filled], bins.accuracy[filled], marker="o", label=label)
            if counts_ax is not None:
                counts_ax.stairs(bins.counts, bins.edges, label=name)
        ax.set(ylabel="accuracy", title=f"Reliability, {self.scope}: {self.model_name}", xlim=(0.5, 1.0))
        ax.legend(loc="upper left")
        if counts_ax is not None:
            counts_ax.set(xlabel="confidence of the decision", ylabel="pairs", yscale="log")
        else:
            ax.set(xlabel="confidence of the decision")
        self.ax_, self.counts_ax_, self.figure_ = ax, counts_ax, _figure(ax)
        return self


@dataclass
class RiskCoverageDisplay:
    """Risk-coverage curves: error rate among the most confident decisions against their share."""

    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    aurc: dict[str, float]
    model_name: str = ""
    scope: str = "out of fold"

    @classmethod
    def from_results(
        cls,
        results: dict[str, OutOfFold],
        same: np.ndarray,
        model_name: str = "",
        ax: Axes | None = None,
        scope: str = "out of fold",
    ) -> RiskCoverageDisplay:
        decisions = _decisions(results, same)
        curves = {name: risk_coverage_curve(confidence, correct) for name, confidence, correct in decisions}
        areas = {name: aurc(confidence, correct) for name, confidence, correct in decisions}
        return cls(curves, areas, model_name, scope).plot(ax)

    def plot(self, ax: Axes | None = None) -> RiskCoverageDisplay:
        ax = _axes(ax, (6.4, 4.8))
        for name, (coverage, risk) in self.curves.items():
            ax.plot(coverage, risk, label=f"{name} (AURC {self.aurc[name]:.5f})")
        ax.set(xlabel="coverage", ylabel="risk (error rate)", title=f"Risk-coverage, {self.scope}: {self.model_name}")
        ax.legend(loc="upper left")
        self.ax_, self.figure_ = ax, _figure(ax)
        return self


@dataclass
class CScoreFitDisplay:
    """The paper's figure 2: histogram of the calibration distances, genuine share per bin, fitted curves."""

    distances: np.ndarray
    labels: np.ndarray
    calibrator: CScoreCalibrator
    ratios: BinRatios
    title: str = ""

    @classmethod
    def from_calibrator(
        cls,
        distances: np.ndarray,
        labels: np.ndarray,
        calibrator: CScoreCalibrator,
        title: str = "",
        ax: Axes | None = None,
    ) -> CScoreFitDisplay:
        """The fit of ``calibrator`` drawn over the distances and labels it was fitted on."""
        labels = np.asarray(labels, dtype=bool)
        ratios = bin_ratios(distances, labels, calibrator.threshold_, calibrator.bins, calibrator.x_position)
        return cls(np.asarray(distances, dtype=np.float64), labels, calibrator, ratios, title).plot(ax)

    @classmethod
    def from_report(cls, report: CalibrationReport, ax: Axes | None = None) -> CScoreFitDisplay:
        """The C-Score that scored the report's first fold, drawn on the folds it was fitted on."""
        fold, train, calibrator = report.first_fold_cscore()
        title = f"C-Score fit for fold {fold} (fitted on the others): {report.model_name}"
        return cls.from_calibrator(report.distances[train], report.same[train], calibrator, title, ax)

    def plot(self, ax: Axes | None = None) -> CScoreFitDisplay:
        ax = _axes(ax, (8.0, 4.8))
        edges = self.ratios.edges
        x_max = min(2.0, float(np.quantile(self.distances, 0.999)) + 10 * (edges[1] - edges[0]))
        for name, mask, colour in (("genuine", self.labels, "tab:green"), ("impostor", ~self.labels, "tab:red")):
            histogram, _ = np.histogram(np.clip(self.distances[mask], 0.0, 2.0), bins=edges)
            ax.stairs(histogram, edges, fill=True, alpha=0.4, color=colour, label=name)
        ax.set(xlabel="cosine distance", ylabel="pairs", xlim=(0.0, x_max), title=self.title)
        curves = ax.twinx()
        grid = np.linspace(0.0, x_max, 1000)
        shown = self.ratios.x <= x_max
        curves.plot(
            self.ratios.x[shown],
            self.ratios.ratio[shown],
            ".",
            color="black",
            markersize=3,
            label="genuine share per bin",
        )
        curves.plot(grid, self.calibrator.sigmoid_(grid), color="tab:blue", label="fitted c(d)")
        curves.plot(grid, self.calibrator.predict_confidence(grid), color="tab:orange", label="C-Score")
        threshold = self.calibrator.threshold_
        curves.axvline(threshold, color="grey", linestyle="--", label=f"t = {threshold:.4f}")
        curves.set(ylabel="genuine share / confidence", ylim=(-0.02, 1.05))
        handles = ax.get_legend_handles_labels()[0] + curves.get_legend_handles_labels()[0]
        curves.legend(handles=handles, loc="center right", fontsize="small")
        self.ax_, self.curves_ax_, self.figure_ = ax, curves, _figure(ax)
        return self


__all__ = ["CScoreFitDisplay", "ReliabilityDisplay", "RiskCoverageDisplay"]
