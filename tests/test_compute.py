"""Batch compute on SQLite and PostgreSQL: results equal the library's own evaluation, reruns
resume or do nothing, failures keep what is stored, X-Maps and export."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.synthetic import result_table
from xfv.cli import main
from xfv.datasets import read_protocol
from xfv.errors import CalibrationError, DatasetError, ModelError, XfvError
from xfv.method.calibration import Calibrator, out_of_fold_confidence
from xfv.method.cscore import CScoreCalibrator
from xfv.method.occlusion import OcclusionSettings
from xfv.method.thresholds import fold_thresholds, pair_thresholds
from xfv.models import get_model
from xfv.pipeline import compute
from xfv.pipeline.compute import ComputeOptions, compute_scores, compute_xmaps, select_pairs
from xfv.pipeline.evaluate import evaluate, pair_distances
from xfv.store import Store, open_store
from xfv.store.catalog import find_dataset, find_model
from xfv.store.ingest import ingest
from xfv.store.jobs import list_jobs
from xfv.store.models import FoldResult, Job, JobChunk, Pair, PairResult, XMapResult
from xfv.store.pairs import PairFiles, dataset_pair_files
from xfv.store.xmaps import pair_xmaps

QUIET = ComputeOptions(chunk_size=30, progress=False)
#: Small occlusion settings keep X-Map tests fast (16x16 faces, 2 patch sizes).
SMALL_OCCLUSION = OcclusionSettings(patch_sizes=(14, 28), stride=10)


@pytest.fixture
def store(store_url: str, synthetic_lfw: Path) -> Store:
    """A store with the synthetic dataset ingested as ``syn``."""
    opened = open_store(store_url)
    ingest(opened, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    return opened


def test_results_equal_the_librarys_evaluation(store: Store, synthetic_lfw: Path, fake_model: str) -> None:
    report = compute_scores(store, "syn", fake_model, QUIET)
    assert (report.pairs, report.chunks_pending, report.chunks_run, report.scored) == (200, 7, 7, True)
    pairs = read_protocol("lfw", synthetic_lfw)
    model = get_model(fake_model)
    expected = evaluate(pairs, model, "aligned", progress=False)
    assert report.accuracy == pytest.approx(expected.accuracy_mean, abs=1e-12) and report.accuracy < 1
    distances = pair_distances(pairs, model, "aligned", progress=False)
    thresholds = fold_thresholds(distances, pairs.same, pairs.folds)
    confidence = out_of_fold_confidence(
        lambda: CScoreCalibrator(bins=400), distances, pairs.same, pairs.folds, thresholds
    )
    per_pair = pair_thresholds(thresholds, pairs.folds)
    stored = result_table(store)
    assert [row[0] for row in stored] == list(range(200))
    assert np.allclose([row[1] for row in stored], distances, rtol=0, atol=1e-12)
    assert np.allclose([row[2] for row in stored], per_pair, rtol=0, atol=1e-12)
    assert [row[3] for row in stored] == list(distances <= per_pair)
    assert [row[4] for row in stored] == list((distances <= per_pair) == pairs.same)
    assert np.allclose([row[5] for row in stored], confidence.confidence, rtol=0, atol=1e-12)
    with store.transaction() as session:
        folds = session.scalars(select(FoldResult).order_by(FoldResult.fold)).all()
        assert [f.fold for f in folds] == list(range(10)) and all(f.n_pairs == 20 for f in folds)
        assert np.allclose([f.threshold for f in folds], thresholds)
        calibrator = Calibrator.from_dict(folds[0].calibration)
        assert calibrator.threshold_ == pytest.approx(thresholds[0]) and folds[0].cscore_k < 0
        [job] = list_jobs(session, find_dataset(session, "syn"))
        assert (job.kind, job.status, job.done_items, job.total_items) == ("scores", "done", 200, 200)


def test_a_rerun_does_nothing_and_new_cscore_options_only_rescore(store: Store, fake_model: str) -> None:
    compute_scores(store, "syn", fake_model, QUIET)
    first = result_table(store)
    again = compute_scores(store, "syn", fake_model, QUIET)
    assert (again.chunks_pending, again.chunks_run, again.scored) == (0, 0, False)
    assert result_table(store) == first
    rescored = compute_scores(store, "syn", fake_model, ComputeOptions(chunk_size=30, cscore_bins=50, progress=False))
    assert (rescored.chunks_run, rescored.scored) == (0, True)
    table = result_table(store)
    assert [row[:5] for row in table] == [row[:5] for row in first]
    assert [row[5] for row in table] != [row[5] for row in first]
    with store.transaction() as session:
        assert session.scalar(select(Job.params))["cscore"] == {"bins": 50}


def test_a_failed_scoring_step_writes_no_scores_and_a_rerun_finishes(
    store: Store, fake_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object, **kwargs: object) -> object:
        raise CalibrationError("the C-Score sigmoid fit did not converge: simulated")

    monkeypatch.setattr(compute, "out_of_fold_confidence", failing)
    with pytest.raises(CalibrationError, match="simulated"):
        compute_scores(store, "syn", fake_model, QUIET)
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PairResult)) == 200
        assert session.scalar(select(func.count()).where(PairResult.threshold.is_not(None))) == 0
        assert session.scalar(select(func.count()).select_from(FoldResult)) == 0
        job = session.scalar(select(Job))
        assert job is not None and job.status == "failed" and "simulated" in (job.error or "")
    monkeypatch.undo()
    report = compute_scores(store, "syn", fake_model, QUIET)
    assert (report.chunks_run, report.scored) == (0, True)
    assert all(row[5] is not None for row in result_table(store))


def test_bad_input_is_a_clear_error_and_keeps_the_results(
    store: Store, fake_model: str, synthetic_lfw: Path, tmp_path: Path
) -> None:
    compute_scores(store, "syn", fake_model, QUIET)
    before = result_table(store)
    with pytest.raises(ModelError, match="unknown model 'no-such-model'"):
        compute_scores(store, "syn", "no-such-model", QUIET)
    with pytest.raises(DatasetError, match=r"no dataset named 'nope' .*ingested: syn"):
        compute_scores(store, "nope", fake_model, QUIET)
    moved = Path(shutil.copytree(synthetic_lfw, tmp_path / "moved"))
    ingest(store, "lfw", moved, "moved", "aligned", progress=False)
    shutil.rmtree(moved / "lfw-deepfunneled" / "Person_003")
    with pytest.raises(DatasetError, match=r"2 image\(s\) of dataset 'moved' are missing .*Person_003"):
        compute_scores(store, "moved", fake_model, QUIET)
    assert result_table(store) == before
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PairResult)) == 200
        assert session.scalar(select(func.count()).select_from(Job)) == 1  # no job left behind for 'moved'


def test_two_local_worker_processes_give_the_same_results(
    store: Store, fake_model: str, synthetic_lfw: Path, tmp_path: Path
) -> None:
    report = compute_scores(store, "syn", fake_model, ComputeOptions(chunk_size=20, workers=2, progress=False))
    assert report.chunks_run == 10
    with store.transaction() as session:
        assert len(set(session.scalars(select(JobChunk.worker)))) == 2  # two processes shared the work
    serial = open_store(f"sqlite:///{tmp_path / 'serial.sqlite'}")
    ingest(serial, "lfw", synthetic_lfw, "syn", "aligned", progress=False)
    compute_scores(serial, "syn", fake_model, QUIET)
    assert result_table(serial) == result_table(store)


def test_pair_selection() -> None:
    files = [PairFiles(100 + i, i, i // 4, i % 4 < 2, "a", "b") for i in range(12)]
    correct = {100 + i: i != 5 for i in range(12)}
    assert select_pairs("0-2,7", files, correct) == [100, 101, 102, 107]
    assert select_pairs("fold=1", files, correct) == [104, 105, 106, 107]
    assert select_pairs("wrong,genuine", files, correct) == [100, 101, 104, 105, 108, 109]
    assert select_pairs("all", files, correct) == [100 + i for i in range(12)]
    for bad, message in [("12", "outside"), ("3-1", "outside"), ("fold=x", "number"), ("best", "cannot read")]:
        with pytest.raises(XfvError, match=message):
            select_pairs(bad, files, correct)
    with pytest.raises(XfvError, match="needs scored results"):
        select_pairs("wrong", files, {})


def test_xmaps_are_stored_per_pair_method_and_setting(store: Store, fake_model: str) -> None:
    compute_scores(store, "syn", fake_model, QUIET)
    report = compute_xmaps(store, "syn", fake_model, "0-2,wrong", SMALL_OCCLUSION, (1, 2, 3), QUIET)
    with store.transaction() as session:
        dataset, model = find_dataset(session, "syn"), find_model(session, "fake")
        wrong = {r for r, ok in _correctness(session).items() if not ok}
        positions = {f.pair_id: f.position for f in dataset_pair_files(session, dataset)}
        expected = {pid for pid, pos in positions.items() if pos <= 2} | wrong
        assert report.selected_pairs == report.pairs_computed == len(expected)
        assert session.scalar(select(func.count()).select_from(XMapResult)) == 3 * len(expected)
        views = pair_xmaps(session, min(expected), model)
        assert [v.method for v in views] == [1, 2, 3]
        names = {"image1_p14", "image1_p28", "image1_merged", "image2_p14", "image2_p28", "image2_merged"}
        assert all(set(v.maps) == names and v.maps["image1_merged"].shape == (16, 16) for v in views)
        method3 = views[2].maps
        assert np.array_equal(method3["image1_merged"], method3["image2_merged"])
        assert np.abs(views[0].maps["image1_merged"]).max() == pytest.approx(1, abs=1e-3)
        assert views[0].distance == pytest.approx(_distance(session, min(expected)), abs=1e-6)
    again = compute_xmaps(store, "syn", fake_model, "0-2,wrong", SMALL_OCCLUSION, (1, 2, 3), QUIET)
    assert again.pairs_computed == 0
    more = compute_xmaps(store, "syn", fake_model, "0-3", SMALL_OCCLUSION, (1, 2, 3), QUIET)
    assert more.selected_pairs == 4 and more.pairs_computed == 1
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(XMapResult)) == 3 * (
            len(expected | {_id_at(session, 3)})
        )


def test_a_new_method_is_computed_alone_for_pairs_that_have_the_others(
    store: Store, fake_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compute_scores(store, "syn", fake_model, QUIET)
    compute_xmaps(store, "syn", fake_model, "0-2", SMALL_OCCLUSION, (1, 2), QUIET)
    asked: list[tuple[int, ...]] = []
    explain = compute.explain_pair

    def recording(*args: Any, **kwargs: Any) -> Any:
        asked.append(tuple(args[3]))
        return explain(*args, **kwargs)

    monkeypatch.setattr(compute, "explain_pair", recording)
    report = compute_xmaps(store, "syn", fake_model, "0-3", SMALL_OCCLUSION, (1, 2, 3), QUIET)
    assert report.pairs_computed == 4 and sorted(asked) == [(1, 2, 3), (3,), (3,), (3,)]
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(XMapResult)) == 3 * 4


def _correctness(session: Session) -> dict[int, bool]:
    return dict(session.execute(select(PairResult.pair_id, PairResult.correct)).all())


def _distance(session: Session, pair_id: int) -> float:
    return float(session.scalar(select(PairResult.distance).where(PairResult.pair_id == pair_id)) or 0)


def _id_at(session: Session, position: int) -> int:
    return int(session.scalar(select(Pair.id).where(Pair.position == position)) or 0)


def test_cli_compute_and_export(
    store_url: str, synthetic_lfw: Path, fake_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--database-url", store_url]
    assert (
        main(
            [
                "ingest",
                "--protocol",
                "lfw",
                "--root",
                str(synthetic_lfw),
                "--name",
                "syn",
                "--input-mode",
                "aligned",
                "--quiet",
                *db,
            ]
        )
        == 0
    )
    assert main(["compute", "--dataset", "syn", "--model", fake_model, "--chunk-size", "50", "--quiet", *db]) == 0
    out = capsys.readouterr().out
    assert "syn x fake: 200 pairs, accuracy 0.9" in out and "4 chunk(s) computed now" in out
    assert main(["export", "--dataset", "syn", "--model", "fake", "--out", str(tmp_path / "r.csv"), *db]) == 0
    assert main(["export", "--dataset", "syn", "--model", "fake", "--out", str(tmp_path / "r.parquet"), *db]) == 0
    with open(tmp_path / "r.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200
    assert list(rows[0]) == [
        "dataset", "model", "position", "fold", "same", "image1", "identity1", "quality1",
        "image2", "identity2", "quality2", "distance", "threshold", "predicted_same", "correct", "cscore",
    ]  # fmt: skip
    assert rows[0]["image1"] == "lfw-deepfunneled/Person_000/Person_000_0001.jpg" and rows[0]["same"] == "True"
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert [r["distance"] for r in table] == [float(r["distance"]) for r in rows]
    assert [r["cscore"] for r in table] == [row[5] for row in result_table(open_store(store_url))]
    assert main(["export", "--dataset", "syn", "--model", "fake", "--out", str(tmp_path / "r.xlsx"), *db]) == 2
    assert "unknown export format 'xlsx'" in capsys.readouterr().err
