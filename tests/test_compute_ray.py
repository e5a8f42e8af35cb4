"""The Ray executor on a real local Ray cluster (``ray.init`` here, the CLI connecting to it with
``--ray-address`` from another process): the same chunks run as Ray tasks and give exactly the local
executor's results, X-Maps included."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.synthetic import result_table
from xfv.method.occlusion import OcclusionSettings
from xfv.pipeline.compute import ComputeOptions, compute_scores, compute_xmaps
from xfv.store import Store, open_store
from xfv.store.ingest import ingest
from xfv.store.models import JobChunk, XMapResult

pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'xfv[ray]'")

SMALL_OCCLUSION = OcclusionSettings(patch_sizes=(14, 28), stride=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A two-CPU local Ray cluster started by this test process (its workers inherit XFV_HOME);
    yields the address another process connects to, as a user's driver would."""
    import ray

    context = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield context.address_info["gcs_address"]
    ray.shutdown()


def _store(path: Path, root: Path) -> Store:
    store = open_store(f"sqlite:///{path}")
    ingest(store, "lfw", root, "syn", "aligned", progress=False)
    return store


def test_ray_cluster_gives_the_local_results(
    ray_cluster: str, synthetic_lfw: Path, fake_model: str, tmp_path: Path
) -> None:
    local = _store(tmp_path / "local.sqlite", synthetic_lfw)
    options = ComputeOptions(chunk_size=25, progress=False)
    compute_scores(local, "syn", fake_model, options)
    compute_xmaps(local, "syn", fake_model, "0-3", SMALL_OCCLUSION, (1, 3), options)

    on_ray = _store(tmp_path / "ray.sqlite", synthetic_lfw)
    command = [
        sys.executable, "-m", "xfv.cli", "compute", "--dataset", "syn", "--model", fake_model, "--chunk-size", "25",
        "--xmaps", "--pairs", "0-3", "--methods", "1,3", "--patch-sizes", "14,28", "--stride", "10",
        "--executor", "ray", "--ray-address", ray_cluster, "--quiet",
        "--database-url", f"sqlite:///{tmp_path / 'ray.sqlite'}",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "8 chunk(s) computed now" in run.stdout and "4 computed now" in run.stdout

    assert result_table(on_ray) == result_table(local)
    with local.transaction() as a, on_ray.transaction() as b:
        query = select(XMapResult.pair_id, XMapResult.method, XMapResult.distance, XMapResult.maps).order_by(
            XMapResult.pair_id, XMapResult.method
        )
        assert a.execute(query).all() == b.execute(query).all()
        workers = set(b.scalars(select(JobChunk.worker)))
    assert all(worker and int(worker.rsplit(":", 1)[1]) != os.getpid() for worker in workers)


def test_an_unreachable_ray_cluster_is_a_clear_error(synthetic_lfw: Path, fake_model: str, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "xfv.cli", "compute", "--dataset", "syn", "--model", fake_model, "--quiet",
        "--executor", "ray", "--ray-address", f"127.0.0.1:{_free_port()}",
        "--database-url", f"sqlite:///{tmp_path / 's.sqlite'}",
    ]  # fmt: skip
    _store(tmp_path / "s.sqlite", synthetic_lfw)
    run = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 2 and "cannot start or reach the Ray cluster at 127.0.0.1:" in run.stderr
