"""The Python front door: the examples of docs/python-api.md run as written on real LFW photos,
and the registries, the explainer and the one error policy on synthetic faces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import xfv
from tests.conftest import SHARED
from tests.test_xmaps import BlockProjectionModel, _face, _memory_cache
from xfv.errors import MethodError, XfvError
from xfv.method.xmaps import XMAP_METHODS, all_methods, check_methods, compute_xmaps

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def code_lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_documented_example_explains_an_lfw_pair(
    lfw_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, *others = doc_blocks()
    lines = code_lines(first)
    assert len(lines) <= 6 and [line for line in lines if line.startswith(("import ", "from "))] == ["import xfv"]
    [printed] = re.findall(r"^print\(explanation\)  # (.*)$", first, flags=re.MULTILINE)
    (tmp_path / "shared").symlink_to(SHARED)  # the examples read ../shared/data/lfw, as from the repository
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    namespace: dict[str, object] = {}
    for block in (first, *others):
        exec(compile(block, str(DOC), "exec"), namespace)
    explanation = namespace["explanation"]
    assert isinstance(explanation, xfv.Explanation)
    assert sorted(explanation.maps) == [1, 2, 3] and explanation.decision == "genuine"
    assert explanation.confidence is not None and 0.5 <= explanation.confidence <= 1  # the model's calibration
    assert explanation.forward_passes == 2 * (1 + 25)
    assert len(repr(explanation)) < 150 and "C-Score" in repr(explanation)
    assert capsys.readouterr().out.splitlines()[0] == printed  # the page shows what it prints
    for name in ("explanation.png", "heat-maps.png"):
        assert Path(name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert namespace["blend"].shape == namespace["heat"].shape == (150, 150, 3)  # type: ignore[attr-defined]
    verification = namespace["verification"]
    assert isinstance(verification, xfv.Verification) and verification.same
    assert verification.distance == pytest.approx(explanation.distance, abs=1e-5)
    assert verification.confidence == pytest.approx(explanation.confidence, abs=1e-4)
    assert namespace["again"].forward_passes == 0  # type: ignore[attr-defined]


def test_front_door_names_are_lazy_and_listed() -> None:
    assert set(xfv.__all__) <= set(dir(xfv))
    assert xfv.XMaps.__module__ == "xfv.api" and xfv.XMAP_METHODS is XMAP_METHODS
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        xfv.nothing  # noqa: B018


def test_explainer_owns_model_settings_calibration_and_cache() -> None:
    model = BlockProjectionModel()
    settings = xfv.OcclusionSettings(patch_sizes=(28,), stride=10)
    explainer = xfv.XMaps(model, settings, cache=_memory_cache())
    assert "fake-blocks-0" in repr(explainer) and "C-Score off" in repr(explainer)
    first = explainer.explain(_face(1), _face(2), methods=(3, 1))
    assert sorted(first.maps) == [1, 3] and first.forward_passes == 2 * (1 + settings.count)
    assert explainer.explain(_face(2), _face(1)).forward_passes == 0  # the explainer's cache
    assert first.confidence is None  # this model ships no calibration: no C-Score, and the repr says so


def test_method_registry_drives_the_maps() -> None:
    assert all_methods() == tuple(XMAP_METHODS) == check_methods(None) == (1, 2, 3)
    assert [m.roman for m in XMAP_METHODS.values()] == ["I", "II", "III"]
    assert all(m.description and m.name for m in XMAP_METHODS.values())
    assert check_methods([3, 1, 3]) == (3, 1)
    for bad in ([], [4], [0], ["x"]):
        with pytest.raises(MethodError, match="X-Map methods must be among 1, 2, 3"):
            check_methods(bad)


def test_one_error_class_for_an_unknown_method_everywhere(tmp_path: Path) -> None:
    from xfv.pipeline.explain import OcclusionEngine, explain_pair

    model = BlockProjectionModel()
    engine = OcclusionEngine(model, xfv.OcclusionSettings(patch_sizes=(28,)), _memory_cache())
    emb = engine.embeddings(_face(1))
    with pytest.raises(MethodError):
        compute_xmaps(7, emb, emb, engine.plan)
    with pytest.raises(MethodError):
        explain_pair(_face(1), _face(2), model, methods=(7,), engine=engine)
    with pytest.raises(MethodError):
        xfv.XMaps(model, engine.settings, cache=_memory_cache()).explain(_face(1), _face(2), methods=(7,))
    assert issubclass(MethodError, XfvError)


def test_protocol_and_model_registries() -> None:
    from xfv.errors import DatasetError, ModelError
    from xfv.models import BUILTIN, get_model, listed_models

    assert set(xfv.PROTOCOLS) == {"lfw", "calfw", "cplfw", "sllfw", "xqlfw"}
    assert xfv.PROTOCOLS["xqlfw"].input_mode == "aligned" and xfv.PROTOCOLS["lfw"].input_mode == "lfw-funneled"
    with pytest.raises(DatasetError, match="unknown protocol 'nope': use one of lfw, calfw"):
        xfv.read_protocol("nope", ".")
    assert listed_models() == ("dlib", "dlib-native") and tuple(BUILTIN) == (*listed_models(), "dlib-int8")
    with pytest.raises(ModelError, match="unknown model 'nope': use one of dlib, dlib-native, dlib-int8"):
        get_model("nope")
