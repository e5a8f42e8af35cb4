"""Full against incremental occlusion inference: one face, paper settings, side by side in one run.

Embeds all N = 1130 occlusions of one aligned LFW face with dlib's ResNet (patch sizes 7/14/28, stride 5) twice,
with full forward passes and with incremental inference (only the region each patch reaches is
recomputed in the early layers), in alternating rounds so both see the same machine load. Prints
the largest embedding difference (must be <= 1e-4), the seconds and the speed-up, per patch size;
the FLOPs both do; a study of where incremental inference pays: the FLOPs saved per patch
size for each switch point (the share of a layer above which the rest runs in full); and a study
of Krypton's approximation (each changed region capped at a share of its layer, changes beyond it
dropped): how fast it is and how far its embeddings are from full passes'.

    python bench/incremental_occlusion.py [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xfv.method.occlusion import OcclusionPlan, OcclusionSettings
from xfv.models import get_model
from xfv.models.incremental import IncrementalRunner, Region, Unit
from xfv.pipeline.explain import OCCLUSION_CHUNK, OcclusionEngine

LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"
FACE = "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
#: Caps on a changed region's side, as a share of its layer's, for the approximation study.
CAPS = (0.9, 0.8, 0.6, 0.5)


class CappedRunner(IncrementalRunner):
    """Krypton's projective-field thresholding (approximate): a unit's changed region is capped at
    ``cap`` of its output's side, centred on the exact region; changes outside it are dropped.
    Shares the exact runner's graph analysis and sessions; never switches to full passes."""

    def __init__(self, exact: IncrementalRunner, cap: float) -> None:
        self.__dict__.update(exact.__dict__)
        self.cap = cap
        self.switch_fraction = 1.0

    def _output_region(self, unit: Unit, region: Region, extras: list[Region | None]) -> Region:
        origins, size = super()._output_region(unit, region, extras)
        _, rows, cols = self.shapes[unit.output]
        capped_origins, capped_size = [], []
        for axis, extent in ((0, rows), (1, cols)):
            cap = max(1, int(np.ceil(self.cap * extent)))
            if size[axis] <= cap:
                capped_origins.append(origins[:, axis])
                capped_size.append(size[axis])
            else:
                capped_origins.append(np.clip(origins[:, axis] + (size[axis] - cap) // 2, 0, extent - cap))
                capped_size.append(cap)
        return np.stack(capped_origins, 1), (capped_size[0], capped_size[1])


def _face(model) -> tuple[np.ndarray, str]:
    path = LFW / "images_deepfunneled" / FACE
    if path.is_file():
        from xfv.faces import align_path

        return align_path(path, model.spec, "lfw-funneled"), f"LFW {FACE}"
    size = model.spec.input_size
    return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8), "a random face"


def _embed_all(
    model, plan: OcclusionPlan, face: np.ndarray, segment: range, incremental: bool
) -> tuple[np.ndarray, float]:
    """Embeddings of one patch size's occlusions, and the seconds it took (occluding included)."""
    started = time.perf_counter()
    out = []
    for start in range(segment.start, segment.stop, OCCLUSION_CHUNK):
        stop = min(start + OCCLUSION_CHUNK, segment.stop)
        occluded = plan.occluded(face, start, stop)
        if incremental:
            out.append(model.embed_changed(face, occluded, plan.boxes(start, stop)))
        else:
            out.append(model.embed(occluded))
    return np.concatenate(out), time.perf_counter() - started


def measure(rounds: int) -> dict:
    model = get_model("dlib")
    runner = model.incremental_runner()
    face, source = _face(model)
    plan = OcclusionPlan(OcclusionSettings(), model.spec.input_size)
    model.embed(face[None])
    OcclusionEngine(model).warm_up()  # every session either path uses is built before timing
    model.embed_changed(face, face[None], np.array([[0, 1, 0, 1]]))  # the face's clean activations
    per_pass = model_flops()
    per_size = {}
    full_embeddings = {}
    for patch_size, segment in plan.segments.items():
        seconds = {"full": [], "incremental": []}
        for _ in range(rounds):
            full, t_full = _embed_all(model, plan, face, segment, incremental=False)
            fast, t_fast = _embed_all(model, plan, face, segment, incremental=True)
            seconds["full"].append(t_full)
            seconds["incremental"].append(t_fast)
        full_embeddings[patch_size] = full
        boxes = plan.boxes(segment.start, segment.stop)
        flops = _flops(runner, _batches(model, boxes), per_pass)
        per_size[patch_size] = {
            "occlusions": len(segment),
            "max_abs_difference": float(np.abs(full - fast).max()),
            "full_seconds": round(min(seconds["full"]), 3),
            "incremental_seconds": round(min(seconds["incremental"]), 3),
            "speedup": round(min(seconds["full"]) / min(seconds["incremental"]), 3),
            **flops,
            "bound_gflops": _flops(runner, _batches(model, boxes, exact=True), per_pass, len(runner.units))[
                "incremental_gflops"
            ],
            "study": {str(f): _study(runner, _batches(model, boxes), f, per_pass) for f in FRACTIONS},
            "per_unit": _per_unit(runner, _batches(model, boxes)),
        }
    total_full = sum(v["full_seconds"] for v in per_size.values())
    total_fast = sum(v["incremental_seconds"] for v in per_size.values())
    flops_full = sum(v["full_gflops"] for v in per_size.values())
    flops_fast = sum(v["incremental_gflops"] for v in per_size.values())
    flops_bound = sum(v["bound_gflops"] for v in per_size.values())
    return {
        "model": "dlib",
        "face": source,
        "occlusions": len(plan),
        "rounds": rounds,
        "switch_fraction": runner.switch_fraction,
        "batch_size": model.changed_batch_size,
        "worker_threads": runner.workers,
        "max_abs_difference": max(v["max_abs_difference"] for v in per_size.values()),
        "full_seconds": round(total_full, 3),
        "incremental_seconds": round(total_fast, 3),
        "speedup": round(total_full / total_fast, 3),
        "full_gflops": round(flops_full, 2),
        "incremental_gflops": round(flops_fast, 2),
        "flops_ratio": round(flops_full / flops_fast, 3),
        "bound_flops_ratio": round(flops_full / flops_bound, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "per_patch_size": per_size,
        "approximation_study": _approximation_study(model, runner, plan, face, full_embeddings, total_full),
    }


def model_flops() -> float:
    """FLOPs of one full pass of dlib's ResNet, as :meth:`DlibNet.flops` counts them."""
    from xfv.models.dlib_dat import read_dlib_net
    from xfv.models.weights import resnet_descriptor_path

    return float(read_dlib_net(resnet_descriptor_path()).flops())


def _batches(model, boxes: np.ndarray, exact: bool = False) -> list[np.ndarray]:
    """The boxes of each part of each batch, as the runner's worker threads take them (``exact``:
    each occlusion alone, with its own region)."""
    if exact:
        return [boxes[i : i + 1] for i in range(len(boxes))]
    runner = model.incremental_runner()
    batches = [boxes[rows] for rows in model.changed_batches(len(boxes))]
    return [batch[part] for batch in batches for part in runner.parts(len(batch))]


def _flops(runner, batches: list[np.ndarray], per_pass: float, switch: int | None = None) -> dict:
    """GFLOPs of these batches of occlusions in full and incrementally, regions sized per batch, up
    to the runner's switch point (or ``switch``: with each occlusion alone and every unit
    incremental, the bound of exact incremental inference)."""
    saved = 0.0
    for batch in batches:
        incremental, full = runner.flops(batch, switch)
        saved += (full - incremental) * len(batch)
    total = per_pass * sum(len(batch) for batch in batches)
    return {"full_gflops": round(total / 1e9, 3), "incremental_gflops": round((total - saved) / 1e9, 3)}


def _per_unit(runner, batches: list[np.ndarray]) -> list[dict]:
    """Where it pays: per unit, its output, the mean share of it recomputed (1 where it runs in
    full, from the switch point on), and its MFLOPs per occlusion in full and as run."""
    shares = np.zeros(len(runner.units))
    for batch in batches:
        regions = runner.regions(batch)
        switch = runner.switch_point(regions)
        for index, (unit, (_, size)) in enumerate(zip(runner.units, regions)):
            _, rows, cols = runner.shapes[unit.output]
            shares[index] += (size[0] * size[1] / (rows * cols) if index < switch else 1.0) * len(batch)
    shares /= sum(len(batch) for batch in batches)
    out = []
    for unit, share in zip(runner.units, shares):
        channels, rows, cols = runner.shapes[unit.output]
        full = unit.flops_per_position * rows * cols / 1e6
        out.append(
            {
                "op": unit.nodes[0].op_type,
                "output": [channels, rows, cols],
                "recomputed_share": round(float(share), 3),
                "full_mflops": round(full, 2),
                "incremental_mflops": round(full * float(share), 2),
            }
        )
    return out


def _study(runner, batches: list[np.ndarray], fraction: float, per_pass: float) -> dict:
    """With regions up to ``fraction`` of a layer done incrementally: the switch unit and the FLOPs ratio."""
    old = runner.switch_fraction
    runner.switch_fraction = fraction
    try:
        switches, ratios = [], []
        for batch in batches:
            regions = runner.regions(batch)
            switch = runner.switch_point(regions)
            incremental, full = runner.flops(batch, switch)
            switches.append(switch)
            ratios.append(per_pass / (per_pass - full + incremental))
        return {"median_switch_unit": int(np.median(switches)), "flops_ratio": round(float(np.mean(ratios)), 3)}
    finally:
        runner.switch_fraction = old


def _approximation_study(
    model, runner: IncrementalRunner, plan: OcclusionPlan, face: np.ndarray, full: dict, full_seconds: float
) -> dict:
    """Per cap of :data:`CAPS`: the seconds all occlusions take with :class:`CappedRunner` (one
    round, same batches), the speed-up over full passes, and how far the embeddings are from theirs."""
    study = {}
    for cap in CAPS:
        capped = CappedRunner(runner, cap)
        started = time.perf_counter()
        differences = []
        for patch_size, segment in plan.segments.items():
            boxes = plan.boxes(segment.start, segment.stop)
            occluded = plan.occluded(face, segment.start, segment.stop)
            rows = [capped.embed(face, occluded[b], boxes[b]) for b in model.changed_batches(len(boxes))]
            differences.append(np.abs(np.concatenate(rows) - full[patch_size]).max(axis=1))
        seconds = time.perf_counter() - started
        worst = np.concatenate(differences)
        study[str(cap)] = {
            "seconds": round(seconds, 3),
            "speedup": round(full_seconds / seconds, 3),
            "max_abs_difference": float(worst.max()),
            "median_abs_difference": float(np.median(worst)),
            "share_within_1e-4": round(float(np.mean(worst <= 1e-4)), 4),
        }
    return study


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the fastest of each is reported")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']}, {result['face']}, {result['occlusions']} occlusions, load {result['load_average']}")
    for size, row in result["per_patch_size"].items():
        print(
            f"  {size:>2} px: full {row['full_seconds']} s, incremental {row['incremental_seconds']} s, "
            f"speed-up {row['speedup']}x, FLOPs {row['full_gflops']} -> {row['incremental_gflops']} G, "
            f"max |diff| {row['max_abs_difference']:.2e}"
        )
    print(
        f"  all: full {result['full_seconds']} s, incremental {result['incremental_seconds']} s, "
        f"speed-up {result['speedup']}x (FLOPs ratio {result['flops_ratio']}, exact bound {result['bound_flops_ratio']}), "
        f"max |diff| {result['max_abs_difference']:.2e}"
    )
    for cap, row in result["approximation_study"].items():
        print(
            f"  approximate, regions capped at {cap} of a layer: {row['seconds']} s, speed-up {row['speedup']}x, "
            f"max |diff| {row['max_abs_difference']:.2e}, within 1e-4: {row['share_within_1e-4']:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
