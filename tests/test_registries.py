"""The registries are the one place to add an X-Map method, a benchmark protocol or a model: what a
test registers there reaches the CLI, the Python API, compute and the store, the web API and the
pages. And one error policy: the same bad input raises the same XfvError subclass wherever it comes in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import xfv
from tests.synthetic import write_lfw_dataset
from tests.test_web_api import photo as lfw_photo
from tests.test_web_api import wait_for
from tests.test_xmaps import SIZE, BlockProjectionModel, _face, _memory_cache
from tests.web_fixtures import PAPER, TINY, WebStore
from xfv.cli import build_parser, main
from xfv.datasets import PROTOCOLS, Protocol
from xfv.datasets.readers import read_lfw_pairs
from xfv.errors import DatasetError, MethodError, ModelError
from xfv.method.xmaps import XMAP_METHODS, Distances, XMapMethod, all_methods, check_methods
from xfv.models import BUILTIN, BuiltinModel, FaceModel, ModelSpec, get_model, listed_models
from xfv.pipeline import compute
from xfv.pipeline.compute import ComputeOptions, compute_scores, compute_xmaps
from xfv.plots import XMapDisplay
from xfv.store import open_store
from xfv.store.catalog import find_model
from xfv.store.ingest import ingest
from xfv.store.models import Dataset, XMapResult
from xfv.store.xmaps import missing_xmap_methods

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _swapped(occluded1: np.ndarray, occluded2: np.ndarray, original1: np.ndarray, original2: np.ndarray) -> Distances:
    """Method 2's distances with the two maps exchanged."""
    d1, d2 = XMAP_METHODS[2].distances(occluded1, occluded2, original1, original2)
    return d2, d1


FOURTH = XMapMethod(4, "swapped", "Method II with the maps of the two faces exchanged, registered by a test.", _swapped)


@pytest.fixture
def fourth_method(monkeypatch: pytest.MonkeyPatch) -> XMapMethod:
    """A fourth X-Map method, registered for one test."""
    monkeypatch.setitem(XMAP_METHODS, 4, FOURTH)
    return FOURTH


# --- X-Map methods ------------------------------------------------------------------------------


