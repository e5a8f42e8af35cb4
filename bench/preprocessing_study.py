"""LFW 10-fold accuracy of an installed npm model under several ways of preparing its faces.

Usage: ``python bench/preprocessing_study.py --model faceres|mobileface [--variants A,B] [--root DIR] [--json]``

Every variant embeds all 7,701 images of the 6,000 LFW pairs (``lfw-funneled`` mode) with the
same converted network; only the crop (alignment template and its looseness, dlib's chip, or an
unrotated detector box with a margin), the colour order and the normalisation change. Face
locations (detection and landmarks) come from xfv's cache, keyed by image content, so only the
first run detects faces. Results per variant are kept in the array cache too: a rerun only
computes new variants.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import dlib
import numpy as np
from tqdm import tqdm

from xfv.cache import default_cache
from xfv.datasets import read_protocol
from xfv.faces import load_image
from xfv.faces.align import (
    ARCFACE_TEMPLATE,
    FaceLocation,
    arcface_points,
    locate_photo,
    warp_to_template,
    zoomed_template,
)
from xfv.method.distances import cosine_distance
from xfv.models.npm_models import CATALOGUE, load
from xfv.models.onnx_model import OnnxModel
from xfv.pipeline.evaluate import evaluate_distances

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"
MODE = "lfw-funneled"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

Crop = Callable[[np.ndarray, FaceLocation, int], np.ndarray]


def template_crop(zoom: float) -> Crop:
    """The ArcFace template, zoomed out about the face centre by ``zoom`` < 1 (a looser crop)."""
    template = zoomed_template(ARCFACE_TEMPLATE, zoom)
    return lambda image, location, size: warp_to_template(image, arcface_points(location.points68), template, size)


def dlib_chip(padding: float) -> Crop:
    """dlib's ``get_face_chip`` (5 points, rotated upright) with ``padding``."""

    def crop(image: np.ndarray, location: FaceLocation, size: int) -> np.ndarray:
        parts = dlib.points([dlib.point(int(x), int(y)) for x, y in location.points5])
        shape = dlib.full_object_detection(location.report.box.to_dlib(), parts)
        return np.asarray(dlib.get_face_chip(image, shape, size=size, padding=padding))

    return crop


def box_crop(margin: float) -> Crop:
    """The detector's box grown by ``margin`` of its side on every side, unrotated (as HSE's code
    and VGGFace2's loose crops do), squared, resized; outside the photo replicates its edge."""

    def crop(image: np.ndarray, location: FaceLocation, size: int) -> np.ndarray:
        box = location.report.box
        side = max(box.right - box.left, box.bottom - box.top) * (1 + 2 * margin)
        cx, cy = box.centre
        scale = size / side
        matrix = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]])
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)

    return crop


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    crop: Crop
    colour: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def variants(model: str) -> list[Variant]:
    """The variants studied per model; the first of each list is the catalogue's starting point."""
    if model == "faceres":
        caffe = ("BGR", CAFFE_BGR_MEAN, (1.0, 1.0, 1.0))
        return [
            Variant("arcface", "ArcFace template, BGR, Caffe means (the issue's recipe)", template_crop(1.0), *caffe),
            Variant(
                "arcface-rgb",
                "ArcFace template, RGB, Caffe means",
                template_crop(1.0),
                "RGB",
                CAFFE_BGR_MEAN[::-1],
                (1.0, 1.0, 1.0),
            ),
            Variant(
                "arcface-127",
                "ArcFace template, BGR, (x - 127.5) / 127.5",
                template_crop(1.0),
                "BGR",
                (127.5,) * 3,
                (127.5,) * 3,
            ),
            Variant("arcface-0.95", "ArcFace template zoomed out to 0.95, BGR, Caffe", template_crop(0.95), *caffe),
            Variant("arcface-0.9", "ArcFace template zoomed out to 0.9, BGR, Caffe", template_crop(0.9), *caffe),
            Variant("arcface-0.85", "ArcFace template zoomed out to 0.85, BGR, Caffe", template_crop(0.85), *caffe),
            Variant("arcface-0.8", "ArcFace template zoomed out to 0.8, BGR, Caffe", template_crop(0.8), *caffe),
            Variant("arcface-0.7", "ArcFace template zoomed out to 0.7, BGR, Caffe", template_crop(0.7), *caffe),
            Variant("dlib-0.25", "dlib chip, padding 0.25, BGR, Caffe", dlib_chip(0.25), *caffe),
            Variant("dlib-0.4", "dlib chip, padding 0.4, BGR, Caffe", dlib_chip(0.4), *caffe),
            Variant("dlib-0.5", "dlib chip, padding 0.5, BGR, Caffe", dlib_chip(0.5), *caffe),
            Variant("dlib-0.6", "dlib chip, padding 0.6, BGR, Caffe", dlib_chip(0.6), *caffe),
            Variant("box-0.1", "detector box + 10% a side, unrotated, BGR, Caffe", box_crop(0.1), *caffe),
            Variant("box-0.3", "detector box + 30% a side, unrotated, BGR, Caffe", box_crop(0.3), *caffe),
        ]
    none = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return [
        Variant("arcface", "ArcFace template, RGB", template_crop(1.0), "RGB", *none),
        Variant("arcface-bgr", "ArcFace template, BGR", template_crop(1.0), "BGR", *none),
        Variant("arcface-0.9", "ArcFace template zoomed out to 0.9, RGB", template_crop(0.9), "RGB", *none),
        Variant("arcface-0.95", "ArcFace template zoomed out to 0.95, RGB", template_crop(0.95), "RGB", *none),
        Variant("arcface-1.05", "ArcFace template zoomed in to 1.05, RGB", template_crop(1.05), "RGB", *none),
        Variant("arcface-1.1", "ArcFace template zoomed in to 1.1, RGB", template_crop(1.1), "RGB", *none),
        Variant("dlib-0.25", "dlib chip, padding 0.25, RGB", dlib_chip(0.25), "RGB", *none),
    ]


