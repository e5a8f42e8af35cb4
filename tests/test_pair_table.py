"""The in-memory pair table with several models, on a synthetic store computed by ``xfv compute``
with two fake models (``--model A,B``): every query answered as a brute-force reference over the
store's rows does (filters, "models agree/disagree", sorts by any model's column, pages,
neighbours), on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.synthetic import write_fake_model
from xfv.cli import main
from xfv.errors import XfvError
from xfv.store import open_store
from xfv.store.models import Dataset, Identity, Image, Model, Pair, PairResult
from xfv.store.overview import overview
from xfv.store.pair_table import RESULT_SORTS, SORT_COLUMNS, PairQuery, PairTable, query_pairs


@pytest.fixture()
def two_models(store_url: str, synthetic_lfw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The synthetic dataset ``syn`` with the results of ``fake`` and ``fake2``, computed in one command."""
    db = ["--database-url", store_url]
    ingest = ["ingest", "--protocol", "lfw", "--root", str(synthetic_lfw), "--name", "syn", "--input-mode", "aligned"]
    assert main([*ingest, "--quiet", *db]) == 0
    first, second = write_fake_model(tmp_path / "a", "fake", 0), write_fake_model(tmp_path / "b", "fake2", 7)
    assert main(["compute", "--dataset", "syn", "--model", f"{first},{second}", "--chunk-size", "50", *db]) == 0
    captured = capsys.readouterr()
    assert "syn x fake: 200 pairs" in captured.out and "syn x fake2: 200 pairs" in captured.out
    assert "model 2 of 2: " in captured.err, "each model in turn, with its progress"
    return store_url


@dataclass
class _Pair:
    """One pair as the reference sees it: its columns and each model's result tuple."""

    id: int
    dataset: str
    position: int
    fold: int
    same: bool
    names: tuple[str, str]
    qualities: tuple[float, float]
    results: dict[str, tuple[Any, ...]]  # model -> (distance, threshold, predicted, correct, cscore)


def _reference(url: str) -> list[_Pair]:
    """Every pair with its results, read row by row through the ORM."""
    store = open_store(url)
    with store.sessions() as session:
        results: dict[int, dict[str, tuple[Any, ...]]] = {}
        for r, name in session.execute(select(PairResult, Model.name).join(Model)):
            results.setdefault(r.pair_id, {})[name] = (r.distance, r.threshold, r.predicted_same, r.correct, r.cscore)
        names = dict(session.execute(select(Image.id, Identity.name).join(Identity)).all())
        datasets = dict(session.execute(select(Dataset.id, Dataset.name)).all())
        pairs = [
            _Pair(p.id, datasets[p.dataset_id], p.position, p.fold, p.same, (names[p.image1_id], names[p.image2_id]),
                  (p.image1.quality, p.image2.quality), results.get(p.id, {}))
            for p in session.scalars(select(Pair))
        ]  # fmt: skip
    store.close()
    return pairs


RESULT_INDEX = {"distance": 0, "threshold": 1, "prediction": 2, "correct": 3, "cscore": 4}


def _expected(pairs: list[_Pair], q: PairQuery) -> list[int]:
    """The pair ids ``q`` matches, in its order, by brute force."""
    model = q.model or "fake"
    compared = list(q.models) if q.models is not None else ["fake", "fake2"]
    kept = []
    for p in pairs:
        mine = p.results.get(model)
        if mine is None or (q.fold is not None and p.fold != q.fold) or (q.same is not None and p.same != q.same):
            continue
        if q.predicted_same is not None and mine[2] != q.predicted_same:
            continue
        if q.correct is not None and mine[3] != q.correct:
            continue
        if q.max_cscore is not None and not mine[4] <= q.max_cscore:
            continue
        if q.min_quality is not None and not min(p.qualities) >= q.min_quality:
            continue
        if q.identity and not any(q.identity.lower() in name.lower() for name in p.names):
            continue
        decisions = {p.results[m][2] for m in compared if m in p.results}
        if q.agreement == "disagree" and len(decisions) < 2:
            continue
        if q.agreement == "agree" and not (len(decisions) == 1 and sum(m in p.results for m in compared) >= 2):
            continue
        kept.append(p)

    def key(p: _Pair) -> tuple[Any, ...]:
        if q.sort in RESULT_SORTS:
            value = p.results[q.sort_model or model][RESULT_INDEX[q.sort]]
            return (float(value),)
        return {
            "position": (p.dataset, p.position),
            "dataset": (p.dataset,),
            "fold": (p.fold,),
            "identity1": (p.names[0],),
            "identity2": (p.names[1],),
            "label": (p.same,),
            "quality1": (p.qualities[0],),
            "quality2": (p.qualities[1],),
        }[q.sort]

    ordered = sorted(kept, key=lambda p: (*key(p), p.id), reverse=q.descending)
    return [p.id for p in ordered]


