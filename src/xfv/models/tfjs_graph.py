"""Reads TensorFlow.js graph models (``model.json`` + weight shards), without TensorFlow.

A TF.js graph model is a JSON file holding a TensorFlow ``GraphDef`` as JSON (``modelTopology.node``:
name, op, inputs, attributes) and a ``weightsManifest``: groups of weight files (``paths``) whose
bytes, concatenated group by group, hold every constant in manifest order. A weight may be stored
quantised (``quantization``): float16, or uint8/uint16 with an affine ``scale`` and ``min``;
:func:`read_tfjs_graph` dequantises them as TF.js does, to the weight's ``dtype``.

Any problem raises :class:`~xfv.errors.ModelError` naming the file, and the node or weight.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xfv.errors import ModelError

#: Bytes per element of the stored dtypes TF.js writes (strings are variable-length: unsupported).
STORED_DTYPES = {"float32": "<f4", "int32": "<i4", "bool": "u1", "float16": "<f2", "uint8": "u1", "uint16": "<u2"}
#: Weight dtypes after dequantisation.
WEIGHT_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


@dataclass(frozen=True)
class TfjsNode:
    """One operation of the graph: data inputs by producing node name (``:0`` and control inputs
    dropped, ``name:k`` kept for other outputs) and decoded attributes."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]

    def describe(self) -> str:
        return f"node {self.name!r} ({self.op})"


@dataclass(frozen=True, eq=False)
class TfjsGraph:
    """A parsed graph model: nodes in file order, constant values by node name, input
    placeholders and the outputs its signature names (in signature order)."""

    source: str
    nodes: dict[str, TfjsNode]
    weights: dict[str, np.ndarray]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def node(self, name: str, needed_by: TfjsNode | None = None) -> TfjsNode:
        """The node producing tensor ``name`` (``node`` or ``node:0``), or a ModelError."""
        base = name.split(":")[0]
        if base not in self.nodes:
            where = f"{needed_by.describe()}: input" if needed_by else "tensor"
            raise ModelError(f"{self.source}: {where} {name!r} is not in the graph")
        return self.nodes[base]

    def ops(self) -> dict[str, int]:
        """How often each op occurs."""
        counts: dict[str, int] = {}
        for node in self.nodes.values():
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts


def _decode_attr(value: dict[str, Any]) -> Any:
    """A TensorFlow ``AttrValue`` in JSON form to a Python value (strings are base64 in JSON)."""
    if "list" in value:
        items = value["list"]
        for key in ("i", "f", "s", "b", "type", "shape"):
            if key in items:
                return [_decode_attr({key: item}) for item in items[key]]
        return []
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "s" in value:
        return base64.b64decode(value["s"]).decode("utf-8", "replace")
    if "type" in value:
        return str(value["type"])
    if "shape" in value:
        return [int(dim.get("size", -1)) for dim in value["shape"].get("dim", [])]
    return value  # tensors and functions: kept as they are


def _node(raw: dict[str, Any], source: str) -> TfjsNode:
    if not isinstance(raw, dict) or "name" not in raw or "op" not in raw:
        raise ModelError(f"{source}: a node of modelTopology lacks a name or an op")
    inputs = tuple(
        name[:-2] if name.endswith(":0") else name for name in raw.get("input", []) if not name.startswith("^")
    )
    attrs = {key: _decode_attr(value) for key, value in raw.get("attr", {}).items()}
    return TfjsNode(raw["name"], raw["op"], inputs, attrs)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ModelError(f"{path}: TF.js model file not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the TF.js model ({exc.strerror})") from None
    except ValueError as exc:
        raise ModelError(f"{path}: not a TF.js graph model (invalid JSON: {exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a TF.js graph model (no JSON object)")
    if data.get("format") == "layers-model":
        raise ModelError(f"{path}: a TF.js layers model; only graph models (format graph-model) are supported")
    topology = data.get("modelTopology")
    if not isinstance(topology, dict) or not isinstance(topology.get("node"), list):
        raise ModelError(f"{path}: not a TF.js graph model (no modelTopology.node list)")
    if not isinstance(data.get("weightsManifest"), list):
        raise ModelError(f"{path}: not a TF.js graph model (no weightsManifest list)")
    return data


