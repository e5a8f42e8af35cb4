"""A small store for the web tests: real LFW pairs and images, synthetic results and X-Maps.

Distances, C-Scores and stored X-Maps are made up (deterministic, seed 0) so the tests need no
model run to fill the store; the on-demand X-Map and upload tests run the real ``dlib`` model
with a tiny occlusion setting (:data:`TINY`: one 28-pixel patch, stride 40, 9 occlusions per face).
Loaded by ``tests/conftest.py`` as a plugin: ``web_store`` (SQLite), ``backend_store`` (SQLite,
then PostgreSQL), ``client`` and ``any_client`` (the app on them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from tests.conftest import LFW_ROOT
from tests.pg import PgServer
from xfv.datasets import read_protocol
from xfv.method.cscore import CScoreCalibrator
from xfv.method.occlusion import OcclusionSettings
from xfv.models import get_model
from xfv.store import Store, open_store
from xfv.store.arrays import pack_maps
from xfv.store.models import Dataset, FoldResult, Identity, Image, Model, Pair, PairResult
from xfv.store.xmaps import XMapRecord, add_xmaps, occlusion_setting
from xfv.web import create_app

#: The X-Map setting the test servers compute with: 2 x (9 + 1) forward passes per pair.
TINY = OcclusionSettings(patch_sizes=(28,), stride=40)
#: The setting the synthetic stored maps claim (the paper's).
PAPER = OcclusionSettings()
#: Roughly dlib's: LFW genuine pairs have cosine distances near 0.045, impostors near 0.18.
THRESHOLD = 0.1
#: Pairs taken per fold and class from LFW's pairs.txt, for folds 0 and 1.
PER_CLASS = 9


@dataclass(frozen=True)
class WebStore:
    """The fixture store and what the tests need to know about it."""

    store: Store
    url: str
    pair_ids: list[int]
    with_maps: list[int]
    without_maps: int
    image_id: int
    model: str


def _synthetic_maps(seed: int, size: int) -> dict[str, np.ndarray]:
    """Maps that differ per method, patch size and image (so every switch changes the picture)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    maps = {}
    for image in (1, 2):
        for patch in (*PAPER.patch_sizes, "merged"):
            a, b, c = rng.uniform(-1, 1, 3)
            values = np.sin(a * 6 * x + b * 4) * np.cos(c * 5 * y) + 0.2 * rng.standard_normal((size, size))
            key = f"image{image}_merged" if patch == "merged" else f"image{image}_p{patch}"
            maps[key] = values / np.abs(values).max()
    return maps


def _cscore(distance: float) -> float:
    """A made-up confidence: 0.5 at the threshold, towards 1 far from it."""
    return float(0.5 + 0.5 * np.tanh(abs(distance - THRESHOLD) * 40))


