"""XQLFW pairs on LFW images degraded by xfv: the recipe, determinism, resuming, errors, the reader,
ingest, the web pages, evaluation and the cross-dataset calibration report, on slices of the real
XQLFW list and real LFW images (the full 7,263-image run is a README figure)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import LFW_IMAGES, LFW_ROOT, SHARED, first_of_each_fold, lfw_slice
from xfv.cache import content_hash
from xfv.datasets import read_protocol, xqlfw_synth
from xfv.errors import DatasetError, XfvError
from xfv.pipeline import degrade
from xfv.pipeline.degrade import POOR_QUALITY, assign_sides, draw_degradation, make_xqlfw_synth

XQLFW_PAIRS = SHARED / "data" / "xqlfw" / "xqlfw_pairs.txt"


def xfv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xfv.cli", *args], capture_output=True, text=True, timeout=1200)


def slice_pairs(path: Path, per_class: int) -> Path:
    """A slice of the real XQLFW list (:func:`first_of_each_fold`), in its format (CRLF endings)."""
    path.write_text("\r\n".join(first_of_each_fold(XQLFW_PAIRS, per_class)) + "\r\n", newline="")
    return path


def tree_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def real_data() -> None:
    if not XQLFW_PAIRS.is_file() or not (LFW_ROOT / "pairs.txt").is_file():
        pytest.skip(f"real XQLFW pair list or LFW not found under {SHARED / 'data'}")


@pytest.fixture(scope="module")
def small_pairs(real_data: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 pairs (80 images) of the real list."""
    return slice_pairs(tmp_path_factory.mktemp("pairs") / "xqlfw_pairs.txt", per_class=2)