def weight_files(path: Path) -> list[Path]:
    """The weight files a ``model.json`` names, in manifest order (for hashing and reading)."""
    data = _load_json(Path(path))
    return [Path(path).parent / name for group in data["weightsManifest"] for name in group.get("paths", [])]


def _group_bytes(model_path: Path, group: dict[str, Any]) -> bytes:
    chunks = []
    for name in group.get("paths", []):
        file = model_path.parent / name
        try:
            chunks.append(file.read_bytes())
        except FileNotFoundError:
            raise ModelError(f"{file}: weight file named by {model_path.name} not found") from None
        except OSError as exc:
            raise ModelError(f"{file}: cannot read weights ({exc.strerror})") from None
    return b"".join(chunks)


def _weight(spec: dict[str, Any], data: bytes, offset: int, where: str) -> tuple[np.ndarray, int]:
    """One weight decoded from ``data`` at ``offset``; returns it and the offset after it."""
    name, dtype = spec.get("name"), spec.get("dtype")
    shape = spec.get("shape")
    if not isinstance(name, str) or not isinstance(shape, list) or dtype not in WEIGHT_DTYPES:
        raise ModelError(f"{where}: weight {name!r} has an unsupported dtype {dtype!r} or no shape")
    quantization = spec.get("quantization") or {}
    stored = quantization.get("dtype", dtype)
    if stored not in STORED_DTYPES:
        raise ModelError(f"{where}: weight {name!r} is stored as {stored!r}, which xfv cannot decode")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    size = count * np.dtype(STORED_DTYPES[stored]).itemsize
    if offset + size > len(data):
        raise ModelError(
            f"{where}: the weight files hold {len(data)} bytes, but weight {name!r} needs bytes "
            f"{offset} to {offset + size} (truncated or corrupt?)"
        )
    raw = np.frombuffer(data, dtype=STORED_DTYPES[stored], count=count, offset=offset)
    if stored in ("uint8", "uint16"):
        values = raw * np.float32(quantization.get("scale", 1.0)) + np.float32(quantization.get("min", 0.0))
        if dtype == "int32":
            values = np.rint(values)
    else:
        values = raw
    return np.asarray(values, dtype=WEIGHT_DTYPES[dtype]).reshape(shape), offset + size


def _weights(model_path: Path, manifest: list[Any]) -> dict[str, np.ndarray]:
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        if not isinstance(group, dict) or not isinstance(group.get("weights"), list):
            raise ModelError(f"{model_path}: a weightsManifest group lacks its weights list")
        data = _group_bytes(model_path, group)
        where = f"{model_path} ({', '.join(group.get('paths', []))})"
        offset = 0
        for spec in group["weights"]:
            value, offset = _weight(spec, data, offset, where)
            if value.dtype == np.float32 and not np.isfinite(value).all():
                raise ModelError(f"{where}: weight {spec['name']!r} holds NaN or infinite values (corrupt file?)")
            weights[spec["name"]] = value
        if offset != len(data):
            raise ModelError(
                f"{where}: the weight files hold {len(data)} bytes, but the manifest describes {offset} (corrupt?)"
            )
    return weights


def read_tfjs_graph(path: Path) -> TfjsGraph:
    """Read a TF.js graph model: its ``model.json`` (any name) and the weight files it names."""
    path = Path(path)
    data = _load_json(path)
    source = str(path)
    nodes: dict[str, TfjsNode] = {}
    for raw in data["modelTopology"]["node"]:
        node = _node(raw, source)
        if node.name in nodes:
            raise ModelError(f"{source}: two nodes are named {node.name!r}")
        nodes[node.name] = node
    weights = _weights(path, data["weightsManifest"])
    for node in nodes.values():
        if node.op == "Const" and node.name not in weights:
            raise ModelError(f"{source}: {node.describe()} has no value in the weights manifest")
    inputs = tuple(name for name, node in nodes.items() if node.op == "Placeholder")
    signature = data.get("signature") or (data.get("userDefinedMetadata") or {}).get("signature") or {}
    outputs = tuple(
        str(output.get("name", key)).removesuffix(":0") for key, output in (signature.get("outputs") or {}).items()
    )
    return TfjsGraph(source, nodes, weights, inputs, outputs)
