"""``kill -9`` part-way through ``xfv compute``, then the same command again: the final table equals
an uninterrupted run, finished chunks are not recomputed, and no chunk is ever half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.synthetic import result_table, write_lfw_dataset
from xfv.pipeline.compute import ComputeOptions, compute_scores
from xfv.store import Store, open_store
from xfv.store.ingest import ingest
from xfv.store.models import Job, JobChunk, PairResult

PAIRS_PER_CLASS = 20  # 400 pairs
CHUNK = 2  # 200 chunks: the kill lands part-way
KILL_AFTER_CHUNKS = 20


@pytest.fixture(scope="module")
def larger_lfw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lfw_dataset(tmp_path_factory.mktemp("larger-lfw"), pairs_per_class=PAIRS_PER_CLASS, seed=1)


def done_chunks(store: Store) -> int:
    with store.transaction() as session:
        return int(session.scalar(select(func.count()).where(JobChunk.done.is_(True))) or 0)


def chunk_state(store: Store) -> tuple[dict[int, tuple[bool, str | None, object]], set[int], list[list[int]]]:
    """Per chunk (done, worker, finished_at); ids of pairs with results; pair ids of done chunks."""
    with store.transaction() as session:
        chunks = session.scalars(select(JobChunk).order_by(JobChunk.position)).all()
        with_results = set(session.scalars(select(PairResult.pair_id)))
        states = {c.position: (c.done, c.worker, c.finished_at) for c in chunks}
        return states, with_results, [c.pair_ids for c in chunks if c.done]


def test_sigkill_part_way_then_rerun_equals_an_uninterrupted_run(
    store_url: str, larger_lfw: Path, fake_model: str, tmp_path: Path
) -> None:
    reference = open_store(f"sqlite:///{tmp_path / 'reference.sqlite'}")
    ingest(reference, "lfw", larger_lfw, "syn", "aligned", progress=False)
    compute_scores(reference, "syn", fake_model, ComputeOptions(chunk_size=50, progress=False))

    store = open_store(store_url)
    ingest(store, "lfw", larger_lfw, "syn", "aligned", progress=False)
    command = [sys.executable, "-m", "xfv.cli", "compute", "--dataset", "syn", "--model", fake_model,
               "--chunk-size", str(CHUNK), "--quiet", "--database-url", store_url]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while done_chunks(store) < KILL_AFTER_CHUNKS and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, "compute finished before it could be killed"

    states, with_results, done_pairs = chunk_state(store)
    done = sum(state[0] for state in states.values())
    assert KILL_AFTER_CHUNKS <= done < len(states) == 20 * PAIRS_PER_CLASS // CHUNK
    assert with_results == {pair for pairs in done_pairs for pair in pairs}  # whole chunks only
    with store.transaction() as session:
        job = session.scalar(select(Job))
        assert job is not None and job.done_items == len(with_results) and job.status == "running"
        assert session.scalar(select(func.count()).where(PairResult.cscore.is_not(None))) == 0

    rerun = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(states) - done} chunk(s) computed now" in rerun.stdout
    after, _, _ = chunk_state(store)
    assert all(after[p] == state for p, state in states.items() if state[0])  # finished chunks untouched
    assert all(state[0] for state in after.values())
    assert result_table(store) == result_table(reference)
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PairResult)) == 20 * PAIRS_PER_CLASS
        job = session.scalar(select(Job))
        assert job is not None and (job.status, job.done_items) == ("done", 20 * PAIRS_PER_CLASS)
