"""``onnx``: any ONNX face-embedding model, described by a small JSON model spec.

The spec says how the model wants its input (side, layout, colour order, normalisation) and
which face alignment it expects; the defaults are the usual ArcFace convention: 112x112 RGB,
NCHW, ``(pixel - 127.5) / 127.5``, ArcFace 5-point alignment. A spec may name a TF.js graph
model (``tfjs``: its ``model.json``, and ``output``: the node to embed with) instead of an ONNX
file; xfv converts it once into the model cache (:mod:`~xfv.models.tfjs_onnx`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xfv.config import get_settings
from xfv.errors import ModelError
from xfv.models.base import ALIGNMENTS, FaceModel, ModelSpec
from xfv.models.weights import file_sha256


@dataclass(frozen=True)
class OnnxModelSpec:
    """How to feed an ONNX embedding model (the JSON model spec, ArcFace defaults)."""

    path: Path
    name: str = ""
    input_size: int = 112
    layout: str = "NCHW"
    colour: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    alignment: str = "arcface"
    threshold: float | None = None
    calibration: dict[str, Any] | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.layout not in ("NCHW", "NHWC"):
            problems.append(f"layout must be NCHW or NHWC, not {self.layout!r}")
        if self.colour not in ("RGB", "BGR"):
            problems.append(f"colour must be RGB or BGR, not {self.colour!r}")
        if self.alignment not in ALIGNMENTS:
            problems.append(f"alignment must be one of {', '.join(ALIGNMENTS)}, not {self.alignment!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or not all(s != 0 for s in self.std):
            problems.append("mean and std need three values each, std non-zero")
        if self.input_size < 16:
            problems.append(f"input_size {self.input_size} is too small")
        if problems:
            raise ModelError(f"model spec for {self.path}: " + "; ".join(problems))

    def preprocessing_key(self) -> str:
        """Everything that turns a face into the model's input, for cache keys."""
        numbers = ",".join(f"{v:g}" for v in (*self.mean, *self.std))
        return f"{self.alignment}{self.input_size}:{self.layout}:{self.colour}:{numbers}"

    @classmethod
    def from_json(cls, spec_path: Path) -> OnnxModelSpec:
        """Read a JSON spec; its ``onnx`` and ``calibration`` entries are paths relative to the spec
        file (``calibration``: a calibrator saved by ``xfv calibrate``)."""
        try:
            data = json.loads(Path(spec_path).read_text())
        except FileNotFoundError:
            raise ModelError(f"{spec_path}: model spec not found") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{spec_path}: not a readable JSON model spec ({exc})") from None
        if not isinstance(data, dict) or ("onnx" in data) == ("tfjs" in data):
            raise ModelError(
                f"{spec_path}: a model spec needs an 'onnx' entry with the model's path, or a 'tfjs' entry "
                "with a TF.js graph model's model.json"
            )
        known = {"name", "input_size", "layout", "colour", "mean", "std", "alignment", "threshold", "description"}
        unknown = set(data) - known - {"onnx", "tfjs", "output", "calibration"}
        if "tfjs" in data and "layout" in data:
            raise ModelError(f"{spec_path}: 'layout' does not apply to a TF.js model (xfv's conversion takes NCHW)")
        if "onnx" in data and "output" in data:
            unknown.add("output (TF.js models only)")
        if unknown:
            raise ModelError(f"{spec_path}: unknown model spec keys: {', '.join(sorted(unknown))}")
        options = {key: data[key] for key in known if key in data}
        for key in ("mean", "std"):
            if key in options:
                options[key] = tuple(float(v) for v in options[key])
        if "calibration" in data:
            options["calibration"] = _read_calibration(Path(spec_path).parent / data["calibration"], spec_path)
        folder = Path(spec_path).parent
        if "tfjs" in data:
            from xfv.models.tfjs_onnx import converted_tfjs_path

            tfjs = (folder / data["tfjs"]).resolve()
            options.setdefault("name", tfjs.stem)
            return cls(path=converted_tfjs_path(tfjs, data.get("output")), layout="NCHW", **options)
        return cls(path=(folder / data["onnx"]).resolve(), **options)


def _weights_hash(file_hash: str, onnx_spec: OnnxModelSpec) -> str:
    """The model file's hash and its preprocessing in one short hash: embeddings of the same file
    fed differently are different embeddings (in the caches and the store)."""
    return hashlib.sha256(f"{file_hash}:{onnx_spec.preprocessing_key()}".encode()).hexdigest()[:16]