def test_a_fourth_method_reaches_the_cli_and_the_python_api(
    fourth_method: XMapMethod, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("explain", "compute"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "4: swapped" in " ".join(capsys.readouterr().out.split())  # --methods lists it
    assert build_parser().parse_args(["explain", "a.jpg", "b.jpg", "--out", "o"]).methods is None  # all of them
    assert all_methods() == check_methods(None) == (1, 2, 3, 4)
    with pytest.raises(MethodError, match=r"among 1, 2, 3, 4, got \[5\]"):
        check_methods([5])

    explainer = xfv.XMaps(BlockProjectionModel(), xfv.OcclusionSettings(patch_sizes=(28,)), cache=_memory_cache())
    explanation = explainer.explain(_face(1), _face(2))  # default: every registered method
    assert sorted(explanation.maps) == [1, 2, 3, 4] and repr(explanation).endswith("methods 1, 2, 3, 4)")
    assert np.array_equal(explanation.maps[4].merged1, explanation.maps[2].merged2)
    assert explanation.image(4, which=2).shape == (SIZE, SIZE, 3)
    display = XMapDisplay.from_explanation(explanation)
    assert [name for name, _, _ in display.columns][-1] == "X-Map method IV" and display.axes_.shape == (2, 5)


def test_a_fourth_method_is_computed_alone_for_pairs_with_the_others(
    fourth_method: XMapMethod, tmp_path: Path, synthetic_lfw: Path, fake_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = open_store(url)
    ingest(store, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    quiet = ComputeOptions(progress=False)
    compute_scores(store, "syn", fake_model, quiet)
    compute_xmaps(
        store, "syn", fake_model, "0-2", xfv.OcclusionSettings(patch_sizes=(14, 28), stride=10), (1, 2, 3), quiet
    )
    asked: list[tuple[int, ...]] = []
    explain = compute.explain_pair
    monkeypatch.setattr(compute, "explain_pair", lambda *a, **k: asked.append(tuple(a[3])) or explain(*a, **k))
    occlusion = ["--patch-sizes", "14,28", "--stride", "10"]
    command = ["compute", "--dataset", "syn", "--model", fake_model, "--xmaps", "--pairs", "0-2", *occlusion]
    assert main([*command, "--quiet", "--database-url", url]) == 0  # no --methods: all four
    assert asked == [(4,), (4,), (4,)]  # the stored methods are not computed again
    with store.transaction() as session:
        methods = session.scalars(select(XMapResult.method).order_by(XMapResult.pair_id, XMapResult.method)).all()
    assert list(methods) == [1, 2, 3, 4] * 3
    store.close()


def test_a_fourth_method_reaches_the_web(fourth_method: XMapMethod, client: TestClient, web_store: WebStore) -> None:
    listed = client.get("/api/methods").json()
    assert [m["number"] for m in listed] == [1, 2, 3, 4]
    assert listed[3] == {"number": 4, "roman": "IV", "name": FOURTH.name, "description": FOURTH.description}
    assert FOURTH.description in client.get("/").text  # the landing page's method texts
    viewer = client.get(f"/pairs/{web_store.with_maps[0]}").text
    assert 'data-value="4"' in viewer and ">IV</button>" in viewer  # the viewer's buttons (keys 1-4)
    with web_store.store.sessions() as session:
        missing = missing_xmap_methods(
            session, find_model(session, web_store.model), PAPER.cache_key(), web_store.with_maps, all_methods()
        )
    assert missing == {pair_id: (4,) for pair_id in web_store.with_maps}  # only the new method is asked for
    base = f"/api/pairs/{web_store.with_maps[0]}/xmaps/{web_store.model}"
    absent = client.get(f"{base}/4/1.png", params={"setting": PAPER.cache_key()})
    assert absent.status_code == 404 and "no stored X-Maps of method 4" in absent.json()["detail"]

    pair = f"/api/pairs/{web_store.without_maps}"
    job = wait_for(client, client.post(f"{pair}/xmaps/{web_store.model}").json()["job"])  # the real dlib model
    assert job["status"] == "done", job
    stored = client.get(pair).json()["pair"]["xmaps"]
    assert [(m["setting"], m["methods"]) for m in stored] == [(TINY.cache_key(), [1, 2, 3, 4])]
    picture = client.get(f"{pair}/xmaps/{web_store.model}/4/2.png")
    assert picture.status_code == 200 and picture.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.post(f"{pair}/xmaps/{web_store.model}").json() == {"status": "stored", "job": None}


# --- protocols ----------------------------------------------------------------------------------


def test_a_new_protocol_reaches_the_cli_the_api_and_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_lfw_dataset(tmp_path / "toy", pairs_per_class=2)
    toy = Protocol(
        "toy",
        lambda folder: read_lfw_pairs(folder / "pairs.txt", folder / "lfw-deepfunneled", "toy"),
        "aligned",
        "a toy benchmark registered by a test",
    )
    monkeypatch.setitem(PROTOCOLS, "toy", toy)
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "toy: a toy benchmark registered by a test" in " ".join(capsys.readouterr().out.split())
    assert len(xfv.read_protocol("toy", root).pairs) == 40
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    assert main(["ingest", "--protocol", "toy", "--root", str(root), "--quiet", "--database-url", url]) == 0
    store = open_store(url)
    with store.sessions() as session:
        dataset = session.scalars(select(Dataset)).one()
    assert (dataset.name, dataset.protocol, dataset.input_mode, dataset.pair_count) == ("toy", "toy", "aligned", 40)
    store.close()


# --- models -------------------------------------------------------------------------------------


class _ToyModel(BlockProjectionModel):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec


def _toy_spec(name: str, description: str) -> ModelSpec:
    return ModelSpec(name, SIZE, 32, "dlib", description=description, default_threshold=0.4)


@pytest.fixture
def toy_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A built-in model registered for one test (models are loaded once per process: forgotten after)."""
    monkeypatch.setitem(BUILTIN, "toy", BuiltinModel("toy", "a toy model registered by a test", _ToyModel, _toy_spec))
    get_model.cache_clear()
    yield "toy"
    get_model.cache_clear()


def test_a_new_model_reaches_the_cli_the_api_and_the_upload_form(
    toy_model: str, client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert listed_models()[-1] == toy_model and isinstance(xfv.load_model(toy_model), FaceModel)
    assert main(["models"]) == 0
    assert "a toy model registered by a test" in capsys.readouterr().out
    explanation = xfv.XMaps(toy_model, xfv.OcclusionSettings(patch_sizes=(28,)), cache=_memory_cache()).explain(
        _face(1), _face(2), methods=(1,)
    )
    assert explanation.model_name == toy_model and explanation.decision in ("genuine", "impostor")
    assert toy_model in client.get("/api/models").json()["upload"]
    assert f'value="{toy_model}"' in client.get("/explain").text


# --- one error policy ---------------------------------------------------------------------------


def test_the_same_bad_input_raises_the_same_error_everywhere(
    client: TestClient, web_store: WebStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = str(tmp_path / "any.jpg")  # never read: the method and the model are checked first
    pair = f"/api/pairs/{web_store.with_maps[0]}"
    url = ["--database-url", web_store.url]

    def cli_error(*argv: str) -> str:
        assert main(list(argv)) == 2
        return capsys.readouterr().err.strip()

    # an unknown X-Map method: MethodError, with one message, before any work
    with pytest.raises(MethodError) as raised:
        xfv.XMaps(BlockProjectionModel(), cache=_memory_cache()).explain(photo, photo, methods=(7,))
    message = str(raised.value)
    assert message == "X-Map methods must be among 1, 2, 3, got [7]"
    assert cli_error("explain", photo, photo, "--out", str(tmp_path), "--methods", "7") == f"xfv: error: {message}"
    assert cli_error("compute", "--dataset", "lfw", "--xmaps", "--methods", "7", *url) == f"xfv: error: {message}"
    for path in (f"{pair}/xmaps/dlib/7/1.png", f"{pair}/xmaps/dlib/7/raw"):
        answer = client.get(path)
        assert (answer.status_code, answer.json()["detail"]) == (404, message)

    # an unknown model: ModelError in the API, the CLI and the web
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        xfv.load_model("nope")
    assert "unknown model 'nope'" in cli_error("verify", photo, photo, "--model", "nope")
    image = lfw_photo("Abel_Pacheco", 1)
    answer = client.post("/api/verify", files={"image1": image, "image2": image}, data={"model": "nope"})
    assert answer.status_code == 400 and "unknown model 'nope'" in answer.json()["detail"]

    # an unknown dataset or protocol: DatasetError
    with pytest.raises(DatasetError, match="unknown protocol 'nope'"):
        xfv.read_protocol("nope", tmp_path)
    message = cli_error("compute", "--dataset", "nope", *url)
    assert message.startswith("xfv: error: no dataset named 'nope' in the store")
    answer = client.get("/api/pairs", params={"dataset": "nope"})
    assert (answer.status_code, answer.json()["detail"]) == (400, message.removeprefix("xfv: error: "))