def _locate(path: Path) -> FaceLocation:
    return locate_photo(path, MODE)[1]


def locations(paths: list[Path]) -> dict[Path, FaceLocation]:
    """Face locations of all photos (cached by content; the first run detects in 2 processes)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        found = list(tqdm(pool.map(_locate, paths, chunksize=16), total=len(paths), desc="face locations", unit="img"))
    return dict(zip(paths, found))


def embed_variant(
    network: OnnxModel, variant: Variant, paths: list[Path], where: dict[Path, FaceLocation]
) -> np.ndarray:
    model = OnnxModel(
        replace(network.onnx_spec, colour=variant.colour, mean=variant.mean, std=variant.std),
        session=network._session,  # one converted network for every variant
        spec=network.spec,
    )
    size = network.spec.input_size
    out = np.empty((len(paths), network.spec.embedding_size), np.float32)
    batch = 64
    for start in tqdm(range(0, len(paths), batch), desc=variant.name, unit="batch", leave=False):
        chunk = paths[start : start + batch]
        faces = np.stack([variant.crop(load_image(p), where[p], size) for p in chunk])
        out[start : start + len(chunk)] = model.embed(faces)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(CATALOGUE), required=True)
    parser.add_argument("--variants", help="comma-separated variant names (default: all)")
    parser.add_argument("--root", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pairs = read_protocol("lfw", args.root)
    paths = pairs.unique_images()
    index = {path: i for i, path in enumerate(paths)}
    first = np.array([index[p.image1] for p in pairs.pairs])
    second = np.array([index[p.image2] for p in pairs.pairs])
    network = load(args.model)
    chosen = variants(args.model)
    if args.variants:
        chosen = [v for v in chosen if v.name in args.variants.split(",")]
    where = locations(paths)
    cache = default_cache()
    results = []
    for variant in chosen:
        key = f"study:{network.onnx_spec.path.name}:{variant.name}:{variant.description}:{len(paths)}"
        start = time.perf_counter()
        embeddings = cache.get(key)
        if embeddings is None:
            embeddings = embed_variant(network, variant, paths, where)
            cache.put(key, embeddings)
        distances = cosine_distance(embeddings[first], embeddings[second])
        _, accuracies = evaluate_distances(distances, pairs.same, pairs.folds)
        result = {
            "variant": variant.name,
            "description": variant.description,
            "n_pairs": len(pairs),
            "accuracy_mean": float(accuracies.mean()),
            "accuracy_std": float(accuracies.std()),
            "seconds": round(time.perf_counter() - start, 1),
        }
        results.append(result)
        if not args.json:
            print(
                f"{variant.name:12s} {result['accuracy_mean']:.4f} +- {result['accuracy_std']:.4f}  {variant.description}",
                flush=True,
            )
    if args.json:
        print(json.dumps({"model": args.model, "input_mode": MODE, "results": results}, indent=2))


if __name__ == "__main__":
    main()
