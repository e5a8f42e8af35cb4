"""The quality-aware C-Score on synthetic data with a known answer, its plumbing through the
fold-wise protocol and the reports, and its clear errors."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import expit

from xfv.datasets import Pair, PairList
from xfv.errors import CalibrationError
from xfv.method.calibration import (
    PlattCalibrator,
    QualityAwareCalibrator,
    out_of_fold_confidence,
)
from xfv.method.calibration_report import (
    calibration_report,
    error_auroc,
    expected_calibration_error,
    transfer_report,
)
from xfv.method.cscore import CScoreCalibrator, QualityCScoreCalibrator
from xfv.pipeline.calibrate import load_calibrator, save_calibrator

#: The true genuine share at distance d: steep for good pairs (quality >= 0.5), shallow for poor ones.
SLOPES = {"poor": 12.0, "good": 60.0}


def quality_dependent(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distances uniform on [0, 1], P(genuine | d) = expit(-k (d - 0.5)) with k by quality: classes
    balanced, the accuracy-maximising threshold 0.5, both groups' true curves known."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.0, 1.0, n)
    d = rng.uniform(0.0, 1.0, n)
    slope = np.where(quality < 0.5, SLOPES["poor"], SLOPES["good"])
    same = rng.random(n) < expit(-slope * (d - 0.5))
    return d, same, quality, np.arange(n) % 10


def test_the_fit_per_quality_group_recovers_the_true_curves() -> None:
    d, same, quality, _ = quality_dependent()
    calibrator = QualityCScoreCalibrator(groups=2).fit(d, same, threshold=0.5, quality=quality)
    assert calibrator.edges_ == pytest.approx([0.5], abs=0.02)
    poor, good = calibrator.sigmoids_
    for sigmoid, slope in ((poor, SLOPES["poor"]), (good, SLOPES["good"])):
        assert sigmoid.d0 == pytest.approx(0.5, abs=0.02)
        assert -sigmoid.k * sigmoid.L == pytest.approx(slope, rel=0.25)
    grid = np.linspace(0.0, 1.0, 11)
    assert np.abs(calibrator.predict_proba_same(grid, 0.1) - expit(-SLOPES["poor"] * (grid - 0.5))).max() < 0.05
    assert np.abs(calibrator.predict_proba_same(grid, 0.9) - expit(-SLOPES["good"] * (grid - 0.5))).max() < 0.05
    assert np.array_equal(calibrator.predict_same(grid), grid <= 0.5)  # decisions are the threshold's


def test_out_of_fold_it_is_better_calibrated_and_ranks_errors_better_than_the_plain_cscore() -> None:
    d, same, quality, folds = quality_dependent()
    plain = out_of_fold_confidence(CScoreCalibrator, d, same, folds)
    aware = out_of_fold_confidence(lambda: QualityCScoreCalibrator(groups=2), d, same, folds, quality=quality)
    assert np.array_equal(plain.predicted_same, aware.predicted_same)
    correct = plain.predicted_same == same
    assert (
        expected_calibration_error(aware.confidence, correct)
        < expected_calibration_error(plain.confidence, correct) / 2
    )
    assert error_auroc(aware.confidence, correct) > error_auroc(plain.confidence, correct) + 0.02
    assert aware.confidence.min() >= 0.5 and aware.confidence.max() <= 1.0


def test_one_group_is_the_plain_cscore() -> None:
    d, same, quality, _ = quality_dependent(4000)
    plain = CScoreCalibrator().fit(d, same, 0.5)
    one = QualityCScoreCalibrator(groups=1).fit(d, same, 0.5, quality=quality)
    assert np.allclose(one.predict_confidence(d, quality), plain.predict_confidence(d))


def test_a_group_too_small_to_fit_uses_the_pooled_curve() -> None:
    d, same, quality, _ = quality_dependent(4000)
    quality = np.where(np.arange(len(d)) < 15, -1.0, quality)  # 15 pairs below every other quality
    calibrator = QualityCScoreCalibrator(groups=300).fit(d, same, 0.5, quality=quality)
    assert calibrator.sigmoids_[0] == calibrator.pooled_


def test_save_load_and_scalar_prediction(tmp_path: Path) -> None:
    d, same, quality, _ = quality_dependent(4000)
    calibrator = QualityCScoreCalibrator(groups=3, bins=200).fit(d, same, quality=quality, model_name="m")
    save_calibrator(calibrator, tmp_path / "q.json")
    loaded = load_calibrator(tmp_path / "q.json")
    assert isinstance(loaded, QualityCScoreCalibrator) and loaded.groups == 3 and loaded.bins == 200
    assert np.array_equal(loaded.predict_confidence(d, quality), calibrator.predict_confidence(d, quality))
    assert np.ndim(calibrator.predict_confidence(0.4, 0.2)) == 0
    assert calibrator.predict_confidence(0.45, 0.1) < calibrator.predict_confidence(0.45, 0.9)


def test_clear_errors() -> None:
    d, same, quality, folds = quality_dependent(2000)
    with pytest.raises(CalibrationError, match="needs each pair's quality"):
        QualityCScoreCalibrator().fit(d, same)
    with pytest.raises(CalibrationError, match="one quality per pair"):
        QualityCScoreCalibrator().fit(d, same, quality=quality[:-1])
    with pytest.raises(CalibrationError, match="not finite"):
        QualityCScoreCalibrator().fit(d, same, quality=np.where(quality < 0.1, np.nan, quality))
    with pytest.raises(CalibrationError, match="at least 1 quality group"):
        QualityCScoreCalibrator(groups=0)
    fitted = QualityCScoreCalibrator().fit(d, same, quality=quality)
    with pytest.raises(CalibrationError, match="needs each pair's quality"):
        fitted.predict_confidence(d)
    with pytest.raises(CalibrationError, match="needs each pair's quality"):
        out_of_fold_confidence(QualityCScoreCalibrator, d, same, folds)
    assert isinstance(fitted, QualityAwareCalibrator) and not isinstance(PlattCalibrator(), QualityAwareCalibrator)


def test_reports_score_it_beside_the_others() -> None:
    d, same, quality, folds = quality_dependent(6000)
    summary = calibration_report(d, same, folds, "sim", bins=200, quality=quality, quality_groups=2).summary()
    assert list(summary)[4:9] == ["cscore_quality_groups", "cscore", "cscore-quality", "platt", "isotonic"]
    assert summary["cscore-quality"]["ece"] < summary["cscore"]["ece"]
    assert "cscore-quality" not in calibration_report(d, same, folds, "sim", bins=200).summary()

    shifted = d + 0.05  # the other benchmark: every distance larger
    transfer = transfer_report(
        d, same, shifted, same, "sim", "A", bins=200, fit_quality=quality, quality=quality, quality_groups=2
    ).summary()
    assert transfer["fitted_on"] == "A" and transfer["n_fit_pairs"] == 6000
    assert transfer["threshold"] == pytest.approx(0.5, abs=0.03)
    assert set(transfer) >= {"cscore", "cscore-quality", "platt", "isotonic", "cscore_range"}
    decided_same = shifted <= transfer["threshold"]
    assert transfer["cscore"]["accuracy"] == pytest.approx(np.mean(decided_same == same))


def test_calibrate_command_saves_a_quality_aware_calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xfv.cli.calibration as command

    d, same, quality, folds = quality_dependent(4000)
    pairs = PairList(
        "xqlfw-synth",
        tmp_path,
        [Pair(Path("a"), Path("b"), "A", "B", bool(s), int(f)) for s, f in zip(same, folds)],
        input_mode="lfw-funneled",
    )
    asked = {}

    def distances_and_quality(p: PairList, m: object, mode: str, with_quality: bool = True) -> tuple:
        asked.update(mode=mode, with_quality=with_quality)
        return d, quality if with_quality else None

    monkeypatch.setattr(command, "read_protocol", lambda protocol, root: pairs)
    monkeypatch.setattr(command, "get_model", lambda name: SimpleNamespace(spec=SimpleNamespace(name="fake")))
    monkeypatch.setattr(command, "_distances_and_quality", distances_and_quality)
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    out = tmp_path / "q.json"
    arguments = ["calibrate", "--protocol", "xqlfw", "--root", str(tmp_path), "--method", "cscore-quality"]
    args = parser.parse_args([*arguments, "--quality-groups", "2", "--out", str(out)])
    assert args.func(args) == 0
    assert asked == {"mode": "lfw-funneled", "with_quality": True}
    loaded = load_calibrator(out)
    assert isinstance(loaded, QualityCScoreCalibrator) and loaded.groups == 2 and loaded.model_name_ == "fake"
    assert loaded.fitted_on_["description"].startswith("XQLFW-SYNTH (4000 pairs, input mode lfw-funneled)")
