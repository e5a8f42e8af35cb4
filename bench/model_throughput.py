"""Embeddings per second of every model: ``dlib`` (ONNX Runtime) against ``dlib-native`` on the
same LFW faces, and each installed npm model (``faceres``, ``mobileface``).

Usage: ``python bench/model_throughput.py [--json] [--n N] [--lfw DIR] [--seconds S]``

Every model embeds N aligned faces (first photo of the first N LFW people, aligned the way the
model expects; dlib's two backends the same faces). Each is warmed up on one batch, then timed
over whole passes through the faces until at least ``--seconds`` have passed, one model after
the other. Also reports the largest embedding difference between dlib's backends, each model's
FLOPs per face (dlib's counted from its parsed layers, the others' from their ONNX graphs) and
achieved GFLOP/s, and an estimate of the machine's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime

from xfv.faces import align_path
from xfv.models import get_model
from xfv.models.base import FaceModel, ModelSpec
from xfv.models.dlib_dat import read_dlib_net
from xfv.models.dlib_native import DLIB_EMBEDDING_SIZE, DLIB_INPUT_SIZE, DlibNativeModel
from xfv.models.dlib_onnx import DlibOnnxModel
from xfv.models.npm_models import CATALOGUE, installed_models
from xfv.models.weights import resnet_descriptor_path

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"


def lfw_faces(root: Path, n: int, spec: ModelSpec) -> np.ndarray:
    """Aligned faces from the first photo of the first ``n`` LFW people (sorted by name)."""
    people = sorted(p for p in (root / "images_deepfunneled").iterdir() if p.is_dir())[:n]
    if len(people) < n:
        raise SystemExit(f"{root}: only {len(people)} LFW people found, {n} asked for")
    return np.stack([align_path(p / f"{p.name}_0001.jpg", spec, mode="lfw-funneled") for p in people])


def throughput(model: FaceModel, faces: np.ndarray, seconds: float) -> tuple[float, np.ndarray]:
    """Faces per second over whole passes through ``faces``, and the embeddings."""
    model.embed(faces[: model.batch_size])
    done, start = 0, time.perf_counter()
    while True:
        embeddings = model.embed(faces)
        done += len(faces)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed, embeddings


def onnx_gflop_per_face(path: Path, input_size: int) -> float:
    """FLOPs of one face through an ONNX graph: 2 per multiply-add of Conv, MatMul and Gemm, one
    per output element of element-wise ops and per input element of reductions (shapes from
    ONNX's shape inference at batch 1)."""
    model = onnx.load(path)
    graph_input = model.graph.input[0]
    dims = graph_input.type.tensor_type.shape.dim
    dims[0].dim_value = 1
    for dim, size in zip(
        dims[1:], (3, input_size, input_size) if dims[1].dim_value == 3 else (input_size, input_size, 3)
    ):
        dim.dim_value = size
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
    }
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    shapes.update(weights)
    total = 0
    for node in inferred.graph.node:
        out = int(np.prod(shapes.get(node.output[0], [0])))
        if node.op_type == "Conv":
            kernel = weights[node.input[1]]
            total += out * 2 * int(np.prod(kernel[1:])) + (out if len(node.input) > 2 else 0)
        elif node.op_type in ("MatMul", "Gemm"):
            total += 2 * out * shapes[node.input[1]][0]
        elif node.op_type.startswith("Reduce"):
            total += int(np.prod(shapes.get(node.input[0], [0])))
        elif node.op_type not in ("Transpose", "Reshape", "Identity", "Pad", "Flatten", "Squeeze"):
            total += out
    return total / 1e9


def _cpu_info() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n")[0]
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())}


