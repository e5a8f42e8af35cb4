"""The int8 dlib model's X-Maps agree with float32's (Pearson >= 0.99 on 20 LFW pairs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xfv.cache import ArrayCache
from xfv.datasets import read_protocol
from xfv.errors import ModelError
from xfv.method.occlusion import OcclusionSettings
from xfv.pipeline.precision import map_fidelity, pearson

#: A coarse grid (25 px stride: 57 occlusions per face) keeps 20 pairs within seconds.
COARSE = OcclusionSettings(stride=25)


def test_pearson() -> None:
    a = np.arange(16.0).reshape(4, 4)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(np.zeros(4), np.zeros(4)) == 1.0


def test_unknown_precision_is_refused() -> None:
    from xfv.models import get_model
    from xfv.models.dlib_onnx import DlibOnnxModel

    with pytest.raises(ModelError, match="unknown precision 'fp8'"):
        DlibOnnxModel(get_model("dlib").spec, precision="fp8")


def test_int8_maps_agree_with_float32_on_20_lfw_pairs(lfw_root: Path, tmp_path: Path) -> None:
    from xfv.faces import align_path
    from xfv.models import get_model

    reference, int8 = get_model("dlib"), get_model("dlib-int8")
    assert int8.spec.cache_key != reference.spec.cache_key
    pairs = read_protocol("lfw", lfw_root).pairs
    chosen = pairs[:10] + pairs[300:310]  # fold 1: 10 genuine, 10 impostor pairs
    faces = [
        tuple(align_path(p, reference.spec, "lfw-funneled") for p in (pair.image1, pair.image2)) for pair in chosen
    ]
    scores = map_fidelity(reference, int8, faces, COARSE, ArrayCache(tmp_path / "arrays.sqlite"))
    worst = min(min(per_method.values()) for per_method in scores)
    mean = float(np.mean([np.mean(list(per_method.values())) for per_method in scores]))
    print(f"int8 vs float32 merged maps: mean Pearson {mean:.4f}, worst {worst:.4f}")
    assert mean >= 0.99, (mean, worst, scores)
