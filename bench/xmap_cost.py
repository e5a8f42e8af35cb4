"""What `xfv compute --xmaps --pairs all` costs for all LFW pairs, per model, on N nodes: an estimate
from costs measured here, on one core.

Measures, in one worker's setting (one core: ``XFV_THREADS=1``, as every Ray task runs):
- per model, the seconds one face's occlusion embeddings take (paper settings: 1,130 occlusions and
  the unoccluded face, incremental inference where the model has it, sessions warm), the seconds
  of one pair's maps once both faces' embeddings are cached, and the seconds to locate and align
  one LFW photo (face locations not cached);
- Ray's own cost per task: a local Ray cluster (``RayExecutor``) running trivial tasks.

Counts, from LFW's pairs.txt: the pairs, the distinct images, and the chunks of
``DEFAULT_XMAP_CHUNK_PAIRS`` pairs `xfv compute` makes. Occlusion embeddings and face locations
are cached per node, so a face whose chunks run on k different nodes is computed k times: with
chunks spread evenly at random, a face in c chunks costs N (1 - (1 - 1/N)^c) computations on N
nodes (at most c, at least 1).

The estimate for N nodes of ``--cores`` cores: (face computations x (face + alignment seconds) +
pairs x map seconds + chunks x Ray task seconds) / (N x cores), plus the longest chunk (the tail of
a greedy schedule). It assumes a node's core is as fast as a core here, and that throughput scales
with cores (each task has its own core, no memory-bandwidth limit, no shared-disk contention).

    python bench/xmap_cost.py [--models dlib,dlib-int8,faceres,mobileface] [--nodes 1,4,16,64]
                              [--cores 16] [--no-ray] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xfv.config import become_single_core_worker

become_single_core_worker()  # before any session exists: every measurement is one core's

from xfv.cache import ArrayCache  # noqa: E402
from xfv.datasets import read_protocol  # noqa: E402
from xfv.faces import align_photo  # noqa: E402
from xfv.models import get_model  # noqa: E402
from xfv.pipeline.compute import DEFAULT_XMAP_CHUNK_PAIRS  # noqa: E402
from xfv.pipeline.explain import OcclusionEngine, explain_pair  # noqa: E402

LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"
MODELS = ("dlib", "dlib-int8", "faceres", "mobileface")
#: Pairs whose photos are timed: a positive pair (its two photos) and a negative one (two more).
TIMED_PAIRS = (0, 3000)


def lfw_counts(root: Path) -> dict:
    """Pairs, distinct images, chunks, and how many chunks each image appears in."""
    pairs = read_protocol("lfw", root).pairs
    chunks = [pairs[i : i + DEFAULT_XMAP_CHUNK_PAIRS] for i in range(0, len(pairs), DEFAULT_XMAP_CHUNK_PAIRS)]
    per_image: Counter[str] = Counter()
    for chunk in chunks:
        per_image.update({str(path) for pair in chunk for path in (pair.image1, pair.image2)})
    return {
        "pairs": len(pairs),
        "face_slots": 2 * len(pairs),
        "distinct_images": len(per_image),
        "chunks": len(chunks),
        "chunk_pairs": DEFAULT_XMAP_CHUNK_PAIRS,
        "chunks_per_image": sorted(per_image.values()),
    }


def face_computations(chunks_per_image: Sequence[int], nodes: int) -> float:
    """Expected occlusion computations of all images when chunks land on ``nodes`` nodes at random."""
    c = np.asarray(chunks_per_image, dtype=np.float64)
    return float((nodes * (1 - (1 - 1 / nodes) ** c)).sum())


def measure_model(name: str, root: Path, folder: Path) -> dict:
    """One core's seconds per aligned photo, per face's occlusion embeddings, per pair's maps."""
    model = get_model(name)
    pairs = [read_protocol("lfw", root).pairs[i] for i in TIMED_PAIRS]
    paths = [path for pair in pairs for path in (pair.image1, pair.image2)]
    locations = ArrayCache(folder / f"{name}-locations.sqlite")
    warm = read_protocol("lfw", root).pairs[1].image1  # loads the detector and landmark models, untimed
    align_photo(warm, model.spec, "lfw-funneled", assess=False, cache=locations)
    started = time.perf_counter()
    faces = [align_photo(path, model.spec, "lfw-funneled", assess=False, cache=locations).face for path in paths]
    align = (time.perf_counter() - started) / len(paths)
    engine = OcclusionEngine(model, cache=ArrayCache(folder / f"{name}-occlusions.sqlite"))
    engine.warm_up()
    model.embed(faces[0][None])
    face_seconds = []
    for face in faces[:2]:
        started = time.perf_counter()
        engine.embeddings(face)
        face_seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    explain_pair(faces[0], faces[1], model, engine=engine)
    maps = time.perf_counter() - started
    return {
        "model": name,
        "input_size": model.spec.input_size,
        "forward_passes_per_face": len(engine.plan) + 1,
        "face_seconds": round(min(face_seconds), 3),
        "align_seconds": round(align, 3),
        "maps_seconds": round(maps, 3),
    }