def build_web_store(url: str) -> WebStore:
    """A store at ``url`` (empty) with LFW pairs of folds 0 and 1, results of ``dlib`` (and of a
    second model for some pairs), a stored C-Score calibration, and synthetic X-Maps of the first
    two pairs."""
    store = open_store(url)
    lfw = read_protocol("lfw", LFW_ROOT)
    chosen = [
        p
        for fold in (0, 1)
        for start in (0, 300)
        for p in lfw.pairs[fold * 600 + start : fold * 600 + start + PER_CLASS]
    ]
    rng = np.random.default_rng(0)
    spec = get_model("dlib").spec
    with store.transaction() as session:
        dataset = Dataset(
            name="lfw",
            protocol="lfw",
            root=str(LFW_ROOT.resolve()),
            input_mode="lfw-funneled",
            image_count=0,
            pair_count=len(chosen),
        )
        session.add(dataset)
        session.flush()
        images: dict[Path, Image] = {}
        people: dict[str, Identity] = {}
        for pair in chosen:
            for path, name in ((pair.image1, pair.identity1), (pair.image2, pair.identity2)):
                person = people.setdefault(name, Identity(dataset_id=dataset.id, name=name))
                if path not in images:
                    images[path] = Image(
                        dataset_id=dataset.id,
                        identity=person,
                        path=path.relative_to(LFW_ROOT).as_posix(),
                        width=250,
                        height=250,
                        file_size=path.stat().st_size,
                        content_hash=f"{len(images):064x}",
                        quality=float(rng.uniform(0.2, 0.95)),
                    )
        session.add_all([*people.values(), *images.values()])
        dataset.image_count = len(images)
        session.flush()
        pairs = [
            Pair(
                dataset_id=dataset.id,
                position=i,
                fold=p.fold,
                same=p.same,
                image1_id=images[p.image1].id,
                image2_id=images[p.image2].id,
            )
            for i, p in enumerate(chosen)
        ]
        session.add_all(pairs)
        dlib = Model(
            name=spec.name,
            weights_hash=spec.weights_hash,
            spec={"alignment": spec.alignment, "input_size": spec.input_size},
        )
        other = Model(name="other-net", weights_hash="0" * 16, spec={"alignment": "dlib", "input_size": 150})
        session.add_all([dlib, other])
        session.flush()
        distances = [float(rng.normal(0.045 if p.same else 0.18, 0.03)) for p in chosen]
        session.execute(
            insert(PairResult), [_result(p, dataset, dlib, d) for p, d in zip(pairs, distances, strict=True)]
        )
        session.execute(
            insert(PairResult),
            [_result(p, dataset, other, d + 0.02) for p, d in zip(pairs[::2], distances[::2], strict=True)],
        )
        calibration_d = np.concatenate([rng.normal(0.045, 0.02, 200), rng.normal(0.18, 0.035, 200)])
        calibrator = CScoreCalibrator().fit(calibration_d, np.repeat([True, False], 200), THRESHOLD, model_name="dlib")
        session.add(
            FoldResult(
                dataset_id=dataset.id,
                model_id=dlib.id,
                fold=0,
                n_pairs=len(chosen),
                threshold=THRESHOLD,
                accuracy=0.9,
                cscore_L=1.0,
                cscore_d0=THRESHOLD,
                cscore_k=-20.0,
                cscore_b=0.0,
                calibration=calibrator.to_dict(),
            )
        )
        setting = occlusion_setting(session, PAPER)
        with_maps = [pairs[0].id, pairs[1].id]
        records = [
            XMapRecord(
                pair_id,
                method,
                distances[index],
                2 * (PAPER.count + 1),
                pack_maps(_synthetic_maps(10 * index + method, spec.input_size)),
            )
            for index, pair_id in enumerate(with_maps)
            for method in (1, 2, 3)
        ]
        add_xmaps(session, dlib, setting, records)
        ids = [p.id for p in pairs]
    return WebStore(store, url, ids, with_maps, ids[2], images[chosen[0].image1].id, spec.name)


def _result(pair: Pair, dataset: Dataset, model: Model, distance: float) -> dict[str, object]:
    predicted = distance <= THRESHOLD
    return {
        "pair_id": pair.id,
        "model_id": model.id,
        "dataset_id": dataset.id,
        "distance": distance,
        "threshold": THRESHOLD,
        "predicted_same": predicted,
        "correct": predicted == pair.same,
        "cscore": _cscore(distance),
    }


@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> Iterator[WebStore]:
    """The fixture store in SQLite, built once per test module."""
    built = build_web_store(f"sqlite:///{tmp_path_factory.mktemp('web-store') / 'web.sqlite'}")
    yield built
    built.store.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend_store(request: pytest.FixtureRequest, lfw_root: Path) -> Iterator[WebStore]:
    """The fixture store on each backend: the module's SQLite one, then one in a database of the
    test session's PostgreSQL server (:mod:`tests.pg`)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("web_store")
        return
    server: PgServer = request.getfixturevalue("pg_server")
    database = server.create_database()
    built = build_web_store(server.url(database))
    yield built
    built.store.close()
    server.drop_database(database)


@pytest.fixture(scope="module")
def client(web_store: WebStore) -> Iterator[TestClient]:
    """The app on the SQLite fixture store."""
    with TestClient(create_app(web_store.store, occlusion=TINY)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def any_client(backend_store: WebStore) -> Iterator[TestClient]:
    """The app on the fixture store of each backend (SQLite, PostgreSQL)."""
    with TestClient(create_app(backend_store.store, occlusion=TINY)) as test_client:
        yield test_client
