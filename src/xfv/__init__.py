"""xfv: eXplainable Face Verification (C-Scores and X-Maps for any face-verification model).

The front door for Python (:mod:`xfv.api`), re-exported here and imported on first use so that
``import xfv`` stays light::

    import xfv
    explanation = xfv.XMaps("dlib").explain("photo1.jpg", "photo2.jpg")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public names and the modules that define them.
_EXPORTS = {
    "load_model": "xfv.api",
    "align": "xfv.api",
    "verify": "xfv.api",
    "XMaps": "xfv.api",
    "Explanation": "xfv.pipeline.explain",
    "Verification": "xfv.pipeline.verify",
    "OcclusionSettings": "xfv.method.occlusion",
    "load_calibrator": "xfv.pipeline.calibrate",
    "XMAP_METHODS": "xfv.method.xmaps",
    "PROTOCOLS": "xfv.datasets",
    "read_protocol": "xfv.datasets",
    "available_models": "xfv.models",
    "XfvError": "xfv.errors",
}

if TYPE_CHECKING:
    from xfv.api import XMaps, align, load_model, verify
    from xfv.datasets import PROTOCOLS, read_protocol
    from xfv.errors import XfvError
    from xfv.method.occlusion import OcclusionSettings
    from xfv.method.xmaps import XMAP_METHODS
    from xfv.models import available_models
    from xfv.pipeline.calibrate import load_calibrator
    from xfv.pipeline.explain import Explanation
    from xfv.pipeline.verify import Verification


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'xfv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "PROTOCOLS",
    "XMAP_METHODS",
    "Explanation",
    "OcclusionSettings",
    "Verification",
    "XMaps",
    "XfvError",
    "align",
    "available_models",
    "load_calibrator",
    "load_model",
    "read_protocol",
    "verify",
]
