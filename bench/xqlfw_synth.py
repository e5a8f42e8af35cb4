"""XQLFW pairs on synthetically degraded LFW: the full generation, its determinism, and a model's
figures on it beside LFW (accuracy; plain and quality-aware C-Score, fold-wise and fitted on LFW).

Usage: ``python bench/xqlfw_synth.py [--out DIR] [--model dlib] [--seed 0] [--groups 3] [--json]``

1. Generates the 7,263-image tree into ``--out`` (a finished tree there is verified instead),
   then a second copy in a temporary folder, compares every byte, and times a rerun on ``--out``
   (which only verifies).
2. Evaluates the model on LFW and on the tree (10-fold protocol; embeddings are cached).
3. Scores the confidences out of fold on both, and fitted on all of LFW (at LFW's threshold, as
   the model's shipped calibration) on the tree; the quality-aware C-Score's differences to the
   plain one come with a 95% interval from a paired bootstrap over pairs (1,000 draws).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xfv.datasets import read_protocol
from xfv.datasets.readers import pairs_input_mode
from xfv.method.calibration import OutOfFold
from xfv.method.calibration_report import (
    calibration_metrics,
    calibration_report,
    error_auroc,
    expected_calibration_error,
    transfer_report,
)
from xfv.models import get_model
from xfv.pipeline.degrade import make_xqlfw_synth
from xfv.pipeline.evaluate import EvaluationReport, evaluate
from xfv.pipeline.quality import pair_qualities

DATA = Path(__file__).resolve().parents[2] / "shared/data"
METRICS = ("accuracy", "ece", "error_auroc", "aurc", "nll", "brier")


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def generate(lfw: Path, pairs: Path, out: Path, seed: int) -> dict[str, Any]:
    """The tree in ``out``, a second copy compared byte for byte, and the time of a verifying rerun."""
    started = time.perf_counter()
    report = make_xqlfw_synth(lfw, pairs, out, seed)
    first_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        make_xqlfw_synth(lfw, pairs, Path(folder) / "copy", seed)
        copy_seconds = time.perf_counter() - started
        identical = files(out) == files(Path(folder) / "copy")
    started = time.perf_counter()
    rerun = make_xqlfw_synth(lfw, pairs, out, seed, progress=False)
    return {
        "out": str(out),
        "seconds": round(first_seconds, 1),
        "written": report.written,
        "second_copy_seconds": round(copy_seconds, 1),
        "second_copy_byte_identical": identical,
        "rerun_seconds": round(time.perf_counter() - started, 1),
        "rerun_written": rerun.written,
        **report.summary,
    }


def accuracy(report: EvaluationReport) -> dict[str, float]:
    return {
        "accuracy": report.accuracy_mean,
        "accuracy_std": report.accuracy_std,
        "auc": report.auc,
        "tar_at_far_1e-3": report.tar_at_far_1e3,
    }


def metrics(results: dict[str, OutOfFold], same: np.ndarray) -> dict[str, dict[str, float]]:
    return {
        name: {k: round(v, 5) for k, v in calibration_metrics(r, same).items() if k in METRICS}
        for name, r in results.items()
    }


def bootstrap(results: dict[str, OutOfFold], same: np.ndarray, draws: int = 1000) -> dict[str, dict[str, Any]]:
    """Quality-aware minus plain C-Score, ECE and error AUROC: the difference and its 95% percentile
    interval over ``draws`` resamplings of the pairs (both methods scored on the same resample)."""
    plain, aware = results["cscore"], results["cscore-quality"]
    correct = plain.predicted_same == same
    measures = {"ece": expected_calibration_error, "error_auroc": error_auroc}

    def difference(metric: Any, index: np.ndarray) -> float:
        return float(metric(aware.confidence[index], correct[index]) - metric(plain.confidence[index], correct[index]))

    rng = np.random.default_rng(0)
    samples = [rng.integers(0, len(same), len(same)) for _ in range(draws)]
    everything = np.arange(len(same))
    return {
        name: {
            "difference": round(difference(metric, everything), 4),
            "interval_95": [
                round(float(x), 4) for x in np.percentile([difference(metric, i) for i in samples], [2.5, 97.5])
            ],
        }
        for name, metric in measures.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=DATA / "lfw")
    parser.add_argument("--pairs", type=Path, default=DATA / "xqlfw" / "xqlfw_pairs.txt")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "xfv-xqlfw-synth")
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", type=int, default=3, help="quality groups of the quality-aware C-Score")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    result: dict[str, Any] = {"generation": generate(args.lfw, args.pairs, args.out, args.seed), "model": args.model}
    model = get_model(args.model)
    sets = {"lfw": read_protocol("lfw", args.lfw), "xqlfw-synth": read_protocol("xqlfw", args.out)}
    reports, qualities = {}, {}
    for name, pairs in sets.items():
        mode = pairs_input_mode(pairs, "xqlfw" if name != "lfw" else "lfw")
        reports[name] = evaluate(pairs, model, mode)
        qualities[name] = pair_qualities(pairs, mode, progress=True).min(axis=1)
    result["evaluation"] = {name: accuracy(report) for name, report in reports.items()}
    result["notes"] = list(sets["xqlfw-synth"].notes)

    calibration: dict[str, Any] = {}
    for name, report in reports.items():
        folds = calibration_report(
            report.distances,
            report.same,
            report.folds,
            model.spec.name,
            quality=qualities[name],
            quality_groups=args.groups,
        )
        calibration[f"{name} fold-wise"] = {
            **metrics(folds.results, report.same),
            "quality_aware_minus_plain": bootstrap(folds.results, report.same),
        }
    lfw, synthetic = reports["lfw"], reports["xqlfw-synth"]
    transfer = transfer_report(
        lfw.distances,
        lfw.same,
        synthetic.distances,
        synthetic.same,
        model.spec.name,
        "LFW",
        fit_quality=qualities["lfw"],
        quality=qualities["xqlfw-synth"],
        quality_groups=args.groups,
    )
    calibration["xqlfw-synth fitted on LFW"] = {
        "threshold": round(transfer.threshold, 5),
        **metrics(transfer.results, synthetic.same),
        "quality_aware_minus_plain": bootstrap(transfer.results, synthetic.same),
    }
    result["calibration"] = calibration

    if args.json:
        print(json.dumps(result, indent=2))
        return
    generation = result["generation"]
    print(
        f"generation: {generation['images']} images ({generation['actions']}) in {generation['seconds']} s; "
        f"second copy byte-identical: {generation['second_copy_byte_identical']} ({generation['second_copy_seconds']} s); "
        f"rerun verifies in {generation['rerun_seconds']} s, writes {generation['rerun_written']}"
    )
    for name, figures in result["evaluation"].items():
        print(
            f"{name:12s} {args.model}: accuracy {figures['accuracy']:.5f} +- {figures['accuracy_std']:.4f}, "
            f"AUC {figures['auc']:.5f}, TAR@FAR=1e-3 {figures['tar_at_far_1e-3']:.4f}"
        )
    for scope, table in calibration.items():
        print(scope)
        for method in ("cscore", "cscore-quality", "platt", "isotonic"):
            print(f"  {method:15s}" + " ".join(f"{k} {table[method][k]:.4f}" for k in METRICS))
        for name, change in table["quality_aware_minus_plain"].items():
            print(
                f"  quality-aware minus plain {name}: {change['difference']:+.4f} (95% interval {change['interval_95']})"
            )


if __name__ == "__main__":
    main()
