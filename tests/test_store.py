"""The store itself, on SQLite and on a real PostgreSQL server: schema and migrations, connection
errors, models, the pair table query, and X-Map blobs."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    inspect,
    select,
)

from xfv.cli import main
from xfv.errors import ModelError, XfvError
from xfv.models.base import ModelSpec
from xfv.pipeline.compute import ComputeOptions, compute_scores, score_dataset
from xfv.store import StoreError, open_store
from xfv.store.arrays import pack_maps, unpack_maps
from xfv.store.catalog import find_dataset, find_model, register_model
from xfv.store.ingest import ingest
from xfv.store.jobs import claim_finished_chunk, find_or_create_job, job_key, pending_chunks
from xfv.store.migrate import alembic_config, current_revision, head_revision, upgrade
from xfv.store.models import Base, Job, Model, Pair, PairResult, Review
from xfv.store.pair_table import PairQuery, query_pairs
from xfv.store.results import add_distances, distance_table


def test_migrations_build_exactly_the_models(store_url: str) -> None:
    store = open_store(store_url)
    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "models and migrations differ: add a migration (python -m xfv.store.migrate)"


def test_reviews_the_web_platform_stored_itself_move_into_the_store(store_url: str, synthetic_lfw: Path) -> None:
    """Before revision 0002 the web platform created ``web_reviews`` outside the migrations; the
    upgrade copies its reviews (in order) into ``reviews`` and drops it."""
    store = open_store(store_url, migrate=False)
    with store.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    ingest(store, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    legacy = Table(
        "web_reviews",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("pair_id", Integer, nullable=False),
        Column("model_id", Integer, nullable=False),
        Column("verdict", String(10), nullable=False),
        Column("comment", Text, nullable=False),
        Column("reviewer", String(100), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    when = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    with store.transaction() as session:
        model = register_model(session, ModelSpec(name="m", input_size=16, embedding_size=8, alignment="arcface"))
        pair_id = session.scalar(select(Pair.id).limit(1))
        legacy.create(session.connection())
        session.execute(
            insert(legacy),
            [
                {"pair_id": pair_id, "model_id": model.id, "verdict": verdict, "comment": comment,
                 "reviewer": "ana", "created_at": when}
                for verdict, comment in (("agree", "fine"), ("disagree", "not the same nose"))
            ],
        )  # fmt: skip
    upgrade(store.engine)
    assert "web_reviews" not in inspect(store.engine).get_table_names()
    with store.transaction() as session:
        reviews = session.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.pair_id, r.verdict, r.comment, r.reviewer) for r in reviews] == [
            (pair_id, "agree", "fine", "ana"),
            (pair_id, "disagree", "not the same nose", "ana"),
        ]
        session.add(Review(pair_id=pair_id, model_id=model.id, verdict="agree"))  # ids continue after the copies
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_opening_twice_keeps_the_data(store_url: str) -> None:
    store = open_store(store_url)
    with store.transaction() as session:
        register_model(
            session, ModelSpec(name="m", input_size=16, embedding_size=8, alignment="arcface", weights_hash="abc")
        )
    store.close()
    with open_store(store_url).transaction() as session:
        assert session.scalar(select(func.count()).select_from(Model)) == 1


def test_default_store_is_a_sqlite_file_in_xfv_home(xfv_home: Path) -> None:
    store = open_store()
    assert store.engine.url.get_backend_name() == "sqlite"
    assert Path(store.engine.url.database or "") == xfv_home / "xfv.sqlite"
    assert (xfv_home / "xfv.sqlite").is_file()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    url = f"postgresql://xfv:secret@127.0.0.1:{_closed_port()}/xfv"
    with pytest.raises(StoreError, match="cannot connect to the database") as caught:
        open_store(url)
    assert "secret" not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize("url", ["not a url", "mysql+nodriver://x@localhost/db"])
def test_unusable_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(StoreError):
        open_store(url)


def test_cli_reports_an_unreachable_database_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://xfv:secret@127.0.0.1:{_closed_port()}/xfv"
    assert main(["export", "--dataset", "x", "--model", "m", "--out", "x.csv", "--database-url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xfv: error: cannot connect to the database") and "\n" not in err and "secret" not in err


def test_a_model_name_cannot_change_its_weights(store_url: str) -> None:
    store = open_store(store_url)
    spec = ModelSpec(name="m", input_size=16, embedding_size=8, alignment="arcface", weights_hash="abc")
    with store.transaction() as session:
        first = register_model(session, spec)
        assert register_model(session, spec).id == first.id
    with pytest.raises(ModelError, match="another name"), store.transaction() as session:
        register_model(
            session, ModelSpec(name="m", input_size=16, embedding_size=8, alignment="arcface", weights_hash="def")
        )
    with store.transaction() as session:
        assert find_model(session, "m").weights_hash == "abc"


def test_a_chunk_is_claimed_once_so_its_results_are_written_once(store_url: str, synthetic_lfw: Path) -> None:
    store = open_store(store_url)
    ingest(store, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    with store.transaction() as session:
        dataset = find_dataset(session, "syn")
        model = register_model(session, ModelSpec(name="m", input_size=16, embedding_size=8, alignment="arcface"))
        job = find_or_create_job(
            session, job_key("scores", dataset=dataset.id), "scores", dataset, model, {}, [[1, 2], [3]]
        )
        assert (
            find_or_create_job(session, job_key("scores", dataset=dataset.id), "scores", dataset, model, {}, []).id
            == job.id
        )
        first, second = pending_chunks(session, job)
    claims = []
    for _ in range(2):  # e.g. two drivers racing on one job
        with store.transaction() as session:
            claims.append(claim_finished_chunk(session, first, "worker", 1.0))
    assert claims == [True, False]
    with store.transaction() as session:
        job = session.get_one(Job, job.id)
        assert (job.done_items, job.total_items, job.status) == (2, 3, "running")
        assert [c.position for c in pending_chunks(session, job)] == [second.position]


def test_map_blobs_keep_tiny_raw_maps_and_merged_maps() -> None:
    rng = np.random.default_rng(0)
    maps = {
        "image1_p7": rng.normal(0, 3e-6, (112, 112)),
        "image1_merged": rng.uniform(-1, 1, (112, 112)),
        "zero": np.zeros((4, 4)),
    }
    blob = pack_maps(maps)
    restored = unpack_maps(blob)
    assert set(restored) == set(maps)
    for name, values in maps.items():
        peak = np.abs(values).max() or 1.0
        assert np.abs(restored[name] - values).max() <= 1e-3 * peak
    assert len(blob) < 2 * 2 * 112 * 112 + 2000  # float16, compressed


@pytest.fixture
def computed(store_url: str, synthetic_lfw: Path, fake_model: str) -> str:
    """A store holding the synthetic dataset ``syn`` scored by the fake model."""
    store = open_store(store_url)
    ingest(store, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    compute_scores(store, "syn", fake_model, ComputeOptions(chunk_size=50, progress=False))
    return store_url


def test_pair_query_filters_sorts_and_pages(computed: str, synthetic_lfw: Path) -> None:
    store = open_store(computed)
    with store.transaction() as session:
        everything = query_pairs(session, PairQuery(dataset="syn", model="fake", per_page=1000))
        assert everything.total == 200 and [r.position for r in everything.rows] == list(range(200))
        assert everything.model == "fake" and {r.dataset for r in everything.rows} == {"syn"}
        wrong = [r for r in everything.rows if not r.correct]
        page = query_pairs(session, PairQuery(dataset="syn", model="fake", correct=False))
        assert page.total == len(wrong) > 0
        genuine_fold3 = query_pairs(session, PairQuery(same=True, fold=3))  # every dataset, the default model
        assert genuine_fold3.model == "fake"
        assert genuine_fold3.total == 10 and all(r.same and r.fold == 3 for r in genuine_fold3.rows)
        by_cscore = query_pairs(
            session, PairQuery(dataset="syn", model="fake", sort="cscore", descending=True, per_page=1000)
        )
        cscores = [r.cscore for r in by_cscore.rows]
        assert cscores == sorted(cscores, reverse=True)
        pages = [
            query_pairs(session, PairQuery(dataset="syn", model="fake", sort="distance", page=p, per_page=30))
            for p in range(1, 8)
        ]
        assert pages[0].pages == 7 and len(pages[-1].rows) == 20 and pages[-1].offset == 180
        ids = [r.pair_id for p in pages for r in p.rows]
        assert sorted(ids) == sorted(r.pair_id for r in everything.rows)
        distances = [r.distance for p in pages for r in p.rows]
        assert distances == sorted(distances)
        named = query_pairs(session, PairQuery(identity="person_007"))
        assert named.total >= 2 and all("Person_007" in (r.identity1, r.identity2) for r in named.rows)
        assert all((synthetic_lfw / r.image1_path).is_file() and (synthetic_lfw / r.image2_path).is_file()
                   for r in named.rows)  # fmt: skip
        low = query_pairs(session, PairQuery(dataset="syn", max_quality=0.745, sort="quality1"))
        assert low.total > 0 and all(min(r.quality1, r.quality2) <= 0.745 for r in low.rows)
        assert [r.quality1 for r in low.rows] == sorted(r.quality1 for r in low.rows)


def test_pair_query_before_any_results(store_url: str, synthetic_lfw: Path) -> None:
    store = open_store(store_url)
    ingest(store, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    with store.transaction() as session:
        page = query_pairs(session, PairQuery(dataset="syn", fold=2, sort="identity1"))
        assert (page.model, page.total) == (None, 20)
        assert all(r.distance is None and r.cscore is None for r in page.rows)
        with pytest.raises(XfvError, match="needs computed results"):
            query_pairs(session, PairQuery(dataset="syn", correct=True))


def test_sorting_every_dataset_of_a_store_holding_several(computed: str, synthetic_lfw: Path) -> None:
    """A result sort over every dataset orders the rows of all of them, and a page is a slice of that order."""
    store = open_store(computed)
    ingest(store, "lfw", synthetic_lfw, "syn2", "aligned", progress=False)
    with store.transaction() as session:
        model = find_model(session, "fake")
        first, second = find_dataset(session, "syn"), find_dataset(session, "syn2")
        second_pairs = session.scalars(select(Pair.id).where(Pair.dataset_id == second.id).order_by(Pair.position))
        distances = distance_table(session, first, model).distances + 1e-3
        add_distances(session, second, model, list(second_pairs), distances)
        score_dataset(session, second, model, cscore_bins=400)
    with store.sessions() as session:
        page = query_pairs(session, PairQuery(sort="cscore", descending=True, per_page=30))
        everything = query_pairs(session, PairQuery(sort="cscore", descending=True, per_page=400))
        in_order = query_pairs(session, PairQuery(per_page=400))
    assert page.total == everything.total == 400 and {r.dataset for r in everything.rows} == {"syn", "syn2"}
    cscores = [r.cscore for r in everything.rows]
    assert cscores == sorted(cscores, reverse=True) and page.rows == everything.rows[:30]
    assert [(r.dataset, r.position) for r in in_order.rows] == sorted((r.dataset, r.position) for r in in_order.rows)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (PairQuery(dataset="syn", sort="colour"), "cannot sort"),  # type: ignore[arg-type]
        (PairQuery(dataset="syn", per_page=0), "per_page"),
        (PairQuery(dataset="nope"), "no dataset named 'nope'"),
        (PairQuery(dataset="syn", model="nope"), "no model named 'nope'"),
    ],
)
def test_pair_query_rejects_what_it_cannot_answer(computed: str, query: PairQuery, message: str) -> None:
    with pytest.raises(XfvError, match=message), open_store(computed).transaction() as session:
        query_pairs(session, query)


def test_results_are_one_row_per_pair_and_model(computed: str) -> None:
    with open_store(computed).transaction() as session:
        assert session.scalar(select(func.count()).select_from(PairResult)) == 200
        assert session.scalar(select(func.count()).where(PairResult.cscore.is_(None))) == 0