@pytest.fixture(scope="module")
def small_tree(small_pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trees") / "seed0"
    make_xqlfw_synth(LFW_ROOT, small_pairs, out, seed=0, progress=False)
    return out


# --- the recipe ----------------------------------------------------------------------------------


def test_draws_depend_only_on_seed_and_name() -> None:
    names = [f"images/P{i}/P{i}_0001.jpg" for i in range(3000)]
    first = [draw_degradation(0, name, "low", 0.8) for name in names]
    assert first == [draw_degradation(0, name, "low", 0.8) for name in reversed(names)][::-1]
    assert sum(a != b for a, b in zip(first, (draw_degradation(1, name, "low", 0.8) for name in names))) > 2900
    scales = np.array([d.scale for d in first])
    assert set(np.unique(scales)) == {2, 4, 8} and np.all(np.abs(np.bincount(scales)[[2, 4, 8]] - 1000) < 100)
    assert all(0.2 * d.scale <= d.blur_sigma <= 0.8 * d.scale and 25 <= d.jpeg_quality <= 75 for d in first)
    assert draw_degradation(0, names[0], "high", 0.8).action == "kept"
    assert draw_degradation(0, names[0], "low", POOR_QUALITY - 0.01).action == "kept-poor"


def test_sides_put_the_poorer_image_of_most_pairs_on_the_low_side() -> None:
    chain = [("a", "b"), ("b", "c"), ("c", "d")]
    sides = assign_sides(chain, {"a": 0.9, "b": 0.2, "c": 0.8, "d": 0.3}, seed=0)
    assert sides == {"a": "high", "b": "low", "c": "high", "d": "low"}
    triangle = [("x", "y"), ("y", "z"), ("z", "x")]
    sides = assign_sides(triangle, {"x": 0.5, "y": 0.5, "z": 0.5}, seed=3)
    assert sum(sides[a] != sides[b] for a, b in triangle) == 2  # the most an odd cycle allows


# --- generation: determinism, resuming, errors ---------------------------------------------------


def test_the_same_seed_gives_byte_identical_files_and_another_seed_differs(
    small_pairs: Path, small_tree: Path, tmp_path: Path
) -> None:
    again = make_xqlfw_synth(LFW_ROOT, small_pairs, tmp_path / "again", seed=0, progress=False)
    other = make_xqlfw_synth(LFW_ROOT, small_pairs, tmp_path / "other", seed=1, progress=False)
    assert other.header.seed == 1 and other.written == 80
    first = tree_files(small_tree)
    assert again.written == 80 and tree_files(tmp_path / "again") == first
    assert len(first) == 82  # 80 images, the pair list, the manifest: no journal, no partial file
    assert first[xqlfw_synth.PAIRS_FILE] == small_pairs.read_bytes()
    seeded = tree_files(tmp_path / "other")
    changed = [name for name in first if first[name] != seeded[name]]
    assert xqlfw_synth.MANIFEST_FILE in changed and len(changed) > 20

    manifest = json.loads(first[xqlfw_synth.MANIFEST_FILE])
    assert (
        manifest["seed"] == 0
        and manifest["dataset"] == "xqlfw-synth"
        and "not the official XQLFW" in manifest["description"]
    )
    for record in manifest["images"]:
        source = (LFW_IMAGES / record["path"].removeprefix("images/")).read_bytes()
        data = first[record["path"]]
        assert content_hash(data) == record["sha256"]
        assert (data == source) == (record["action"] != "degraded")
        if record["action"] == "degraded":
            assert record["quality_after"] < record["quality_before"]
    summary = manifest["summary"]
    assert (
        summary["pairs_across_sides"] >= 38
        and summary["mean_pair_quality_gap_after"] > 2 * summary["mean_pair_quality_gap_before"]
    )


def test_an_interrupted_run_resumes_to_the_same_bytes(
    small_pairs: Path, small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resumed"
    made = degrade._make_image

    def interrupted_after_seven(*args: Any) -> Any:
        if len(list(out.rglob("*.jpg"))) >= 7:
            raise KeyboardInterrupt
        return made(*args)

    monkeypatch.setattr(degrade, "_make_image", interrupted_after_seven)
    with pytest.raises(KeyboardInterrupt):
        make_xqlfw_synth(LFW_ROOT, small_pairs, out, seed=0, progress=False)
    monkeypatch.undo()
    assert (out / xqlfw_synth.JOURNAL_FILE).is_file() and not (out / xqlfw_synth.MANIFEST_FILE).exists()
    with pytest.raises(DatasetError, match="generation unfinished"):
        read_protocol("xqlfw", out)
    journal = out / xqlfw_synth.JOURNAL_FILE
    journal.write_text(journal.read_text() + '{"path": "images/cut sh')  # a line cut short by a kill
    victim = sorted(out.rglob("*.jpg"))[0]
    victim.with_name(victim.name + ".partial").write_bytes(b"half an image")  # killed while writing

    calls = {"replace": 0}
    real_replace = os.replace

    def killed_on_the_third_write(source: Any, target: Any) -> None:
        calls["replace"] += 1
        if calls["replace"] == 3:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(degrade.os, "replace", killed_on_the_third_write)
    with pytest.raises(KeyboardInterrupt):
        make_xqlfw_synth(LFW_ROOT, small_pairs, out, seed=0, progress=False)
    monkeypatch.undo()
    assert list(out.rglob("*.partial"))  # the write it was killed in

    report = make_xqlfw_synth(LFW_ROOT, small_pairs, out, seed=0, progress=False)
    assert 0 < report.written < 80
    assert tree_files(out) == tree_files(small_tree)


def test_a_finished_tree_is_verified_and_left_alone(small_pairs: Path, small_tree: Path) -> None:
    times = {path: path.stat().st_mtime_ns for path in small_tree.rglob("*")}
    report = make_xqlfw_synth(LFW_ROOT, small_pairs, small_tree, seed=0, progress=False)
    assert report.written == 0 and report.summary["images"] == 80
    assert {path: path.stat().st_mtime_ns for path in small_tree.rglob("*")} == times


def test_a_damaged_image_is_made_again(small_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "damaged"
    make_xqlfw_synth(LFW_ROOT, small_pairs, out, seed=0, progress=False)
    reference = tree_files(out)
    victim = sorted(out.rglob("*.jpg"))[5]
    victim.write_bytes(b"not this")
    assert make_xqlfw_synth(LFW_ROOT, small_pairs, out, seed=0, progress=False).written == 1
    assert tree_files(out) == reference


def test_bad_inputs_are_one_line_errors(small_pairs: Path, small_tree: Path, tmp_path: Path) -> None:
    def error(*args: str) -> str:
        result = xfv("make-xqlfw-synth", "--lfw", str(LFW_ROOT), "--quiet", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    assert "holds xqlfw-synth images of seed 0, not seed 1" in error(
        "--pairs", str(small_pairs), "--out", str(small_tree), "--seed", "1"
    )
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert "not empty and holds no make-xqlfw-synth data" in error(
        "--pairs", str(small_pairs), "--out", str(tmp_path / "busy")
    )
    missing = tmp_path / "missing.txt"
    text = small_pairs.read_text().splitlines()
    text[1] = "Nobody_Here\t1\t2"
    missing.write_text("\n".join(text) + "\n")
    line = error("--pairs", str(missing), "--out", str(tmp_path / "new"))
    assert "2 image(s) of" in line and "are missing under" in line and "Nobody_Here/Nobody_Here_0002.jpg" in line
    broken = tmp_path / "broken.txt"
    broken.write_text("10\t2\nAaron_Eckhart\tone\t2\n")
    assert f"{broken}:2: image number 'one'" in error("--pairs", str(broken), "--out", str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()  # nothing written before the inputs were checked
    with pytest.raises(XfvError, match="outside the LFW folder"):
        make_xqlfw_synth(LFW_ROOT, small_pairs, LFW_ROOT / "degraded", progress=False)
    folder = os.open(small_tree, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # as a run in progress holds it
        with pytest.raises(XfvError, match="another make-xqlfw-synth run is writing this folder"):
            make_xqlfw_synth(LFW_ROOT, small_pairs, small_tree, progress=False)
    finally:
        os.close(folder)


# --- reading, ingest, the web pages --------------------------------------------------------------


def test_the_reader_takes_the_tree_with_its_caveats(small_pairs: Path, small_tree: Path) -> None:
    pairs = read_protocol("xqlfw", small_tree)
    assert pairs.name == "xqlfw-synth" and pairs.input_mode == "lfw-funneled" and len(pairs) == 40
    assert np.bincount(pairs.folds).tolist() == [4] * 10 and pairs.same.sum() == 20
    assert all(p.image1.is_file() and p.image1.is_relative_to(small_tree / "images") for p in pairs.pairs)
    assert pairs.notes[0].startswith("XQLFW pairs, synthetic degradation (xfv recipe 1, seed 0)")


def test_ingest_stores_each_images_quality_and_the_pages_show_it(small_tree: Path, tmp_path: Path) -> None:
    from sqlalchemy import select

    from xfv.pipeline.compute import ComputeOptions, compute_scores
    from xfv.store import open_store
    from xfv.store.ingest import ingest
    from xfv.store.models import Image
    from xfv.web import create_app

    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    report = ingest(store, "xqlfw", small_tree, progress=False)
    assert (report.name, report.input_mode, report.pairs, report.images) == ("xqlfw-synth", "lfw-funneled", 40, 80)
    manifest = {r["path"]: r for r in json.loads((small_tree / xqlfw_synth.MANIFEST_FILE).read_text())["images"]}
    with store.transaction() as session:
        stored = {image.path: image.quality for image in session.scalars(select(Image))}
    assert stored.keys() == manifest.keys()
    assert all(stored[path] == pytest.approx(manifest[path]["quality_after"]) for path in stored)
    scores = compute_scores(store, "xqlfw-synth", "dlib", ComputeOptions(progress=False))
    assert scores.pairs == 40

    with TestClient(create_app(store)) as client:
        landing = client.get("/").text
        assert "xqlfw-synth" in landing and "pair gap" in landing and "not identity-disjoint" in landing
        explorer = client.get("/explorer", params={"dataset": "xqlfw-synth", "per_page": 50}).text
        assert explorer.count('class="quality"') == 80  # both images' quality on every row
        stats = client.get("/api/stats").json()
        (dataset,) = stats["datasets"]
        assert dataset["mean_quality_gap"] == pytest.approx(
            np.mean(
                [
                    abs(
                        manifest[f"images/{p.image1.relative_to(small_tree / 'images').as_posix()}"]["quality_after"]
                        - manifest[f"images/{p.image2.relative_to(small_tree / 'images').as_posix()}"]["quality_after"]
                    )
                    for p in read_protocol("xqlfw", small_tree).pairs
                ]
            )
        )
    store.close()


# --- evaluation and the cross-dataset calibration report ------------------------------------------


def test_evaluation_and_calibration_report_fold_wise_and_fitted_on_lfw(real_data: None, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_xqlfw_synth(LFW_ROOT, slice_pairs(tmp_path / "pairs.txt", per_class=10), tree, progress=False)
    lfw = lfw_slice(LFW_ROOT, tmp_path / "lfw", per_class=10)

    evaluated = xfv("evaluate", "--protocol", "xqlfw", "--root", str(tree), "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    synthetic = json.loads(evaluated.stdout)
    on_lfw = json.loads(xfv("evaluate", "--protocol", "lfw", "--root", str(lfw), "--json").stdout)
    assert (
        synthetic["protocol"] == "xqlfw-synth"
        and synthetic["input_mode"] == "lfw-funneled"
        and synthetic["n_pairs"] == 200
    )
    assert synthetic["accuracy_mean"] < on_lfw["accuracy_mean"] - 0.05
    assert any("synthetic degradation" in note for note in synthetic["notes"])

    report_of_tree = ["calibration-report", "--protocol", "xqlfw", "--root", str(tree), "--bins", "200"]
    result = xfv(
        *report_of_tree, "--out", str(tmp_path / "f1"), "--calibration", "both", "--lfw-root", str(lfw), "--json"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    methods = {"cscore", "cscore-quality", "platt", "isotonic"}
    assert report["dataset"] == "xqlfw-synth" and report["calibration"] == "both" and methods <= set(report)
    assert report["cscore"]["accuracy"] == pytest.approx(synthetic["accuracy_mean"])
    fitted = report["lfw_fitted"]
    assert fitted["fitted_on"] == "LFW" and fitted["n_fit_pairs"] == 200 and methods <= set(fitted)
    assert all(0 <= fitted[m]["ece"] <= 0.5 and 0 <= report[m]["ece"] <= 0.5 for m in methods)
    assert len({fitted[m]["accuracy"] for m in methods}) == 1  # one LFW threshold decides for every method
    assert {Path(p).name for p in report["figures"].values()} == {
        "reliability.png",
        "risk_coverage.png",
        "cscore_fit.png",
        "reliability_lfw.png",
        "risk_coverage_lfw.png",
    }

    table = xfv(*report_of_tree, "--out", str(tmp_path / "f2"), "--calibration", "lfw", "--lfw-root", str(lfw))
    assert table.returncode == 0, table.stderr[-2000:]
    assert "fitted on LFW" in table.stdout and "other folds" not in table.stdout and "cscore-quality" in table.stdout
    missing = xfv(*report_of_tree, "--out", str(tmp_path / "f3"), "--calibration", "both")
    assert missing.returncode == 2 and "needs --lfw-root" in missing.stderr