def _read_calibration(path: Path, spec_path: Path) -> dict[str, Any]:
    try:
        calibration = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{spec_path}: calibration {path} cannot be read ({exc})") from None
    if not isinstance(calibration, dict) or "threshold" not in calibration or "fitted_on" not in calibration:
        raise ModelError(f"{spec_path}: {path} is not a calibration written by `xfv calibrate`")
    return calibration


def session_options(spinning: bool = True, threads: int | None = None) -> Any:
    """ONNX Runtime options tuned for throughput: full graph optimisation (about twice as fast as
    the basic level on dlib's ResNet), ``XFV_THREADS`` intra-op threads (default: all cores).

    ``spinning=False`` lets idle worker threads sleep at once: for the many small sessions of
    incremental inference, whose spinning pools would otherwise take the cores from each other.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or get_settings().threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def providers() -> list[Any]:
    """The CUDA provider when ONNX Runtime has it (TF32 off: no precision loss), the CPU provider always."""
    import onnxruntime as ort

    chosen: list[Any] = []
    if "CUDAExecutionProvider" in ort.get_available_providers():
        chosen.append(("CUDAExecutionProvider", {"use_tf32": "0"}))
    return [*chosen, "CPUExecutionProvider"]


def load_session(path: Path) -> Any:
    """Open an ONNX model with ONNX Runtime, with a clear error for a bad file."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise ModelError(f"{path}: ONNX model file not found")
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(), providers=providers())
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
        raise ModelError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None


def session_from_bytes(model: bytes, threads: int | None = None) -> Any:
    """A session for an ONNX model built in memory (a part of a graph), idle threads sleeping;
    ``threads`` intra-op threads (default ``XFV_THREADS``)."""
    import onnxruntime as ort

    options = session_options(spinning=False, threads=threads)
    return ort.InferenceSession(model, sess_options=options, providers=providers())


class OnnxModel(FaceModel):
    """Runs an ONNX embedding model with ONNX Runtime, preprocessing as its spec says."""

    batch_size = 32

    def __init__(self, onnx_spec: OnnxModelSpec, session: Any | None = None, spec: ModelSpec | None = None) -> None:
        self.onnx_spec = onnx_spec
        self._session = session if session is not None else load_session(onnx_spec.path)
        self._input_name = self._session.get_inputs()[0].name
        self._mean = np.asarray(onnx_spec.mean, dtype=np.float32)
        self._inv_std = 1.0 / np.asarray(onnx_spec.std, dtype=np.float32)
        self._identity_normalisation = not self._mean.any() and bool(np.all(self._inv_std == 1))
        self.spec = spec or self._spec_from(onnx_spec)

    def _spec_from(self, onnx_spec: OnnxModelSpec) -> ModelSpec:
        from xfv.models import calibration_fields

        fields = calibration_fields(onnx_spec.calibration)
        if onnx_spec.threshold is not None:
            fields.update(default_threshold=onnx_spec.threshold, threshold_source="model spec")
        return ModelSpec(
            name=onnx_spec.name or Path(onnx_spec.path).stem,
            input_size=onnx_spec.input_size,
            embedding_size=self._probe_embedding_size(),
            alignment=onnx_spec.alignment,
            description=onnx_spec.description or f"ONNX model {Path(onnx_spec.path).name}",
            weights_hash=_weights_hash(file_sha256(Path(onnx_spec.path)), onnx_spec),
            **fields,
        )

    def _probe_embedding_size(self) -> int:
        size = self.onnx_spec.input_size
        return int(self.embed_batch(np.zeros((1, size, size, 3), dtype=np.uint8)).shape[1])

    def preprocess(self, faces: np.ndarray) -> np.ndarray:
        """uint8 RGB NHWC faces to the float32 tensor the model wants."""
        x = faces[..., ::-1] if self.onnx_spec.colour == "BGR" else faces
        channel_axis = 1
        if self.onnx_spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)  # on uint8, before the 4x larger float copy
        else:
            channel_axis = 3
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._identity_normalisation:
            return x
        shape = [1, 1, 1, 1]
        shape[channel_axis] = 3
        x -= self._mean.reshape(shape)
        x *= self._inv_std.reshape(shape)
        return x

    def embed_batch(self, faces: np.ndarray) -> np.ndarray:
        output = self._session.run(None, {self._input_name: self.preprocess(faces)})[0]
        return np.asarray(output, dtype=np.float32).reshape(len(faces), -1)