def test_every_query_matches_a_brute_force_reference(two_models: str) -> None:
    pairs = _reference(two_models)
    store = open_store(two_models)
    rng = random.Random(0)
    with store.sessions() as session:
        table = PairTable.load(session)
    assert table.models == ["fake", "fake2"] and table.datasets == ["syn"] and len(table) == 200
    disagreeing = _expected(pairs, PairQuery(agreement="disagree"))
    assert 0 < len(disagreeing) < 200, "the two fake models disagree on some pairs, not all"
    for _ in range(300):
        q = PairQuery(
            model=rng.choice([None, "fake", "fake2"]),
            fold=rng.choice([None, None, 3]),
            same=rng.choice([None, True, False]),
            predicted_same=rng.choice([None, None, True]),
            correct=rng.choice([None, None, False]),
            identity=rng.choice([None, None, "person_00", "SON_01"]),
            max_cscore=rng.choice([None, 0.8]),
            min_quality=rng.choice([None, 0.7]),
            agreement=rng.choice([None, "agree", "disagree"]),
            models=rng.choice([None, ("fake",), ("fake2", "fake")]),
            sort=rng.choice(SORT_COLUMNS),
            sort_model=rng.choice([None, "fake2"]),
            descending=rng.random() < 0.5,
            per_page=rng.choice([7, 50]),
            page=rng.choice([1, 2]),
        )
        model = q.model or (q.models[0] if q.models else "fake")
        compared = list(dict.fromkeys([model, *(q.models if q.models is not None else ["fake", "fake2"])]))
        expected = _expected(pairs, PairQuery(**{**q.__dict__, "model": model, "models": tuple(compared)}))
        page = table.query(q)
        assert page.total == len(expected), q
        assert [r.pair_id for r in page.rows] == expected[page.offset : page.offset + q.per_page], q
        assert page.model == model and page.models == compared, q
        for row in page.rows:
            assert set(row.results) == set(compared)
            mine = row.results[model]
            assert (row.distance, row.predicted_same, row.cscore) == (mine.distance, mine.predicted_same, mine.cscore)
        if expected:
            at = rng.randrange(len(expected))
            around = table.neighbours(q, expected[at], rng.choice([None, at, at + 1]))
            previous = expected[at - 1] if at > 0 else None
            following = expected[at + 1] if at + 1 < len(expected) else None
            assert (around.index, around.total, around.previous, around.next) == (
                at,
                len(expected),
                previous,
                following,
            )


def test_the_landing_page_counts_the_pairs_the_models_disagree_on(two_models: str) -> None:
    expected = len(_expected(_reference(two_models), PairQuery(agreement="disagree")))
    with open_store(two_models).sessions() as session:
        (syn,) = overview(session).datasets
    assert [m.model for m in syn.models] == ["fake", "fake2"] and syn.disagreements == expected


def test_names_the_table_lacks_are_clear_errors(two_models: str) -> None:
    with open_store(two_models).sessions() as session:
        for q, message in [
            (PairQuery(models=("fake", "nope")), "no model named 'nope' in the store \\(stored: fake, fake2\\)"),
            (PairQuery(sort="cscore", sort_model="nope"), "no model named 'nope'"),
            (PairQuery(dataset="nope"), "no dataset named 'nope' in the store \\(ingested: syn\\)"),
            (PairQuery(agreement="maybe"), "agreement must be one of agree, disagree"),  # type: ignore[arg-type]
        ]:
            with pytest.raises(XfvError, match=message):
                query_pairs(session, q)


def test_compute_model_lists_are_checked_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    for value, message in [("dlib,,x", "an empty model name"), ("all,dlib", "do not list others beside it")]:
        assert main(["compute", "--dataset", "syn", "--model", value]) == 2
        assert message in capsys.readouterr().err