def _nothing(task: int) -> int:
    return task


def measure_ray(tasks: int = 200) -> dict | None:
    """A local Ray cluster's start-up seconds and its seconds per trivial task on one worker."""
    try:
        from xfv.pipeline.executors import RayExecutor
    except ImportError:
        return None
    started = time.perf_counter()
    with RayExecutor(workers=1) as executor:
        start_up = time.perf_counter() - started
        list(executor.map_unordered(_nothing, list(range(10))))  # worker process started
        started = time.perf_counter()
        list(executor.map_unordered(_nothing, list(range(tasks))))
        per_task = (time.perf_counter() - started) / tasks
    return {"start_up_seconds": round(start_up, 2), "task_seconds": round(per_task, 5), "tasks": tasks}


def estimate(models: list[dict], counts: dict, ray: dict | None, nodes: Sequence[int], cores: int) -> list[dict]:
    """Wall time of every model's X-Maps of all pairs on each number of nodes, and of all models."""
    task = ray["task_seconds"] if ray else 0.0
    start_up = ray["start_up_seconds"] if ray else 0.0
    rows = []
    for n in nodes:
        computations = face_computations(counts["chunks_per_image"], n)
        row: dict = {"nodes": n, "cores": n * cores, "face_computations": round(computations)}
        total = 0.0
        for m in models:
            work = (
                computations * (m["face_seconds"] + m["align_seconds"])
                + counts["pairs"] * m["maps_seconds"]
                + counts["chunks"] * task
            )
            longest = counts["chunk_pairs"] * (2 * (m["face_seconds"] + m["align_seconds"]) + m["maps_seconds"])
            seconds = work / (n * cores) + longest + start_up
            row[m["model"]] = {"core_hours": round(work / 3600, 2), "wall_hours": round(seconds / 3600, 3)}
            total += seconds
        row["all_models_wall_hours"] = round(total / 3600, 3)
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--nodes", default="1,4,16,64")
    parser.add_argument("--cores", type=int, default=16, help="cores per node")
    parser.add_argument("--root", type=Path, default=LFW)
    parser.add_argument("--no-ray", action="store_true", help="leave out Ray's task overhead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    counts = lfw_counts(args.root)
    with tempfile.TemporaryDirectory() as folder:
        models = [measure_model(name, args.root, Path(folder)) for name in args.models.split(",")]
    ray = None if args.no_ray else measure_ray()
    nodes = [int(n) for n in args.nodes.split(",")]
    result = {
        "lfw": {k: v for k, v in counts.items() if k != "chunks_per_image"},
        "images_in_more_than_one_chunk": sum(c > 1 for c in counts["chunks_per_image"]),
        "per_core": models,
        "ray": ray,
        "cores_per_node": args.cores,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "estimate": estimate(models, counts, ray, nodes, args.cores),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    lfw = result["lfw"]
    print(f"LFW: {lfw['pairs']} pairs, {lfw['distinct_images']} distinct images, {lfw['chunks']} chunks")
    for m in models:
        print(
            f"  {m['model']}: {m['face_seconds']} s per face ({m['forward_passes_per_face']} passes), "
            f"{m['align_seconds']} s per photo aligned, {m['maps_seconds']} s per pair's maps (one core)"
        )
    if ray:
        print(f"  Ray: start-up {ray['start_up_seconds']} s, {ray['task_seconds'] * 1000:.2f} ms per task")
    names = [m["model"] for m in models]
    print("nodes  cores  faces   " + "  ".join(f"{n:>12}" for n in names) + "  all models (hours)")
    for row in result["estimate"]:
        cells = "  ".join(f"{row[n]['wall_hours']:>12.3f}" for n in names)
        print(
            f"{row['nodes']:>5}  {row['cores']:>5}  {row['face_computations']:>6}  {cells}  {row['all_models_wall_hours']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
