"""Real data: a slice of LFW (``../shared/data/lfw``) ingested and computed with the default model
agrees with ``xfv evaluate`` on the same slice, and its quality scores are sane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import lfw_slice
from tests.synthetic import result_table
from xfv.cli import main
from xfv.datasets import read_protocol
from xfv.models import DEFAULT_MODEL, get_model
from xfv.pipeline.compute import ComputeOptions, compute_scores
from xfv.pipeline.evaluate import evaluate
from xfv.store import open_store
from xfv.store.ingest import ingest
from xfv.store.overview import overview
from xfv.store.pair_table import PairQuery, query_pairs

PER_CLASS = 5  # per fold: 5 genuine + 5 impostor pairs, 100 pairs in all


def test_lfw_slice_with_the_default_model_matches_evaluate(lfw_root: Path, tmp_path: Path) -> None:
    root = lfw_slice(lfw_root, tmp_path / "lfw-slice", PER_CLASS)
    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    report = ingest(store, "lfw", root, "lfw-slice", progress=False)
    assert (report.pairs, report.input_mode) == (10 * 2 * PER_CLASS, "lfw-funneled")
    scores = compute_scores(store, "lfw-slice", DEFAULT_MODEL, ComputeOptions(chunk_size=25, progress=False))
    expected = evaluate(read_protocol("lfw", root), get_model(DEFAULT_MODEL), "lfw-funneled", progress=False)
    assert scores.accuracy == pytest.approx(expected.accuracy_mean, abs=1e-12) and scores.accuracy > 0.9
    table = result_table(store, "lfw-slice", DEFAULT_MODEL)
    assert np.allclose([row[1] for row in table], expected.distances, rtol=0, atol=1e-12)
    assert all(0.5 <= row[5] <= 1 for row in table)  # C-Scores
    with store.transaction() as session:
        rows = query_pairs(session, PairQuery(dataset="lfw-slice", sort="quality1", per_page=1000)).rows
    qualities = [q for r in rows for q in (r.quality1, r.quality2)]
    assert all(0 <= q <= 1 for q in qualities) and np.median(qualities) > 0.3


def test_two_real_models_on_lfw_side_by_side(
    lfw_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``xfv compute --model dlib,dlib-int8`` on a slice of real LFW: the pair table shows both
    models' real results side by side, and "models disagree" lists exactly the pairs whose stored
    decisions differ (the landing page's count too)."""
    root = lfw_slice(lfw_root, tmp_path / "lfw-slice", 3)
    db = ["--database-url", f"sqlite:///{tmp_path / 'store.sqlite'}"]
    assert main(["ingest", "--protocol", "lfw", "--root", str(root), "--name", "lfw-slice", "--quiet", *db]) == 0
    assert main(["compute", "--dataset", "lfw-slice", "--model", "dlib,dlib-int8", "--quiet", *db]) == 0
    out = capsys.readouterr().out
    assert "lfw-slice x dlib: 60 pairs" in out and "lfw-slice x dlib-int8: 60 pairs" in out
    store = open_store(db[1])
    expected = {
        pair: model
        for pair, model in zip(result_table(store, "lfw-slice", "dlib"), result_table(store, "lfw-slice", "dlib-int8"))
    }
    with store.sessions() as session:
        page = query_pairs(session, PairQuery(per_page=100))
        split = query_pairs(session, PairQuery(agreement="disagree", per_page=100))
        (dataset,) = overview(session).datasets
    assert page.models == ["dlib", "dlib-int8"] and page.total == 60
    by_position = {row.position: row for row in page.rows}
    for dlib, int8 in expected.items():
        results = by_position[dlib[0]].results
        assert (results["dlib"].distance, results["dlib-int8"].distance) == (dlib[1], int8[1])
        assert abs(dlib[1] - int8[1]) < 0.02, "int8 stays close to float32"
    disagreeing = sorted(dlib[0] for dlib, int8 in expected.items() if dlib[3] != int8[3])
    assert sorted(row.position for row in split.rows) == disagreeing and split.total == len(disagreeing)
    assert dataset.disagreements == len(disagreeing)
