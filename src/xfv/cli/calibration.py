"""``xfv calibrate`` (fit and save a calibration for a model) and ``xfv calibration-report`` (how well
C-Score, Platt and isotonic confidences fit a benchmark, out of fold)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from xfv.cli.core import add_model_option, model_name, print_json
from xfv.datasets import PROTOCOL_INPUT_MODES, READERS, read_protocol
from xfv.faces import INPUT_MODES
from xfv.models import get_model
from xfv.pipeline.evaluate import pair_distances

METHODS = ("cscore", "platt", "isotonic")
METRICS = ("accuracy", "ece", "mce", "brier", "nll", "error_auroc", "aurc")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibration-report",
        help="calibration of C-Score, Platt and isotonic confidences on a benchmark (10-fold, out of fold)",
    )
    parser.add_argument("--protocol", choices=sorted(READERS), required=True)
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
    calibrate.add_argument("--protocol", choices=sorted(READERS), required=True)
    calibrate.add_argument("--root", type=Path, required=True, help="the validation dataset's folder")
    add_model_option(calibrate)
    calibrate.add_argument("--input-mode", choices=INPUT_MODES, help="default: the protocol's usual mode")
    calibrate.add_argument("--method", choices=METHODS, default="cscore")
    calibrate.add_argument("--bins", type=_bin_count, default=400, help="C-Score histogram bins (default 400)")
    calibrate.add_argument("--out", type=Path, required=True, help="calibration JSON (name it in a model spec's 'calibration')")
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
    from xfv.method.calibration import IsotonicCalibrator, PlattCalibrator
    from xfv.method.cscore import CScoreCalibrator

    pairs = read_protocol(args.protocol, args.root)
    model = get_model(model_name(args))
    mode = args.input_mode or PROTOCOL_INPUT_MODES[args.protocol]
    distances = pair_distances(pairs, model, mode, progress=True)
    factories = {"cscore": lambda: CScoreCalibrator(bins=args.bins), "platt": PlattCalibrator, "isotonic": IsotonicCalibrator}
    description = f"{args.protocol.upper()} ({len(pairs)} pairs, input mode {mode}), accuracy-maximising threshold"
    calibrator = factories[args.method]().fit(
        distances, pairs.same, model_name=model.spec.name, data_description=description
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    calibrator.save(args.out)
    print(f"{args.method} calibration of {model.spec.name} on {description}: threshold {calibrator.threshold_:.5f}, saved to {args.out}")
    return 0


def run_calibration_report(args: argparse.Namespace) -> int:
    from xfv.method.calibration_report import calibration_report  # matplotlib: only when the command runs

    pairs = read_protocol(args.protocol, args.root)
    model = get_model(model_name(args))
    mode = args.input_mode or PROTOCOL_INPUT_MODES[args.protocol]
    distances = pair_distances(pairs, model, mode, progress=True)
    report = calibration_report(distances, pairs.same, pairs.folds, args.out, model.spec.name, bins=args.bins)
    report = {"protocol": args.protocol, "input_mode": mode, **report}
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
