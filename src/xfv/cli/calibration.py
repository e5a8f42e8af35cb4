"""``xfv calibrate`` (fit and save a calibration for a model) and ``xfv calibration-report`` (how well
C-Score, Platt and isotonic confidences fit a benchmark, out of fold)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from xfv.cli.core import add_model_option, add_protocol_option, model_name, print_json, protocol_input_mode
from xfv.datasets import read_protocol
from xfv.faces import INPUT_MODES
from xfv.method.calibration_report import CalibrationReport, calibration_report, calibrator_factories
from xfv.models import get_model
from xfv.pipeline.calibrate import save_calibrator
from xfv.pipeline.evaluate import pair_distances

#: The calibration methods, from the one list of them.
METHODS = tuple(calibrator_factories())
METRICS = ("accuracy", "ece", "mce", "brier", "nll", "error_auroc", "aurc")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibration-report",
        help="calibration of C-Score, Platt and isotonic confidences on a benchmark (10-fold, out of fold)",
    )
    add_protocol_option(parser)
    parser.add_argument("--root", type=Path, required=True, help="the dataset's folder")
    add_model_option(parser)
    parser.add_argument("--input-mode", choices=INPUT_MODES, help="default: the protocol's usual mode")
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures (PNG)")
    parser.add_argument("--bins", type=_bin_count, default=400, help="C-Score histogram bins over [0, 2] (default 400)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_calibration_report)

    calibrate = subparsers.add_parser(
        "calibrate", help="fit a confidence calibration (and threshold) on a validation benchmark and save it"
    )
    add_protocol_option(calibrate)
    calibrate.add_argument("--root", type=Path, required=True, help="the validation dataset's folder")
    add_model_option(calibrate)
    calibrate.add_argument("--input-mode", choices=INPUT_MODES, help="default: the protocol's usual mode")
    calibrate.add_argument("--method", choices=METHODS, default="cscore")
    calibrate.add_argument("--bins", type=_bin_count, default=400, help="C-Score histogram bins (default 400)")
    calibrate.add_argument(
        "--out", type=Path, required=True, help="calibration JSON (name it in a model spec's 'calibration')"
    )
    calibrate.set_defaults(func=run_calibrate)


def _bin_count(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"need an integer of at least 2, got {text}")
    return value


def _json_safe(value: Any) -> Any:
    """NaN (an undefined metric, e.g. error AUROC without errors) becomes null, which JSON allows."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def run_calibrate(args: argparse.Namespace) -> int:
    pairs = read_protocol(args.protocol, args.root)
    model = get_model(model_name(args))
    mode = protocol_input_mode(args)
    distances = pair_distances(pairs, model, mode, progress=True)
    description = f"{args.protocol.upper()} ({len(pairs)} pairs, input mode {mode}), accuracy-maximising threshold"
    calibrator = calibrator_factories(args.bins)[args.method]().fit(
        distances, pairs.same, model_name=model.spec.name, data_description=description
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
    out.mkdir(parents=True, exist_ok=True)
    for name, display in displays.items():
        display.figure_.savefig(out / f"{name}.png", dpi=120)
    return {name: str(out / f"{name}.png") for name in displays}


def run_calibration_report(args: argparse.Namespace) -> int:
    pairs = read_protocol(args.protocol, args.root)
    model = get_model(model_name(args))
    mode = protocol_input_mode(args)
    distances = pair_distances(pairs, model, mode, progress=True)
    result = calibration_report(distances, pairs.same, pairs.folds, model.spec.name, bins=args.bins)
    figures = save_calibration_figures(result, args.out)
    report = {"protocol": args.protocol, "input_mode": mode, **result.summary(), "figures": figures}
    if args.json:
        print_json(_json_safe(report))
        return 0
    print(f"{args.protocol} with {model.spec.name} ({mode}): {report['n_pairs']} pairs, {report['n_folds']} folds")
    print("confidence metrics, each fold scored by calibrators fitted on the other folds:")
    print(f"  {'':9s}" + "".join(f"{metric:>12s}" for metric in METRICS))
    for method in METHODS:
        print(f"  {method:9s}" + "".join(f"{report[method][metric]:12.5f}" for metric in METRICS))
    print("  figures: " + ", ".join(report["figures"].values()))
    return 0
