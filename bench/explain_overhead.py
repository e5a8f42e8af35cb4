"""How much of an X-Map explanation is not the model: occlusion, caching, maps, colours.

Times one uncached progressive explanation (all three methods, paper settings) of an LFW pair with
the default model in a warm process (model loaded, every session built: ``warm_up_seconds``, once
per process): ``first_map_seconds`` until the first maps (the 28 px level, 289 occlusions per
face) and ``full_seconds`` until the final ones (identical to ``explain_pair``'s), and the time
spent inside the model's forward passes; the rest is overhead. ``align_seconds``: locating and
aligning both photos beforehand (not cached). ``XFV_INCREMENTAL=0`` measures full forward passes
instead of incremental inference.

The machine's speed varies between runs (a shared host), so the fastest of ``--rounds``
explanations is reported, with the medians beside it.

    python bench/explain_overhead.py [--model dlib] [--methods 1,2,3] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xfv.cache import ArrayCache
from xfv.config import get_settings
from xfv.models import FaceModel, get_model
from xfv.pipeline.explain import OcclusionEngine, explain_pair_progressively

LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"
PAIR = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg")


class TimedModel(FaceModel):
    """Wraps a model and adds up the seconds spent in its forward passes."""

    def __init__(self, inner: FaceModel) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.batch_size = inner.batch_size
        self.changed_batch_size = inner.changed_batch_size
        self.seconds = 0.0

    def prepare_changed(self, boxes: np.ndarray) -> None:
        self.inner.prepare_changed(boxes)

    def embed_batch(self, faces: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed_batch(faces)
        finally:
            self.seconds += time.perf_counter() - started

    def embed_changed_batch(self, face: np.ndarray, faces: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed_changed_batch(face, faces, boxes)
        finally:
            self.seconds += time.perf_counter() - started


def _faces(model: FaceModel, locations: ArrayCache) -> tuple[np.ndarray, np.ndarray, str]:
    """An aligned LFW pair (faces located afresh: ``locations`` is empty), or two random faces where
    LFW is absent (the model's cost is the same)."""
    paths = [LFW / "images_deepfunneled" / name for name in PAIR]
    if all(path.is_file() for path in paths):
        from xfv.faces import align_photo

        faces = (align_photo(path, model.spec, "lfw-funneled", assess=False, cache=locations).face for path in paths)
        return (*faces, "LFW " + " / ".join(PAIR))
    rng = np.random.default_rng(0)
    size = model.spec.input_size
    return (*(rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(2)), "random faces")


def _explain_once(
    model: TimedModel, faces: tuple[np.ndarray, np.ndarray], methods: Sequence[int], folder: Path
) -> dict:
    """Seconds to the first and to the final maps of one explanation on an empty cache."""
    engine = OcclusionEngine(model, cache=ArrayCache(folder / "arrays.sqlite"))
    model.seconds = 0.0
    started = time.perf_counter()
    steps = explain_pair_progressively(*faces, model, methods=methods, engine=engine)
    first = next(steps)
    first_map, first_forward = time.perf_counter() - started, model.seconds
    *_, explanation = [first, *steps]
    total = time.perf_counter() - started
    return {
        "first_map_patch_sizes": list(first.settings.patch_sizes),
        "first_map_forward_passes": first.forward_passes,
        "first_map_seconds": round(first_map, 3),
        "first_map_forward_seconds": round(first_forward, 3),
        "full_seconds": round(total, 3),
        "forward_passes": explanation.forward_passes,
        "forward_seconds": round(model.seconds, 3),
        "total_seconds": round(total, 3),
        "overhead_seconds": round(total - model.seconds, 3),
        "overhead_fraction": round((total - model.seconds) / total, 4),
    }


def measure(model_name: str, methods: Sequence[int], rounds: int = 1) -> dict:
    """The fastest of ``rounds`` uncached explanations (the medians beside it): seconds to the first
    and the final maps, of their forward passes, and the overhead fraction."""
    model = TimedModel(get_model(model_name))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        face1, face2, source = _faces(model, ArrayCache(Path(folder) / "locations.sqlite"))
        align = time.perf_counter() - started
        started = time.perf_counter()
        model.embed(face1[None])  # warm-up: a process's set-up is not per-explanation cost
        OcclusionEngine(model).warm_up()
        warm_up = time.perf_counter() - started
        runs = []
        for index in range(rounds):
            (Path(folder) / str(index)).mkdir()
            runs.append(_explain_once(model, (face1, face2), methods, Path(folder) / str(index)))
    best = min(runs, key=lambda run: run["full_seconds"])
    return {
        "model": model_name,
        "faces": source,
        "methods": list(methods),
        "incremental": get_settings().incremental_occlusion,
        "rounds": rounds,
        **best,
        "first_map_seconds": min(run["first_map_seconds"] for run in runs),
        "first_map_seconds_median": float(np.median([run["first_map_seconds"] for run in runs])),
        "full_seconds": best["full_seconds"],
        "full_seconds_median": float(np.median([run["full_seconds"] for run in runs])),
        "warm_up_seconds": round(warm_up, 3),
        "align_seconds": round(align, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--methods", default="1,2,3")
    parser.add_argument("--rounds", type=int, default=5, help="explanations; the fastest is reported")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.model, tuple(int(m) for m in args.methods.split(",")), args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"first map ({result['first_map_patch_sizes']} px) after {result['first_map_seconds']} s, "
            f"final maps after {result['full_seconds']} s (load {result['load_average']})"
        )
        print(
            f"{result['model']} ({result['faces']}), methods {result['methods']}: "
            f"{result['forward_passes']} forward passes in {result['forward_seconds']} s of {result['total_seconds']} s; "
            f"overhead {result['overhead_seconds']} s = {result['overhead_fraction']:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
