"""Embedding backends behind one interface, and the registry that names them.

``get_model(name)`` accepts a built-in name (``dlib``, ``dlib-native``; ``dlib-int8``, the
int8-quantised ``dlib``, as an explicit reduced-precision option), the name of a model from the
npm registry once installed (``faceres``, ``mobileface``: :mod:`~xfv.models.npm_models`), the
name of a JSON model spec in ``$XFV_HOME/models/``, or a path to a ``.json`` model spec or an
``.onnx`` file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from xfv.config import get_settings
from xfv.errors import ModelError
from xfv.models.base import FaceModel, ModelSpec
from xfv.models.onnx_model import OnnxModel, OnnxModelSpec

DEFAULT_MODEL = "dlib"


def shipped_calibration(name: str) -> dict[str, Any] | None:
    """The calibration shipped for a built-in model (``src/xfv/data/NAME.json``, written by
    ``xfv calibrate``): a saved calibrator whose threshold is the model's default threshold."""
    resource = resources.files("xfv") / "data" / f"{name}-calibration.json"
    return json.loads(resource.read_text()) if resource.is_file() else None


def calibration_fields(calibration: dict[str, Any] | None) -> dict[str, Any]:
    """ModelSpec fields that come from a saved calibration: threshold, its source, the calibration."""
    if calibration is None:
        return {}
    return {
        "default_threshold": float(calibration["threshold"]),
        "threshold_source": calibration["fitted_on"].get("description", "calibration"),
        "calibration": calibration,
    }


def _dlib_spec(name: str, description: str) -> ModelSpec:
    from xfv.models.dlib_native import DLIB_EMBEDDING_SIZE, DLIB_INPUT_SIZE, dlib_weights_hash

    return ModelSpec(
        name=name,
        input_size=DLIB_INPUT_SIZE,
        embedding_size=DLIB_EMBEDDING_SIZE,
        alignment="dlib",
        description=description,
        weights_hash=dlib_weights_hash(),
        **calibration_fields(shipped_calibration("dlib")),
    )


def _dlib_onnx(spec: ModelSpec) -> FaceModel:
    from xfv.models.dlib_onnx import DlibOnnxModel

    return DlibOnnxModel(spec)


def _dlib_int8(spec: ModelSpec) -> FaceModel:
    from xfv.models.dlib_onnx import DlibOnnxModel

    return DlibOnnxModel(spec, precision="int8")


def _dlib_int8_spec(name: str, description: str) -> ModelSpec:
    """dlib's spec, with its own cache key; threshold and calibration are float32 dlib's."""
    spec = _dlib_spec(name, description)
    return replace(
        spec, weights_hash=f"{spec.weights_hash}-int8", threshold_source=f"float32 dlib's: {spec.threshold_source}"
    )


def _dlib_native(spec: ModelSpec) -> FaceModel:
    from xfv.models.dlib_native import DlibNativeModel

    return DlibNativeModel(spec)


@dataclass(frozen=True)
class BuiltinModel:
    """A model xfv ships: its name, a one-line description, the backend that runs it and its spec."""

    name: str
    description: str
    backend: Callable[[ModelSpec], FaceModel]
    spec: Callable[[str, str], ModelSpec] = _dlib_spec
    #: Listed among the models to choose from (``xfv models``, the upload page); False for options
    #: asked for by name only, such as reduced precision.
    listed: bool = True
    #: The model this one is another implementation of (a reference backend): left out where
    #: models are compared (``--model all``).
    implements: str = ""

    def load(self) -> FaceModel:
        return self.backend(self.spec(self.name, self.description))


#: The built-in models by name: a new model is one entry here, read by :func:`get_model`, ``xfv
#: models``, the web's model lists and the upload form (user models are JSON specs instead).
BUILTIN: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        BuiltinModel("dlib", "dlib's ResNet face descriptor converted to ONNX, on ONNX Runtime", _dlib_onnx),
        BuiltinModel(
            "dlib-native",
            "dlib's ResNet face descriptor run by dlib itself (reference)",
            _dlib_native,
            implements="dlib",
        ),
        BuiltinModel(
            "dlib-int8",
            "dlib's ResNet on ONNX Runtime with int8 weights and activations (reduced precision)",
            _dlib_int8,
            _dlib_int8_spec,
            listed=False,
        ),
    )
}


def listed_models() -> tuple[str, ...]:
    """The built-in models offered for choice (``listed``), in registry order."""
    return tuple(name for name, model in BUILTIN.items() if model.listed)


def _user_spec_paths() -> dict[str, Path]:
    folder = get_settings().home / "models"
    return {path.stem: path for path in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


@cache
def get_model(name: str = DEFAULT_MODEL) -> FaceModel:
    """Load a model by name or spec path (loaded once per process)."""
    from xfv.models import npm_models

    if name in BUILTIN:
        return BUILTIN[name].load()
    if name in npm_models.CATALOGUE:
        return npm_models.load(name)
    user_specs = _user_spec_paths()
    if name in user_specs:
        return OnnxModel(OnnxModelSpec.from_json(user_specs[name]))
    path = Path(name)
    if path.suffix == ".json":
        return OnnxModel(OnnxModelSpec.from_json(path))
    if path.suffix == ".onnx":
        return OnnxModel(OnnxModelSpec(path=path.resolve()))
    known = ", ".join([*BUILTIN, *npm_models.CATALOGUE, *user_specs])
    raise ModelError(f"unknown model {name!r}: use one of {known}, or a path to a .json model spec or .onnx file")


#: The ``--model`` value that means every model to compare (see :func:`compared_model_names`).
ALL_MODELS = "all"


def compared_model_names() -> list[str]:
    """The models ``--model all`` compares: listed built-in ones (not a second implementation of
    another), the installed npm ones and the user's registered specs."""
    from xfv.models.npm_models import installed_models

    builtin = [name for name in listed_models() if not BUILTIN[name].implements]
    return [*builtin, *installed_models(), *_user_spec_paths()]


def available_models() -> list[ModelSpec]:
    """Specs of the listed built-in models, the installed npm models and the user's registered
    ONNX models (one that cannot be loaded is listed with the reason as its description)."""
    from xfv.models.npm_models import installed_models

    def spec_of(name: str) -> ModelSpec:
        try:
            return get_model(name).spec
        except ModelError as exc:
            return ModelSpec(name=name, input_size=0, embedding_size=0, alignment="?", description=str(exc))

    return [spec_of(name) for name in [*listed_models(), *installed_models(), *_user_spec_paths()]]


__all__ = [
    "ALL_MODELS",
    "BUILTIN",
    "DEFAULT_MODEL",
    "BuiltinModel",
    "FaceModel",
    "ModelSpec",
    "available_models",
    "calibration_fields",
    "compared_model_names",
    "get_model",
    "listed_models",
    "shipped_calibration",
]
