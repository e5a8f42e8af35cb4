"""C-Score on synthetic distance distributions with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xfv.errors import CalibrationError, XfvError
from xfv.method.calibration import PlattCalibrator, out_of_fold_confidence
from xfv.method.calibration_report import calibration_metrics
from xfv.method.cscore import CScoreCalibrator, Sigmoid, bin_ratios, fit_sigmoid
from xfv.method.thresholds import fold_thresholds
from xfv.pipeline.calibrate import load_calibrator, save_calibrator


def two_gaussians(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Genuine ~ N(0.3, 0.08), impostor ~ N(0.6, 0.08): overlapping, threshold near 0.45."""
    rng = np.random.default_rng(seed)
    distances = np.r_[rng.normal(0.3, 0.08, n), rng.normal(0.6, 0.08, n)]
    return np.clip(distances, 0.0, 2.0), np.r_[np.ones(n, bool), np.zeros(n, bool)]


def lfw_like(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roughly dlib on LFW: 10 folds of 300 genuine ~ N(0.04, 0.02) and 300 impostor ~ N(0.17, 0.035)."""
    rng = np.random.default_rng(seed)
    genuine = np.clip(rng.normal(0.04, 0.02, (10, 300)), 0.0, 2.0)
    impostor = np.clip(rng.normal(0.17, 0.035, (10, 300)), 0.0, 2.0)
    distances = np.concatenate([genuine, impostor], axis=1).ravel()
    same = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], 10)
    return distances, same, np.repeat(np.arange(10), 600)


@pytest.fixture(scope="module")
def fitted() -> CScoreCalibrator:
    return CScoreCalibrator().fit(*two_gaussians())


def test_confidence_is_high_far_from_the_threshold_and_half_at_it(fitted: CScoreCalibrator) -> None:
    t = fitted.threshold_
    assert 0.4 < t < 0.5
    assert np.all(fitted.predict_confidence([0.0, 0.1, 0.85, 1.0, 2.0]) > 0.99)
    assert abs(float(fitted.predict_confidence(t)) - 0.5) < 0.1
    assert fitted.sigmoid_.k < 0 and abs(fitted.sigmoid_.d0 - t) < 0.05


def test_confidence_is_monotone_on_each_side_and_within_half_to_one(fitted: CScoreCalibrator) -> None:
    t = fitted.threshold_
    left, right = np.linspace(-0.1, t, 500), np.linspace(np.nextafter(t, 1), 2.1, 500)
    assert np.all(np.diff(fitted.predict_confidence(left)) <= 0)
    assert np.all(np.diff(fitted.predict_confidence(right)) >= 0)
    everywhere = fitted.predict_confidence(np.r_[left, right])
    assert everywhere.min() >= 0.5 and everywhere.max() <= 1.0


def test_proba_same_is_the_confidence_of_the_decision(fitted: CScoreCalibrator) -> None:
    d = np.linspace(0.0, 2.0, 801)
    p, c, same = fitted.predict_proba_same(d), fitted.predict_confidence(d), fitted.predict_same(d)
    assert np.allclose(np.where(same, p, 1 - p), c)
    assert np.all(np.diff(p) <= 0) and p.min() >= 0 and p.max() <= 1


def test_bin_ratios_by_hand() -> None:
    # 4 bins of width 0.5; genuine share from densities, not counts.
    d = np.array([0.1, 0.2, 0.6, 0.7, 1.8])
    same = np.array([True, True, True, False, False])
    # Threshold bin 1: the empty bin 2 lies right of it, so 0.
    ratios = bin_ratios(d, same, threshold=0.8, bins=4)
    assert np.allclose(ratios.ratio, [1.0, (1 / 3) / (1 / 3 + 1 / 2), 0.0, 0.0])
    assert np.allclose(ratios.x, [0.25, 0.75, 1.25, 1.75])
    # Threshold bin 3: the empty bin 2 lies left of it, so 1.
    assert np.allclose(bin_ratios(d, same, threshold=1.6, bins=4).ratio[2], 1.0)
    assert np.allclose(bin_ratios(d, same, threshold=0.8, bins=4, x_position="left").x, [0.0, 0.5, 1.0, 1.5])
    # Densities make the share independent of how many pairs each class has.
    more_genuine = bin_ratios(np.r_[d, np.tile(d[same], 9)], np.r_[same, np.ones(27, bool)], 0.8, bins=4)
    assert np.allclose(more_genuine.ratio, ratios.ratio)


def test_left_bin_edges_shift_the_curve_by_half_a_bin() -> None:
    data = two_gaussians()
    centre = CScoreCalibrator(bins=40).fit(*data)
    left = CScoreCalibrator(bins=40, x_position="left").fit(*data)
    assert np.isclose(left.sigmoid_.d0, centre.sigmoid_.d0 - 0.025, atol=1e-4)
    assert np.allclose([left.sigmoid_.L, left.sigmoid_.k], [centre.sigmoid_.L, centre.sigmoid_.k], rtol=1e-3)


def test_strict_threshold_flips_the_decision_at_t() -> None:
    data = two_gaussians()
    default = CScoreCalibrator().fit(*data, threshold=0.45)
    strict = CScoreCalibrator(strict=True).fit(*data, threshold=0.45)
    assert default.predict_same(0.45) and not strict.predict_same(0.45)
    c = float(default.sigmoid_(0.45))
    assert np.isclose(float(default.predict_confidence(0.45)), np.clip(c, 0.5, 1))
    assert np.isclose(float(strict.predict_confidence(0.45)), np.clip(1 - c, 0.5, 1))
    assert np.allclose(default.predict_confidence([0.2, 0.7]), strict.predict_confidence([0.2, 0.7]))


def test_authors_code_options() -> None:
    authors = CScoreCalibrator.authors_code()
    assert authors.get_options() == {"strict": True, "bins": 2000, "x_position": "left", "k0": -20.0}
    data = two_gaussians()
    fits = [CScoreCalibrator(bins=2000, x_position="left", k0=k0).fit(*data).sigmoid_ for k0 in (-20.0, -18.0)]
    assert np.allclose(fits[0], fits[1], rtol=1e-2, atol=1e-3)  # the start only picks the same optimum


def test_save_and_load_round_trip(fitted: CScoreCalibrator, tmp_path: Path) -> None:
    calibrator = CScoreCalibrator(bins=200).fit(*two_gaussians(), model_name="dlib", data_description="two Gaussians")
    path = tmp_path / "cscore.json"
    save_calibrator(calibrator, path)
    saved = json.loads(path.read_text())
    assert saved["kind"] == "cscore" and saved["model"] == "dlib"
    assert saved["fitted_on"] == {"description": "two Gaussians", "n_genuine": 2000, "n_impostor": 2000}
    assert set(saved["parameters"]) == {"L", "d0", "k", "b"} and saved["threshold"] == calibrator.threshold_
    assert saved["options"]["bins"] == 200
    for loaded in (load_calibrator(path), CScoreCalibrator.from_dict(saved)):
        assert isinstance(loaded, CScoreCalibrator) and loaded.sigmoid_ == calibrator.sigmoid_
        d = np.linspace(0, 2, 101)
        assert np.array_equal(loaded.predict_confidence(d), calibrator.predict_confidence(d))
    with pytest.raises(CalibrationError, match="cscore"):
        PlattCalibrator.from_dict(saved)


def test_clear_errors() -> None:
    assert issubclass(CalibrationError, XfvError)
    d, same = two_gaussians(n=5)
    with pytest.raises(CalibrationError, match="too few pairs.*5 genuine and 5 impostor"):
        CScoreCalibrator().fit(d, same)
    d, same = two_gaussians()
    with pytest.raises(CalibrationError, match="no impostor pairs"):
        CScoreCalibrator().fit(d[same], same[same])
    with pytest.raises(CalibrationError, match="not fitted"):
        CScoreCalibrator().predict_confidence(0.3)
    with pytest.raises(CalibrationError, match="not finite"):
        CScoreCalibrator().fit(np.r_[d, np.nan], np.r_[same, True])
    with pytest.raises(CalibrationError, match="x_position"):
        CScoreCalibrator(x_position="middle")


def test_a_fit_that_does_not_converge_is_an_error() -> None:
    # Labels swapped (genuine far, impostors near) with a threshold between: dogbox runs out of evaluations.
    d = np.r_[np.linspace(0.38, 0.42, 50), np.linspace(0.08, 0.12, 50)]
    same = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    with pytest.raises(CalibrationError, match="did not converge"):
        CScoreCalibrator().fit(d, same, threshold=0.2)
    ratios = bin_ratios(*two_gaussians(), threshold=0.45)
    with pytest.raises(CalibrationError, match="did not converge"):
        fit_sigmoid(ratios.x, ratios.ratio, 0.45, max_evaluations=1)


def test_a_rising_fit_is_an_error() -> None:
    x = np.linspace(0, 2, 400)
    with pytest.raises(CalibrationError, match="does not fall"):
        fit_sigmoid(x, Sigmoid(1.0, 1.0, 20.0, 0.0)(x), 1.0, k0=20.0)


def test_out_of_fold_on_lfw_like_distances_meets_the_targets() -> None:
    d, same, folds = lfw_like()
    result = out_of_fold_confidence(CScoreCalibrator, d, same, folds, fold_thresholds(d, same, folds))
    metrics = calibration_metrics(result, same)
    assert metrics["accuracy"] > 0.98
    assert metrics["ece"] <= 0.008 and metrics["error_auroc"] >= 0.92
