"""``xfv calibrate`` (fit and save a calibration for a model) and ``xfv calibration-report`` (how well
C-Score, quality-aware C-Score, Platt and isotonic confidences fit a benchmark: out of fold, and
fitted on LFW as a deployed model's are)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from xfv.cli.core import add_model_option, add_protocol_option, model_name, print_json, protocol_input_mode
from xfv.datasets import PairList, read_protocol
from xfv.datasets.readers import pairs_input_mode
from xfv.errors import XfvError
from xfv.faces import INPUT_MODES
from xfv.method.calibration import fit_calibrator
from xfv.method.calibration_report import (
    METHODS,
    CalibrationReport,
    TransferReport,
    calibration_report,
    calibrator_factories,
    transfer_report,
)
from xfv.models import FaceModel, get_model
from xfv.pipeline.calibrate import save_calibrator
from xfv.pipeline.evaluate import pair_distances
from xfv.pipeline.quality import pair_qualities

METRICS = ("accuracy", "ece", "mce", "brier", "nll", "error_auroc", "aurc")
#: ``--calibration``: fold-wise (each fold by calibrators fitted on the other folds), fitted on LFW, or both.
CALIBRATIONS = ("folds", "lfw", "both")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibration-report",
        help="calibration of C-Score, quality-aware C-Score, Platt and isotonic confidences on a benchmark "
        "(out of fold, and/or fitted on LFW)",
    )
    add_protocol_option(parser)
    parser.add_argument("--root", type=Path, required=True, help="the dataset's folder")
    add_model_option(parser)
    parser.add_argument("--input-mode", choices=INPUT_MODES, help="default: the one the dataset's images need")
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures (PNG)")
    parser.add_argument("--bins", type=_bin_count, default=400, help="C-Score histogram bins over [0, 2] (default 400)")
    _add_quality_groups_option(parser)
    parser.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default="folds",
        help="folds: each fold scored by calibrators fitted on the other folds (default); lfw: every pair scored "
        "by calibrators fitted on all of LFW at LFW's threshold, as a deployed model's shipped calibration; both",
    )
    parser.add_argument("--lfw-root", type=Path, help="the LFW folder to fit on (needed by --calibration lfw|both)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_calibration_report)

    calibrate = subparsers.add_parser(
        "calibrate", help="fit a confidence calibration (and threshold) on a validation benchmark and save it"
    )
    add_protocol_option(calibrate)
    calibrate.add_argument("--root", type=Path, required=True, help="the validation dataset's folder")
    add_model_option(calibrate)
    calibrate.add_argument("--input-mode", choices=INPUT_MODES, help="default: the one the dataset's images need")
    calibrate.add_argument("--method", choices=METHODS, default="cscore")
    calibrate.add_argument("--bins", type=_bin_count, default=400, help="C-Score histogram bins (default 400)")
    _add_quality_groups_option(calibrate)
    calibrate.add_argument(
        "--out", type=Path, required=True, help="calibration JSON (name it in a model spec's 'calibration')"
    )
    calibrate.set_defaults(func=run_calibrate)


def _bin_count(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"need an integer of at least 2, got {text}")
    return value


def _group_count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"need an integer of at least 1, got {text}")
    return value


def _add_quality_groups_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quality-groups",
        type=_group_count,
        default=3,
        help="quality-aware C-Score: groups of pair quality (the lower image quality), each with its own fit (default 3)",
    )


def _json_safe(value: Any) -> Any:
    """NaN (an undefined metric, e.g. error AUROC without errors) becomes null, which JSON allows."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _distances_and_quality(
    pairs: PairList, model: FaceModel, mode: str, with_quality: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Every pair's distance and its quality (the lower of its two images' quality scores)."""
    distances = pair_distances(pairs, model, mode, progress=True)
    quality = pair_qualities(pairs, mode, progress=True).min(axis=1) if with_quality else None
    return distances, quality


def run_calibrate(args: argparse.Namespace) -> int:
    pairs = read_protocol(args.protocol, args.root)
    model = get_model(model_name(args))
    mode = protocol_input_mode(args, pairs)
    with_quality = args.method == "cscore-quality"
    distances, quality = _distances_and_quality(pairs, model, mode, with_quality)
    description = f"{pairs.name.upper()} ({len(pairs)} pairs, input mode {mode}), accuracy-maximising threshold"
    factory = calibrator_factories(args.bins, args.quality_groups, with_quality)[args.method]
    calibrator = fit_calibrator(
        factory(), distances, pairs.same, quality=quality, model_name=model.spec.name, data_description=description
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_calibrator(calibrator, args.out)
    print(
        f"{args.method} calibration of {model.spec.name} on {description}: threshold {calibrator.threshold_:.5f}, saved to {args.out}"
    )
    return 0


def save_calibration_figures(report: CalibrationReport, out: Path) -> dict[str, str]:
    """Reliability, risk-coverage and C-Score fit figures of ``report`` as PNGs in ``out``; their paths by name."""
    from xfv.plots import CScoreFitDisplay, ReliabilityDisplay, RiskCoverageDisplay  # matplotlib: only here

    displays: dict[str, ReliabilityDisplay | RiskCoverageDisplay | CScoreFitDisplay] = {
        "reliability": ReliabilityDisplay.from_results(report.results, report.same, report.model_name),
        "risk_coverage": RiskCoverageDisplay.from_results(report.results, report.same, report.model_name),
        "cscore_fit": CScoreFitDisplay.from_report(report),
    }
    return _save(displays, out)


def save_transfer_figures(report: TransferReport, out: Path) -> dict[str, str]:
    """Reliability and risk-coverage figures of calibrators fitted elsewhere (``*_lfw.png``)."""
    from xfv.plots import ReliabilityDisplay, RiskCoverageDisplay

    scope = f"fitted on {report.fitted_on}"
    displays: dict[str, ReliabilityDisplay | RiskCoverageDisplay] = {
        "reliability_lfw": ReliabilityDisplay.from_results(report.results, report.same, report.model_name, scope=scope),
        "risk_coverage_lfw": RiskCoverageDisplay.from_results(
            report.results, report.same, report.model_name, scope=scope
        ),
    }
    return _save(displays, out)


def _save(displays: dict[str, Any], out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    for name, display in displays.items():
        display.figure_.savefig(out / f"{name}.png", dpi=120)
    return {name: str(out / f"{name}.png") for name in displays}


def _lfw_transfer(
    args: argparse.Namespace, model: FaceModel, distances: np.ndarray, same: np.ndarray, quality: np.ndarray | None
) -> TransferReport:
    """Every method fitted on all of LFW (``--lfw-root``) scoring this dataset's pairs."""
    if args.lfw_root is None:
        raise XfvError(f"--calibration {args.calibration} needs --lfw-root: the LFW folder to fit the calibrations on")
    lfw = read_protocol("lfw", args.lfw_root)
    lfw_distances, lfw_quality = _distances_and_quality(lfw, model, pairs_input_mode(lfw, "lfw"))
    return transfer_report(
        lfw_distances,
        lfw.same,
        distances,
        same,
        model.spec.name,
        "LFW",
        bins=args.bins,
        fit_quality=lfw_quality,
        quality=quality,
        quality_groups=args.quality_groups,
    )


