"""The web computes a pair's X-Maps progressively: the coarse level's maps are served at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.test_web_api import wait_for
from tests.web_fixtures import WebStore
from xfv.method.occlusion import OcclusionSettings
from xfv.web import create_app, pairmaps

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: Two levels, 9 occlusions each: the 28 px maps first, then 14 px.
TWO_LEVELS = OcclusionSettings(patch_sizes=(14, 28), stride=40)


def test_coarse_maps_are_shown_while_the_job_refines_them(
    web_store: WebStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
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
