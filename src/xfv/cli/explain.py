"""``xfv explain``: X-Maps of a pair of photos, written as PNGs, a figure and ``maps.npz``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from xfv.api import XMaps
from xfv.cli.core import (
    add_calibration_option,
    add_face_option,
    add_methods_option,
    add_model_option,
    face_choices,
    int_list,
    model_name,
    print_json,
    print_warnings,
)
from xfv.faces import INPUT_MODES, FaceChoice, align_photo
from xfv.method.calibration import Calibrator
from xfv.method.occlusion import FILLS, SHAPES, OcclusionSettings
from xfv.method.xmaps import check_methods
from xfv.models import get_model
from xfv.pipeline.calibrate import load_model_calibration
from xfv.pipeline.explain import Explanation
from xfv.pipeline.verify import face_warnings, quality_for


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help="X-Maps of a pair: which face regions make it similar or not")
    parser.add_argument("image1", type=Path)
    parser.add_argument("image2", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs, figure.png and maps.npz")
    add_model_option(parser)
    add_methods_option(parser)
    occlusion = parser.add_argument_group("occlusion (sizes in pixels of a 112x112 face, scaled to the model's)")
    occlusion.add_argument("--patch-sizes", type=int_list, default=(7, 14, 28), help="default 7,14,28")
    occlusion.add_argument("--stride", type=int, default=5, help="default 5")
    occlusion.add_argument("--fill", choices=FILLS, default="black")
    occlusion.add_argument("--noise-seed", type=int, default=0, help="seed of the noise fill")
    occlusion.add_argument("--shape", choices=SHAPES, default="rect")
    occlusion.add_argument(
        "--edge-blur", type=float, default=0.0, help="Gaussian sigma of patch edges (default 0: sharp)"
    )
    occlusion.add_argument("--edge-blur-kernel", type=int, default=0, help="its kernel (default 0: from sigma)")
    parser.add_argument("--coverage-normalised", action="store_true", help="divide maps by mask coverage, not by N")
    parser.add_argument("--threshold", type=float, help="cosine-distance threshold (default: the model's)")
    add_calibration_option(parser)
    parser.add_argument("--input-mode", choices=INPUT_MODES, default="detect")
    add_face_option(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(func=run_explain)


def _explain(
    args: argparse.Namespace, calibrator: Calibrator | None, faces: list[np.ndarray], choices: list[FaceChoice]
) -> Explanation:
    """X-Maps of the aligned faces; a quality-aware C-Score scores at the photos' quality, measured
    as its calibration data was (the photos, their faces found as ``--input-mode`` says)."""
    settings = OcclusionSettings(
        patch_sizes=args.patch_sizes,
        stride=args.stride,
        fill=args.fill,
        shape=args.shape,
        edge_blur_sigma=args.edge_blur,
        edge_blur_kernel=args.edge_blur_kernel,
        noise_seed=args.noise_seed,
    )
    explainer = XMaps(model_name(args), settings, calibrator=calibrator, threshold=args.threshold, progress=True)
    quality = quality_for(explainer.calibrator, None, [args.image1, args.image2], args.input_mode, choices)
    return explainer.explain(
        faces[0], faces[1], args.methods, coverage_normalised=args.coverage_normalised, quality=quality
    )


def write_outputs(explanation: Explanation, out: Path) -> list[Path]:
    """One PNG per face per method, ``figure.png`` and ``maps.npz`` in ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for method in sorted(explanation.maps):
        for image in (1, 2):
            path = out / f"xmap_m{method}_img{image}.png"
            Image.fromarray(explanation.image(method, image)).save(path)
            written.append(path)
    explanation.figure().savefig(out / "figure.png", dpi=120)
    np.savez_compressed(out / "maps.npz", **explanation.arrays())  # type: ignore[arg-type]  # numpy's stub
    return [*written, out / "figure.png", out / "maps.npz"]


def run_explain(args: argparse.Namespace) -> int:
    args.methods = check_methods(args.methods)  # before aligning: a bad method or calibration costs nothing
    model = get_model(model_name(args))
    calibrator = load_model_calibration(args.calibration, model)
    paths = [args.image1, args.image2]
    choices = face_choices(args, 2)
    photos = [align_photo(path, model.spec, args.input_mode, face) for path, face in zip(paths, choices)]
    reports = [photo.report for photo in photos]
    warnings = face_warnings(paths, reports)
    print_warnings(warnings)
    explanation = _explain(args, calibrator, [photo.face for photo in photos], choices)
    written = write_outputs(explanation, args.out)
    if args.json:
        faces = [report.to_dict() if report else None for report in reports]
        outputs = [str(path) for path in written]
        print_json({**explanation.summary(), "faces": faces, "warnings": warnings, "outputs": outputs})
        return 0
    print(explanation.title())
    for path, report in zip(paths, reports):
        if report is not None:
            print(f"{path}: {report.describe()}")
    print(f"{explanation.forward_passes} forward passes; wrote {len(written)} files to {args.out}")
    return 0
