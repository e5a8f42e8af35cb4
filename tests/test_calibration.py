"""Baseline calibrators, the fold-wise protocol, calibration metrics, the report and its command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import expit

from tests.test_cscore import lfw_like, two_gaussians
from xfv.errors import CalibrationError
from xfv.method.calibration import (
    Calibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    out_of_fold_confidence,
)
from xfv.method.calibration_report import (
    aurc,
    brier_score,
    calibration_report,
    error_auroc,
    expected_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_bins,
    risk_coverage_curve,
)
from xfv.method.thresholds import best_threshold
from xfv.pipeline.calibrate import load_calibrator, save_calibrator

# --- baselines -----------------------------------------------------------------------------------


def test_platt_recovers_a_known_logistic() -> None:
    rng = np.random.default_rng(0)
    d = rng.uniform(0.0, 1.0, 20000)
    same = rng.random(20000) < expit(10.0 - 20.0 * d)
    platt = PlattCalibrator().fit(d, same, threshold=0.5)
    assert np.isclose(platt.slope_, -20.0, rtol=0.1) and np.isclose(platt.intercept_, 10.0, rtol=0.1)
    assert np.allclose(platt.predict_proba_same([0.0, 0.5, 1.0]), expit([10.0, 0.0, -10.0]), atol=0.02)


def test_platt_stays_finite_on_separable_data() -> None:
    d = np.r_[np.linspace(0.1, 0.2, 20), np.linspace(0.6, 0.7, 20)]
    same = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    platt = PlattCalibrator().fit(d, same)
    assert np.isfinite(platt.slope_) and platt.slope_ < 0
    assert platt.predict_proba_same(0.1) > 0.9 and platt.predict_proba_same(0.7) < 0.1


def test_confidence_is_that_of_the_predicted_decision() -> None:
    platt = PlattCalibrator().fit(*two_gaussians(), threshold=0.45)
    d = np.array([0.1, 0.45, 0.46, 0.9])
    p = platt.predict_proba_same(d)
    assert np.allclose(platt.predict_confidence(d), [p[0], p[1], 1 - p[2], 1 - p[3]])


def test_isotonic_is_non_increasing_and_clipped() -> None:
    d, same = two_gaussians()
    isotonic = IsotonicCalibrator().fit(d, same)
    grid = np.linspace(-1.0, 3.0, 2001)
    p = isotonic.predict_proba_same(grid)
    assert np.all(np.diff(p) <= 0) and p[0] == 1.0 and p[-1] == 0.0
    separable = IsotonicCalibrator().fit([0.1, 0.2, 0.3, 0.6, 0.7, 0.8] * 4, ([True] * 3 + [False] * 3) * 4)
    assert np.array_equal(separable.predict_proba_same([0.0, 0.2, 0.7, 1.0]), [1.0, 1.0, 0.0, 0.0])


@pytest.mark.parametrize("kind", [PlattCalibrator, IsotonicCalibrator])
def test_baselines_save_and_load(kind: type[Calibrator], tmp_path: Path) -> None:
    calibrator = kind().fit(*two_gaussians(), model_name="m", data_description="synthetic")
    save_calibrator(calibrator, tmp_path / "c.json")
    loaded = load_calibrator(tmp_path / "c.json")
    assert type(loaded) is kind and loaded.model_name_ == "m" and loaded.threshold_ == calibrator.threshold_
    d = np.linspace(0.0, 2.0, 101)
    assert np.array_equal(loaded.predict_confidence(d), calibrator.predict_confidence(d))


@pytest.mark.parametrize("kind", [PlattCalibrator, IsotonicCalibrator])
def test_baselines_fail_clearly(kind: type[Calibrator]) -> None:
    d, same = two_gaussians()
    with pytest.raises(CalibrationError, match="no genuine pairs"):
        kind().fit(d[~same], same[~same])
    with pytest.raises(CalibrationError, match="too few pairs"):
        kind().fit(d[np.r_[0:5, 2000:2100]], same[np.r_[0:5, 2000:2100]])


def test_malformed_descriptions_are_clear_errors(tmp_path: Path) -> None:
    good = PlattCalibrator().fit(*two_gaussians()).to_dict()
    with pytest.raises(CalibrationError, match="not an xfv-calibrator"):
        Calibrator.from_dict({**good, "version": 99})
    with pytest.raises(CalibrationError, match="malformed"):
        Calibrator.from_dict({**good, "parameters": {}})
    with pytest.raises(CalibrationError, match="cannot load"):
        Calibrator.from_dict({**good, "kind": "nonsense"})
    with pytest.raises(CalibrationError, match="not an xfv-calibrator"):
        Calibrator.from_dict([good])  # type: ignore[arg-type]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibrator(tmp_path / "bad.json")


# --- fold-wise use -------------------------------------------------------------------------------


class SpyCalibrator(Calibrator):
    """Remembers what it was fitted on; P(same) is its threshold, so each pair shows who scored it."""

    kind = "test-spy"

    def _fit(self, d: np.ndarray, same: np.ndarray, t: float) -> None:
        self.seen = d.copy()

    def predict_proba_same(self, distances: np.ndarray | float) -> np.ndarray:
        return np.full(np.shape(distances), self.threshold_)

    def _parameters(self) -> dict[str, object]:
        return {}

    def _set_parameters(self, parameters: dict[str, object]) -> None:
        pass


def test_out_of_fold_fits_on_the_other_folds_with_the_folds_threshold() -> None:
    d, same, folds = lfw_like()
    folds = (folds + 3) % 10 * 2  # ids need not be 0..9
    thresholds = np.linspace(0.05, 0.14, 10)
    result = out_of_fold_confidence(SpyCalibrator, d, same, folds, thresholds)
    assert list(result.fold_ids) == list(range(0, 20, 2))
    for index, (fold, calibrator) in enumerate(zip(result.fold_ids, result.calibrators)):
        assert np.array_equal(np.sort(calibrator.seen), np.sort(d[folds != fold]))
        assert calibrator.threshold_ == thresholds[index]
        test = folds == fold
        assert np.all(result.proba_same[test] == thresholds[index])
        assert np.array_equal(result.predicted_same[test], d[test] <= thresholds[index])


def test_out_of_fold_without_thresholds_uses_the_best_on_the_other_folds() -> None:
    d, same, folds = lfw_like()
    result = out_of_fold_confidence(SpyCalibrator, d, same, folds)
    for fold, calibrator in zip(result.fold_ids, result.calibrators):
        assert calibrator.threshold_ == best_threshold(d[folds != fold], same[folds != fold])


def test_out_of_fold_errors() -> None:
    d, same, folds = lfw_like()
    with pytest.raises(CalibrationError, match="one threshold per fold"):
        out_of_fold_confidence(PlattCalibrator, d, same, folds, [0.1] * 9)
    with pytest.raises(CalibrationError, match="at least two folds"):
        out_of_fold_confidence(PlattCalibrator, d, same, np.zeros_like(folds))


# --- metrics -------------------------------------------------------------------------------------


def test_ece_and_mce_by_hand() -> None:
    confidence = np.array([0.51, 0.52, 0.81, 0.99, 0.98])
    correct = np.array([True, False, False, True, True])
    # Bins [0.5, 0.525): gap |0.5 - 0.515|; [0.8, 0.825): |0 - 0.81|; [0.975, 1]: |1 - 0.985|.
    assert np.isclose(expected_calibration_error(confidence, correct), (2 * 0.015 + 0.81 + 2 * 0.015) / 5)
    assert np.isclose(maximum_calibration_error(confidence, correct), 0.81)
    bins = reliability_bins(confidence, correct)
    assert bins.counts.sum() == 5 and bins.counts[0] == 2 and bins.counts[12] == 1 and bins.counts[19] == 2
    assert np.isclose(expected_calibration_error([1.0, 0.5], [True, False]), 0.25)  # ends fall in the end bins


def test_brier_and_nll_by_hand() -> None:
    assert np.isclose(brier_score([1.0, 0.0, 0.5], [True, True, False]), (0 + 1 + 0.25) / 3)
    assert np.isclose(negative_log_likelihood([0.8, 0.4], [True, False]), -(np.log(0.8) + np.log(0.6)) / 2)
    assert np.isfinite(negative_log_likelihood([0.0, 1.0], [True, False]))


def test_error_auroc_by_hand() -> None:
    assert np.isclose(error_auroc([0.9, 0.8, 0.7, 0.6], [True, False, True, False]), 0.75)
    assert np.isclose(error_auroc([0.9, 0.9, 0.9], [True, False, True]), 0.5)
    assert np.isnan(error_auroc([0.9, 0.8], [True, True]))


def test_risk_coverage_by_hand() -> None:
    coverage, risk = risk_coverage_curve([0.7, 0.9, 0.8], [True, True, False])
    assert np.allclose(coverage, [1 / 3, 2 / 3, 1.0]) and np.allclose(risk, [0.0, 0.5, 1 / 3])
    assert np.isclose(aurc([0.7, 0.9, 0.8], [True, True, False]), (0 + 0.5 + 1 / 3) / 3)
    # Ties are taken together, whatever their input order.
    assert np.allclose(risk_coverage_curve([0.9, 0.9], [True, False])[1], [0.5, 0.5])
    assert np.allclose(risk_coverage_curve([0.9, 0.9], [False, True])[1], [0.5, 0.5])


# --- report and command --------------------------------------------------------------------------

METRIC_KEYS = {"ece", "mce", "brier", "nll", "error_auroc", "aurc", "accuracy"}


def small_lfw_like() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d, same, folds = lfw_like(seed=1)
    keep = np.arange(len(d)) % 600 % 300 < 60  # 60 genuine and 60 impostor per fold
    return d[keep], same[keep], folds[keep]


def test_calibration_report() -> None:
    report = calibration_report(*small_lfw_like(), "sim", bins=200).summary()
    for method in ("cscore", "platt", "isotonic"):
        assert set(report[method]) == METRIC_KEYS
        assert report[method]["accuracy"] > 0.97 and 0 <= report[method]["ece"] < 0.05
    assert report["model"] == "sim" and report["n_pairs"] == 1200 and len(report["thresholds"]) == 10
    assert len(report["cscore_folds"]) == 10 and {"L", "d0", "k", "b", "t"} <= set(report["cscore_folds"][0])
    json.dumps(report)


def test_calibration_displays_draw_on_given_axes() -> None:
    from matplotlib.figure import Figure

    from xfv.plots import CScoreFitDisplay, ReliabilityDisplay, RiskCoverageDisplay

    report = calibration_report(*small_lfw_like(), "sim", bins=200)
    axes = Figure().subplots(1, 3)
    reliability = ReliabilityDisplay.from_results(report.results, report.same, "sim", ax=axes[0])
    risk = RiskCoverageDisplay.from_results(report.results, report.same, "sim", ax=axes[1])
    fit = CScoreFitDisplay.from_report(report, ax=axes[2])
    assert reliability.ax_ is axes[0] and risk.ax_ is axes[1] and fit.ax_ is axes[2]
    assert reliability.figure_ is risk.figure_ is fit.figure_
    assert set(reliability.ece) == {"cscore", "platt", "isotonic"} and len(axes[0].lines) == 4  # diagonal + 3
    assert risk.aurc["cscore"] == pytest.approx(report.summary()["cscore"]["aurc"])
    assert "fold 0" in fit.ax_.get_title()
    standalone = ReliabilityDisplay.from_results(report.results, report.same, "sim")
    assert standalone.counts_ax_ is not None and standalone.figure_ is not reliability.figure_


def test_calibration_report_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import xfv.cli.calibration as command

    d, same, folds = small_lfw_like()
    quality = np.random.default_rng(0).uniform(0.2, 0.9, len(d))
    pairs = SimpleNamespace(name="lfw", same=same, folds=folds, input_mode=None, notes=())
    model = SimpleNamespace(spec=SimpleNamespace(name="fake"))
    monkeypatch.setattr(command, "read_protocol", lambda protocol, root: pairs)
    monkeypatch.setattr(command, "get_model", lambda name: model)
    monkeypatch.setattr(command, "_distances_and_quality", lambda p, m, mode, with_quality=True: (d, quality))
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    base = ["calibration-report", "--protocol", "lfw", "--root", str(tmp_path), "--out", str(tmp_path / "out")]

    args = parser.parse_args([*base, "--json", "--bins", "200"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)  # NaN became null: valid JSON
    assert report["protocol"] == "lfw" and report["input_mode"] == "lfw-funneled" and report["model"] == "fake"
    assert report["cscore_bins"] == 200 and report["n_pairs"] == len(d) and report["cscore_quality_groups"] == 3
    assert {"cscore", "cscore-quality", "platt", "isotonic"} <= set(report) and "lfw_fitted" not in report
    assert set(report["figures"]) == {"reliability", "risk_coverage", "cscore_fit"}
    for path in report["figures"].values():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert command._json_safe({"a": [float("nan"), 1.0]}) == {"a": [None, 1.0]}  # undefined metrics: null

    args = parser.parse_args(base)
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "cscore-quality" in table and "isotonic" in table and "reliability.png" in table
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--bins", "1"])


class _Pairs(list[int]):
    """A stand-in pair list: its length, labels, name and input mode are all ``xfv calibrate`` reads of it."""

    def __init__(self, same: np.ndarray) -> None:
        super().__init__(range(len(same)))
        self.same = same
        self.name = "lfw"
        self.input_mode = None


@pytest.mark.parametrize("method", ["cscore", "platt", "isotonic"])
def test_calibrate_command_saves_a_calibrator_the_explainer_loads(
    method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import xfv
    import xfv.cli.calibration as command
    from tests.test_xmaps import BlockProjectionModel

    d, same, _ = small_lfw_like()
    blocks = BlockProjectionModel()
    model = SimpleNamespace(spec=SimpleNamespace(name=blocks.spec.name))  # fitted for the model it explains
    monkeypatch.setattr(command, "read_protocol", lambda protocol, root: _Pairs(same))
    monkeypatch.setattr(command, "get_model", lambda name: model)
    monkeypatch.setattr(command, "pair_distances", lambda p, m, mode, progress=True: d)
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    out = tmp_path / "calibration" / f"{method}.json"
    args = parser.parse_args(
        ["calibrate", "--protocol", "lfw", "--root", str(tmp_path), "--method", method, "--out", str(out)]
    )
    assert args.func(args) == 0 and f"saved to {out}" in capsys.readouterr().out
    loaded = load_calibrator(out)
    assert (
        loaded.kind == method
        and loaded.model_name_ == blocks.spec.name
        and loaded.threshold_ == pytest.approx(best_threshold(d, same))
    )
    explainer = xfv.XMaps(blocks, calibrator=out)  # a path is loaded
    assert explainer.calibrator is not None and explainer.calibrator.kind == method and "C-Score on" in repr(explainer)
