"""End-to-end 10-fold evaluation on a slice of real LFW pairs with the real default model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xfv.datasets import read_protocol
from xfv.models import get_model
from xfv.pipeline.evaluate import evaluate


def lfw_slice(lfw_root: Path, per_fold: int = 30):
    """The first ``per_fold`` genuine and impostor pairs of every fold."""
    pairs = read_protocol("lfw", lfw_root)
    same, folds = pairs.same, pairs.folds
    keep = [
        i
        for k in range(10)
        for label in (True, False)
        for i in np.flatnonzero((folds == k) & (same == label))[:per_fold]
    ]
    return pairs.subset(sorted(keep))


def test_evaluation_on_a_slice_of_lfw(lfw_root: Path) -> None:
    pairs = lfw_slice(lfw_root)
    model = get_model("dlib")
    report = evaluate(pairs, model, "lfw-funneled", progress=False)
    summary = report.summary()
    assert summary["n_pairs"] == 600 and len(summary["thresholds"]) == 10
    assert summary["accuracy_mean"] >= 0.97
    assert summary["auc"] >= 0.99
    assert 0.03 < np.mean(summary["thresholds"]) < 0.12
    # A second run reads every embedding from the cache: no model call at all.
    calls = []
    original = model.embed_batch
    model.embed_batch = lambda faces: calls.append(len(faces)) or original(faces)  # type: ignore[method-assign]
    try:
        again = evaluate(pairs, model, "lfw-funneled", progress=False)
    finally:
        del model.embed_batch
    assert calls == [] and np.array_equal(again.distances, report.distances)


def test_onnx_and_native_dlib_backends_agree_on_lfw_accuracy(lfw_root: Path) -> None:
    """The 10-fold accuracy of both backends is identical to three decimals (on a slice of LFW in
    CI; `python bench/backend_agreement.py` compares them on all 6,000 pairs)."""
    pairs = lfw_slice(lfw_root, per_fold=10)
    onnx_report = evaluate(pairs, get_model("dlib"), "lfw-funneled", progress=False)
    native_report = evaluate(pairs, get_model("dlib-native"), "lfw-funneled", progress=False)
    assert np.abs(onnx_report.distances - native_report.distances).max() < 1e-5
    assert round(onnx_report.accuracy_mean, 3) == round(native_report.accuracy_mean, 3)
    assert np.allclose(onnx_report.thresholds, native_report.thresholds, atol=1e-4)