def peak_estimate() -> dict[str, Any]:
    """Theoretical fp32 peak: cores x nominal GHz x FLOPs per cycle from the SIMD flags.

    FLOPs per cycle assume two FMA units per core (Xeon Scalable Gold/Platinum; one-unit parts
    have half): AVX-512 16 lanes x 2 (FMA) x 2 = 64, AVX2+FMA 32, SSE 8. The nominal frequency
    is from the CPU model name (``@ 2.50GHz``) or ``cpu MHz``; turbo can run above it. A measured
    float32 matrix product (``sgemm_gflops``) is added as a practical peak.
    """
    info = _cpu_info()
    flags = set(info.get("flags", "").split())
    match = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""))
    ghz = float(match.group(1)) if match else float(info.get("cpu MHz", "0")) / 1000
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 8
    cores = os.cpu_count() or 1
    return {
        "peak_gflops": round(cores * ghz * per_cycle, 1),
        "peak_method": (
            f"{cores} cores x {ghz:.2f} GHz nominal x {per_cycle} fp32 FLOP/cycle "
            f"({'AVX-512' if per_cycle == 64 else 'AVX2+FMA' if per_cycle == 32 else 'SSE'}, two FMA units assumed)"
        ),
        "cpu": info.get("model name", "unknown"),
        "sgemm_gflops": round(_sgemm_gflops(), 1),
    }


def _sgemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """A practical peak: the best of a few float32 matrix products through numpy's BLAS."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--n", type=int, default=64, help="number of faces (default 64)")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW root with images_deepfunneled/")
    parser.add_argument("--seconds", type=float, default=3.0, help="least timed seconds per backend")
    args = parser.parse_args(argv)

    def spec(name: str) -> ModelSpec:
        return ModelSpec(name=name, input_size=DLIB_INPUT_SIZE, embedding_size=DLIB_EMBEDDING_SIZE, alignment="dlib")

    onnx_model, native_model = DlibOnnxModel(spec("dlib")), DlibNativeModel(spec("dlib-native"))
    faces = lfw_faces(args.lfw, args.n, onnx_model.spec)
    onnx_rate, onnx_embeddings = throughput(onnx_model, faces, args.seconds)
    native_rate, native_embeddings = throughput(native_model, faces, args.seconds)
    dlib_gflop = read_dlib_net(resnet_descriptor_path()).flops() / 1e9
    rates = {"dlib": onnx_rate, "dlib-native": native_rate}
    gflop = {"dlib": dlib_gflop, "dlib-native": dlib_gflop}
    batch = {"dlib": onnx_model.batch_size, "dlib-native": native_model.batch_size}
    for name in installed_models():
        model = get_model(name)
        rates[name] = throughput(model, lfw_faces(args.lfw, args.n, model.spec), args.seconds)[0]
        gflop[name] = onnx_gflop_per_face(model.onnx_spec.path, model.spec.input_size)  # type: ignore[attr-defined]
        batch[name] = model.batch_size
    result = {
        "per_second": {name: round(rate, 2) for name, rate in rates.items()},
        "ratio": round(onnx_rate / native_rate, 2),
        "faces": len(faces),
        "batch_size": batch,
        "max_abs_diff": float(np.abs(onnx_embeddings - native_embeddings).max()),
        "gflop_per_face": {name: round(value, 4) for name, value in gflop.items()},
        "achieved_gflops": {name: round(rates[name] * gflop[name], 1) for name in rates},
        "not_installed": [name for name in CATALOGUE if name not in rates],
        **peak_estimate(),
        "onnxruntime": onnxruntime.__version__,
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{len(faces)} aligned LFW faces per model, max |dlib - dlib-native| = {result['max_abs_diff']:.2e}")
    for name, rate in result["per_second"].items():
        print(
            f"  {name:12s} {rate:8.1f} embeddings/s  {result['gflop_per_face'][name]:.3f} GFLOP/face  "
            f"({result['achieved_gflops'][name]:.1f} GFLOP/s)"
        )
    print(f"  dlib / dlib-native {result['ratio']:.2f}x")
    for name in result["not_installed"]:
        print(f"  {name:12s} not installed (xfv models install {name})")
    print(f"peak estimate {result['peak_gflops']} GFLOP/s: {result['peak_method']}")
    print(f"measured numpy SGEMM {result['sgemm_gflops']} GFLOP/s")
    print(f"load average {result['load_average']} (other work on the machine lowers both rates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
