"""The headline figures on all 6,000 LFW pairs with the default model, through the real CLI.

One evaluation embeds every LFW image once (about 5 minutes on 2 cores); the calibration report
and the second evaluation then only read the embedding cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def xfv_json(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "xfv.cli", *args, "--json"], capture_output=True, text=True, timeout=3000
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def lfw_evaluation(lfw_root: Path) -> dict[str, Any]:
    return xfv_json("evaluate", "--protocol", "lfw", "--root", str(lfw_root))


def test_lfw_accuracy_of_the_default_model(lfw_evaluation: dict[str, Any]) -> None:
    assert lfw_evaluation["n_pairs"] == 6000 and lfw_evaluation["model"] == "dlib"
    assert lfw_evaluation["accuracy_mean"] >= 0.988
    assert len(lfw_evaluation["thresholds"]) == 10
    assert lfw_evaluation["auc"] > 0.998
    assert lfw_evaluation["tar_at_far_1e-3"] > 0.95


def test_second_evaluation_only_reads_the_cache(lfw_root: Path, lfw_evaluation: dict[str, Any]) -> None:
    from xfv.cache import default_cache

    before = default_cache().path.stat().st_size
    again = xfv_json("evaluate", "--protocol", "lfw", "--root", str(lfw_root))
    assert again == lfw_evaluation
    assert default_cache().path.stat().st_size == before


def test_cscore_is_calibrated_out_of_fold_on_lfw(
    lfw_root: Path, lfw_evaluation: dict[str, Any], tmp_path: Path
) -> None:
    report = xfv_json("calibration-report", "--protocol", "lfw", "--root", str(lfw_root), "--out", str(tmp_path))
    cscore = report["cscore"]
    assert cscore["accuracy"] == pytest.approx(lfw_evaluation["accuracy_mean"])
    assert cscore["error_auroc"] >= 0.92
    assert cscore["ece"] <= 0.008
    assert 0.5 <= report["cscore_range"][0] and report["cscore_range"][1] <= 1.0
    for method in ("platt", "isotonic"):
        assert set(report[method]) >= {"ece", "mce", "brier", "nll", "error_auroc", "aurc", "accuracy"}
    assert {Path(p).name for p in report["figures"].values()} == {
        "reliability.png",
        "risk_coverage.png",
        "cscore_fit.png",
    }