def run_calibration_report(args: argparse.Namespace) -> int:
    pairs = read_protocol(args.protocol, args.root)
    model = get_model(model_name(args))
    mode = protocol_input_mode(args, pairs)
    distances, quality = _distances_and_quality(pairs, model, mode)
    notes = list(pairs.notes)
    report: dict[str, Any] = {
        "protocol": args.protocol,
        "dataset": pairs.name,
        "input_mode": mode,
        "model": model.spec.name,
        "n_pairs": len(distances),
        "calibration": args.calibration,
        "quality": "lower image quality of the pair (xfv.faces.quality), in the dataset's input mode",
        "figures": {},
    }
    if args.calibration in ("folds", "both"):
        folds = calibration_report(
            distances,
            pairs.same,
            pairs.folds,
            model.spec.name,
            bins=args.bins,
            quality=quality,
            quality_groups=args.quality_groups,
        )
        report.update({key: value for key, value in folds.summary().items() if key not in report})
        report["figures"].update(save_calibration_figures(folds, args.out))
    if args.calibration in ("lfw", "both"):
        transfer = _lfw_transfer(args, model, distances, pairs.same, quality)
        if pairs.name == "lfw" and Path(args.root).resolve() == Path(args.lfw_root).resolve():
            notes.append("calibrations fitted on LFW score LFW itself here: in sample, not a transfer")
        report["lfw_fitted"] = transfer.summary()
        report["figures"].update(save_transfer_figures(transfer, args.out))
    if notes:
        report["notes"] = notes
    if args.json:
        print_json(_json_safe(report))
        return 0
    _print_report(report)
    return 0


def _print_table(title: str, metrics: dict[str, Any]) -> None:
    print(title)
    print(f"  {'':15s}" + "".join(f"{metric:>12s}" for metric in METRICS))
    for method in METHODS:
        if method in metrics:
            print(f"  {method:15s}" + "".join(_cell(metrics[method][metric]) for metric in METRICS))


def _cell(value: float) -> str:
    return f"{value:12.5f}" if not math.isnan(value) else f"{'-':>12s}"


def _print_report(report: dict[str, Any]) -> None:
    print(f"{report['dataset']} with {report['model']} ({report['input_mode']}): {report['n_pairs']} pairs")
    for note in report.get("notes", []):
        print(f"  note: {note}")
    if "cscore" in report:
        _print_table("confidence metrics, each fold scored by calibrators fitted on the other folds:", report)
    lfw = report.get("lfw_fitted")
    if lfw:
        _print_table(
            f"confidence metrics, every pair scored by calibrators fitted on {lfw['fitted_on']} "
            f"({lfw['n_fit_pairs']} pairs, threshold {lfw['threshold']:.5f}):",
            lfw,
        )
    if lfw and "cscore" in report:
        print("side by side (fold-wise | fitted on LFW):")
        print(f"  {'':15s}{'accuracy':>21s}{'ECE':>21s}{'error AUROC':>21s}")
        for method in (m for m in METHODS if m in lfw and m in report):
            cells = [f"{report[method][k]:9.4f} | {lfw[method][k]:<9.4f}" for k in ("accuracy", "ece", "error_auroc")]
            print(f"  {method:15s}" + "".join(f"{cell:>21s}" for cell in cells))
    print("  figures: " + ", ".join(report["figures"].values()))
