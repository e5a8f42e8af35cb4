"""The web computes X-Maps progressively, of stored pairs and of uploads: the coarse level's maps are served at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.test_web_api import photo, wait_for
from tests.web_fixtures import WebStore
from xfv.method.occlusion import OcclusionSettings
from xfv.pipeline.explain import OcclusionEngine
from xfv.web import create_app, pairmaps, uploads

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: Two levels, 9 occlusions each: the 28 px maps first, then 14 px.
TWO_LEVELS = OcclusionSettings(patch_sizes=(14, 28), stride=40)


def test_coarse_maps_are_shown_while_the_job_refines_them(
    web_store: WebStore,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("XFV_CACHE_DIR", str(tmp_path))  # faces explained by other tests are not cached here
    pair_id = web_store.without_maps
    base = f"/api/pairs/{pair_id}/xmaps/dlib/1/1.png"
    seen: list[dict[str, Any]] = []
    real = pairmaps.explain_pair_progressively
    key = f"pair-xmaps:{pair_id}:dlib:{TWO_LEVELS.cache_key()}"

    with TestClient(create_app(web_store.store, occlusion=TWO_LEVELS)) as client:

        def spying(*args: Any, **kwargs: Any) -> Iterator[Any]:
            """The real steps; after each, what a viewer polling the server would get."""
            for step in real(*args, **kwargs):
                yield step
                job = client.app.state.services.jobs.active_job(key)
                seen.append({
                    "info": job["info"],
                    "merged": client.get(base).status_code,
                    "p28": client.get(base, params={"patch": "28"}).status_code,
                    "p14": client.get(base, params={"patch": "14"}).status_code,
                })  # fmt: skip

        monkeypatch.setattr(pairmaps, "explain_pair_progressively", spying)
        assert client.get(base).status_code == 404
        job = wait_for(client, client.post(f"/api/pairs/{pair_id}/xmaps/dlib").json()["job"])
        assert job["status"] == "done", job
        assert job["info"] == {"patch_sizes": [28, 14], "patch_sizes_done": [28, 14]}
        # after the 28 px level: its maps (raw and merged so far) are served, 14 px not yet
        assert seen[0] == {
            "info": {"patch_sizes": [28, 14], "patch_sizes_done": [28]},
            "merged": 200,
            "p28": 200,
            "p14": 404,
        }
        # the final maps come from the store, with both patch sizes
        assert client.get(base, params={"patch": "14", "setting": TWO_LEVELS.cache_key()}).status_code == 200
        assert client.get(base, params={"patch": "14"}).status_code == 200


def test_an_uploads_coarse_maps_are_shown_while_its_job_refines_them(
    web_store: WebStore,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("XFV_CACHE_DIR", str(tmp_path))  # faces explained by other tests are not cached here
    seen: list[dict[str, Any]] = []
    pictures: list[bytes] = []
    real = uploads.explain_pair_progressively
    started = threading.Event()  # set once the test knows the upload's id
    upload: dict[str, Any] = {}

    with TestClient(create_app(web_store.store, occlusion=TWO_LEVELS)) as client:

        def spying(*args: Any, **kwargs: Any) -> Iterator[Any]:
            """The real steps; after each, what the explain page polling the server would get."""
            assert started.wait(timeout=30)
            base = f"/api/uploads/{upload['id']}/xmaps/1/1.png"
            for step in real(*args, **kwargs):
                yield step
                merged = client.get(base)
                job = client.app.state.services.jobs.active_job(f"upload:{upload['id']}")
                seen.append({
                    "info": job["info"],
                    "done": job["done"] == step.forward_passes > 0,
                    "merged": merged.status_code,
                    "p28": client.get(base, params={"patch": "28"}).status_code,
                    "p14": client.get(base, params={"patch": "14"}).status_code,
                })  # fmt: skip
                pictures.append(merged.content)

        monkeypatch.setattr(uploads, "explain_pair_progressively", spying)
        answer = client.post(
            "/api/explain", files={"image1": photo("Akhmed_Zakayev", 1), "image2": photo("Akhmed_Zakayev", 3)}
        )
        assert answer.status_code == 202, answer.text
        upload.update(answer.json())
        started.set()
        job = wait_for(client, upload["job"])
        assert job["status"] == "done", job
        assert job["info"] == {"patch_sizes": [28, 14], "patch_sizes_done": [28, 14]}
        # after the 28 px level its maps are served, 14 px not yet; the progress counts its passes
        assert seen[0] == {
            "info": {"patch_sizes": [28, 14], "patch_sizes_done": [28]},
            "done": True,
            "merged": 200,
            "p28": 200,
            "p14": 404,
        }
        assert len(seen) == 2 and job["done"] == job["total"]
        base = f"/api/uploads/{upload['id']}/xmaps/1/1.png"
        assert client.get(base, params={"patch": "14"}).status_code == 200
        # the final merged map (14 and 28 px) is not the coarse one (28 px only)
        final = client.get(base).content
        assert pictures[0].startswith(b"\x89PNG") and final.startswith(b"\x89PNG") and final != pictures[0]


def test_the_server_builds_the_default_models_sessions_before_the_first_request(
    web_store: WebStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fresh server process's first explanation does not pay for building the model's sessions."""
    warmed: list[tuple[str, OcclusionSettings]] = []
    monkeypatch.setattr(
        OcclusionEngine, "warm_up", lambda engine: warmed.append((engine.model.spec.name, engine.settings))
    )
    with TestClient(create_app(web_store.store, occlusion=TWO_LEVELS)):
        assert warmed == [("dlib", TWO_LEVELS)]
    # a default model that cannot be loaded is left to the requests, which answer the error
    monkeypatch.setenv("XFV_MODEL", "no-such-model")
    with TestClient(create_app(web_store.store, occlusion=TWO_LEVELS)) as client:
        assert client.get("/api/pairs").status_code == 200
    assert warmed == [("dlib", TWO_LEVELS)]
    assert "model no-such-model is not loaded ahead" in caplog.text
