"""``xfv explain``: X-Maps of a pair of photos, written as PNGs, a figure and ``maps.npz``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from xfv.cli.core import add_face_option, add_model_option, face_choices, model_name, print_json, print_warnings
from xfv.faces import INPUT_MODES, AlignedFace, align_photo
from xfv.method.calibration import Calibrator
from xfv.method.occlusion import FILLS, SHAPES, OcclusionSettings
from xfv.models import FaceModel, get_model
from xfv.pipeline.explain import Explanation, OcclusionEngine, explain_pair
from xfv.pipeline.verify import face_warnings, model_calibrator


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help="X-Maps of a pair: which face regions make it similar or not")
    parser.add_argument("image1", type=Path)
    parser.add_argument("image2", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs, figure.png and maps.npz")
    add_model_option(parser)
    parser.add_argument("--methods", type=_int_list, default=(1, 2, 3), help="X-Map methods (default 1,2,3)")
    occlusion = parser.add_argument_group("occlusion (sizes in pixels of a 112x112 face, scaled to the model's)")
    occlusion.add_argument("--patch-sizes", type=_int_list, default=(7, 14, 28), help="default 7,14,28")
    occlusion.add_argument("--stride", type=int, default=5, help="default 5")
    occlusion.add_argument("--fill", choices=FILLS, default="black")
    occlusion.add_argument("--noise-seed", type=int, default=0, help="seed of the noise fill")
    occlusion.add_argument("--shape", choices=SHAPES, default="rect")
    occlusion.add_argument("--edge-blur", type=float, default=0.0, help="Gaussian sigma of patch edges (default 0: sharp)")
    occlusion.add_argument("--edge-blur-kernel", type=int, default=0, help="its kernel (default 0: from sigma)")
    parser.add_argument("--coverage-normalised", action="store_true", help="divide maps by mask coverage, not by N")
    parser.add_argument("--threshold", type=float, help="cosine-distance threshold (default: the model's)")
    parser.add_argument("--calibration", type=Path, help="saved calibrator (JSON) for the C-Score (default: the model's)")
    parser.add_argument("--input-mode", choices=INPUT_MODES, default="detect")
    add_face_option(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(func=run_explain)


def _calibrator(path: Path | None, model: FaceModel) -> Calibrator | None:
    """The calibrator saved at ``path``, else the model's own, else None (no C-Score)."""
    return Calibrator.load(path) if path is not None else model_calibrator(model)


def _explain(
    args: argparse.Namespace, model: FaceModel, calibrator: Calibrator | None, photos: list[AlignedFace]
) -> Explanation:
    settings = OcclusionSettings(
        patch_sizes=args.patch_sizes,
        stride=args.stride,
        fill=args.fill,
        shape=args.shape,
        edge_blur_sigma=args.edge_blur,
        edge_blur_kernel=args.edge_blur_kernel,
        noise_seed=args.noise_seed,
    )
    faces = [photo.face for photo in photos]
    with tqdm(desc=f"X-Maps ({model.spec.name})", unit="pass") as bar:
        engine = OcclusionEngine(model, settings, progress=bar.update)
        unique = {face.tobytes(): face for face in faces}.values()
        bar.total = sum(0 if engine.is_cached(face) else len(engine.plan) + 1 for face in unique)
        return explain_pair(
            faces[0], faces[1], model, args.methods, threshold=args.threshold, calibrator=calibrator,
            coverage_normalised=args.coverage_normalised, engine=engine,
        )


def _title(explanation: Explanation) -> str:
    parts = [f"{explanation.model_name}: distance {explanation.distance:.4f}"]
    if explanation.threshold is not None:
        parts.append(f"threshold {explanation.threshold:.4f} -> {explanation.decision}")
    if explanation.confidence is not None:
        parts.append(f"C-Score {100 * explanation.confidence:.1f}%")
    return ", ".join(parts)


def save_figure(explanation: Explanation, path: Path) -> None:
    """Both faces and their X-Maps side by side, titled with distance, threshold, decision and C-Score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    methods = sorted(explanation.maps)
    columns = [("face", explanation.aligned1, explanation.aligned2)]
    columns += [(f"X-Map method {m}", explanation.images1[m], explanation.images2[m]) for m in methods]
    figure, axes = plt.subplots(2, len(columns), figsize=(2.4 * len(columns) + 1, 5.2), squeeze=False)
    for column, (name, image1, image2) in enumerate(columns):
        for row, image in enumerate((image1, image2)):
            axes[row, column].imshow(image)
            axes[row, column].set_axis_off()
        axes[0, column].set_title(name, fontsize=9)
    colourbar = figure.colorbar(
        ScalarMappable(Normalize(-1, 1), "PiYG"), ax=axes, fraction=0.03, ticks=[-1, 0, 1], label="dissimilar - similar"
    )
    colourbar.ax.tick_params(labelsize=8)
    figure.suptitle(_title(explanation), fontsize=10)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_outputs(explanation: Explanation, out: Path) -> list[Path]:
    """One PNG per face per method, ``figure.png`` and ``maps.npz`` in ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for method in sorted(explanation.maps):
        for image, xmap in ((1, explanation.images1[method]), (2, explanation.images2[method])):
            path = out / f"xmap_m{method}_img{image}.png"
            Image.fromarray(xmap).save(path)
            written.append(path)
    save_figure(explanation, out / "figure.png")
    np.savez_compressed(out / "maps.npz", **explanation.arrays())
    return [*written, out / "figure.png", out / "maps.npz"]


def run_explain(args: argparse.Namespace) -> int:
    model = get_model(model_name(args))
    paths = [args.image1, args.image2]
    photos = [align_photo(path, model.spec, args.input_mode, face) for path, face in zip(paths, face_choices(args, 2))]
    reports = [photo.report for photo in photos]
    warnings = face_warnings(paths, reports)
    print_warnings(warnings)
    explanation = _explain(args, model, _calibrator(args.calibration, model), photos)
    written = write_outputs(explanation, args.out)
    if args.json:
        faces = [report.to_dict() if report else None for report in reports]
        outputs = [str(path) for path in written]
        print_json({**explanation.summary(), "faces": faces, "warnings": warnings, "outputs": outputs})
        return 0
    print(_title(explanation))
    for path, report in zip(paths, reports):
        if report is not None:
            print(f"{path}: {report.describe()}")
    print(f"{explanation.forward_passes} forward passes; wrote {len(written)} files to {args.out}")
    return 0
