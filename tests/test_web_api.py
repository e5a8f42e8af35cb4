"""The REST API and the pages, in-process: every endpoint, good and bad input (4xx, never 5xx).

The pair table (explorer, filters, sorting, paging, previous/next) and the reviews run on SQLite
and on PostgreSQL (``any_client``); the rest, which does not depend on the database, on SQLite."""

from __future__ import annotations

import asyncio
import io
import re
import time
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from tests.conftest import lfw_image
from tests.web_fixtures import TINY, WebStore
from xfv.store.models import Image
from xfv.store.pair_table import SORT_COLUMNS
from xfv.web import create_app
from xfv.web.filters import ExplorerQuery

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def wait_for(client: TestClient, job: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """Poll a job until it is done or failed."""
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job['id']} still {job['status']} after {timeout} s"
        time.sleep(0.1)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def photo(name: str, number: int) -> tuple[str, bytes, str]:
    return (f"{name}_{number}.jpg", lfw_image(name, number).read_bytes(), "image/jpeg")


def rows(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/pairs", params={"per_page": 200, **params})
    assert response.status_code == 200, response.text
    return response.json()["rows"]


# --- pages and docs --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/explorer", "/explain", "/review", "/api", "/docs"])
def test_pages_render_with_local_assets_only(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets, "a page without any asset"
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], "assets must be served locally"
    for asset in (a for a in assets if a.startswith(("/static/", "/vendor/"))):
        assert client.get(asset).status_code == 200, asset


def test_viewer_page_links_previous_and_next_in_the_explorer_order(any_client: TestClient) -> None:
    ordered = [r["pair_id"] for r in rows(any_client, sort="cscore", order="desc")]
    page = any_client.get(f"/pairs/{ordered[1]}", params={"sort": "cscore", "order": "desc", "i": 1})
    assert page.status_code == 200
    previous, following = (
        re.findall(rf'id="{link}" href="([^"]+)"', page.text)[0].replace("&amp;", "&")
        for link in ("prev-pair", "next-pair")
    )
    assert previous.startswith(f"/pairs/{ordered[0]}?") and "sort=cscore" in previous and "i=0" in previous
    assert following.startswith(f"/pairs/{ordered[2]}?") and "i=2" in following


def test_explorer_page_keeps_its_state_in_links(any_client: TestClient) -> None:
    page = any_client.get("/explorer", params={"outcome": "wrong", "sort": "cscore", "per_page": 25}).text
    assert 'name="sort" value="cscore"' in page
    sort_links = [href.replace("&amp;", "&") for href in re.findall(r'<a href="([^"]+)" data-sort=', page)]
    assert len(sort_links) == 7 + 2 * 4, "the pair's 7 columns, then 4 per model (dlib, other-net)"
    assert all("outcome=wrong" in href and "per_page=25" in href for href in sort_links)
    assert any("sort=cscore&order=desc" in href for href in sort_links), "a second click reverses the order"
    assert any("sort=cscore&sort_model=other-net" in href for href in sort_links), "the other model's column"


def test_explorer_compares_models_side_by_side(any_client: TestClient) -> None:
    page = any_client.get("/explorer", params={"per_page": 200}).text
    assert re.findall(r'data-model-group="([^"]+)"', page) == ["dlib", "other-net"]
    assert page.count('data-model="other-net" data-correct=') == 18, "other-net has results for every other pair"
    assert page.count('data-model="other-net">no result</td>') == 18
    listed = any_client.get("/api/pairs", params={"per_page": 200}).json()
    assert listed["model"] == "dlib" and listed["models"] == ["dlib", "other-net"]
    row = next(r for r in listed["rows"] if "other-net" in r["results"])
    assert row["results"]["dlib"]["distance"] == row["distance"]
    assert row["results"]["other-net"]["distance"] == pytest.approx(row["distance"] + 0.02)
    only = any_client.get("/api/pairs", params={"models": "dlib"}).json()
    assert only["models"] == ["dlib"] and all(list(r["results"]) == ["dlib"] for r in only["rows"])


def test_explorer_filters_on_the_models_agreeing(any_client: TestClient) -> None:
    every = rows(any_client)
    split = [r for r in every if len({v["predicted_same"] for v in r["results"].values()}) > 1]
    alike = [
        r for r in every if len(r["results"]) == 2 and len({v["predicted_same"] for v in r["results"].values()}) == 1
    ]
    assert [r["pair_id"] for r in rows(any_client, agreement="disagree")] == [r["pair_id"] for r in split]
    assert [r["pair_id"] for r in rows(any_client, agreement="agree")] == [r["pair_id"] for r in alike]
    assert len(split) + len(alike) == 18
    assert rows(any_client, agreement="disagree", models="dlib") == [], "one model never disagrees"
    by_other = rows(any_client, sort="distance", sort_model="other-net", order="desc")
    distances = [r["results"]["other-net"]["distance"] for r in by_other if "other-net" in r["results"]]
    assert distances == sorted(distances, reverse=True)
    assert all("other-net" not in r["results"] for r in by_other[len(distances) :]), "pairs without it last"
    page = any_client.get("/explorer", params={"agreement": "disagree"}).text
    assert '<option value="disagree" selected>models disagree</option>' in page


def test_pages_show_errors_as_pages(client: TestClient) -> None:
    for path, status in [
        ("/pairs/999999", 404),
        ("/explorer?cscore_min=5", 422),
        ("/explorer?dataset=nope", 400),
        ("/nowhere", 404),
    ]:
        response = client.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html")
        assert 'class="alert error"' in response.text


def test_explorer_answers_invalid_parameters_as_the_api_does(client: TestClient) -> None:
    """The explorer validates its parameters in one call: the same 422 message per field as
    ``/api/pairs`` (FastAPI's per-parameter validation), the last of a repeated one counting."""
    for query in ["cscore_min=5", "fold=abc&per_page=0", "cscore_min=0.9&cscore_max=0.2", "sort=password"]:
        page, api = client.get(f"/explorer?{query}"), client.get(f"/api/pairs?{query}")
        assert page.status_code == api.status_code == 422, query
        assert str(escape(api.json()["detail"])) in page.text, query
    assert client.get("/explorer?per_page=0&per_page=25&unknown=1").status_code == 200


def test_explorer_links_encode_state_as_urlencode_does() -> None:
    """Links built from the state's pre-encoded parts equal ``urlencode`` of its non-default fields."""
    q = ExplorerQuery(identity="O'Brien & co", models="a b,c", cscore_max=0.7, sort="cscore", page=3)
    defaults = ExplorerQuery().model_dump()

    def expected(path: str, extra: dict[str, Any] | None = None, **changes: Any) -> str:
        values = q.model_dump() | changes
        params = {k: str(v) for k, v in values.items() if v is not None and v != defaults[k]}
        params |= {k: str(v) for k, v in (extra or {}).items() if v is not None}
        return f"{path}?{urlencode(params)}" if params else path

    assert q.url() == expected("/explorer")
    assert q.url(page=1, sort="fold", order="desc") == expected("/explorer", page=1, sort="fold", order="desc")
    assert q.url(identity=None, label="same", page=7) == expected("/explorer", identity=None, label="same", page=7)
    assert q.url("/pairs/5", extra={"i": 4}, page=1) == expected("/pairs/5", extra={"i": 4}, page=1)
    assert q.viewer_url(5, 9) == expected("/pairs/5", extra={"i": 9})
    assert ExplorerQuery().url(page=1) == "/explorer" and ExplorerQuery().viewer_url(2, 0) == "/pairs/2?i=0"


def test_openapi_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in [
        "/api/pairs",
        "/api/pairs/{pair_id}",
        "/api/pairs/{pair_id}/xmaps/{model}/{method}/{image}.png",
        "/api/pairs/{pair_id}/xmaps/{model}/{method}/raw",
        "/api/verify",
        "/api/explain",
        "/api/jobs/{job_id}",
        "/api/reviews",
        "/api/images/{image_id}",
        "/api/stats",
    ]:
        assert path in paths


# --- the store -------------------------------------------------------------------------------------


def test_stats_and_models(any_client: TestClient, backend_store: WebStore) -> None:  # noqa: F811
    stats = any_client.get("/api/stats").json()
    assert stats["pairs"] == len(backend_store.pair_ids)
    assert [m["model"] for m in stats["datasets"][0]["models"]] == ["dlib", "other-net"]
    assert stats["example_pair"] in backend_store.with_maps
    models = any_client.get("/api/models").json()
    assert models["stored"] == ["dlib", "other-net"]
    assert models["occlusion"]["occlusions"] == TINY.count


def test_wrong_decisions_sorted_by_cscore(any_client: TestClient) -> None:
    found = rows(any_client, outcome="wrong", sort="cscore")
    assert found and all(r["correct"] is False for r in found)
    scores = [r["cscore"] for r in found]
    assert scores == sorted(scores)


@pytest.mark.parametrize("column", SORT_COLUMNS)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_column_sorts(any_client: TestClient, column: str, order: str) -> None:
    key = {"label": "same", "prediction": "predicted_same", "position": "pair_id"}.get(column, column)
    values = [r[key] for r in rows(any_client, sort=column, order=order)]
    assert values == sorted(values, reverse=order == "desc")


def test_filters(any_client: TestClient) -> None:
    everything = rows(any_client)
    assert len(everything) == 36
    assert all(r["same"] for r in rows(any_client, label="same"))
    assert all(not r["predicted_same"] for r in rows(any_client, prediction="different"))
    assert {r["fold"] for r in rows(any_client, fold=1)} == {1}
    bush = rows(any_client, identity="zaKAYev")
    assert bush and all("Zakayev" in r["identity1"] + r["identity2"] for r in bush)
    within = rows(any_client, cscore_min=0.9, cscore_max=0.99)
    assert within and all(0.9 <= r["cscore"] <= 0.99 for r in within)
    good = rows(any_client, quality_min=0.5)
    assert good and all(min(r["quality1"], r["quality2"]) >= 0.5 for r in good)
    assert len(rows(any_client, model="other-net")) == 18
    assert len(rows(any_client, dataset="lfw")) == 36


def test_pagination(any_client: TestClient) -> None:
    first = any_client.get("/api/pairs", params={"per_page": 10, "sort": "distance"}).json()
    third = any_client.get("/api/pairs", params={"per_page": 10, "sort": "distance", "page": 4}).json()
    assert first["total"] == 36 and first["pages"] == 4
    assert len(first["rows"]) == 10 and len(third["rows"]) == 6
    all_ids = [
        r["pair_id"]
        for page in range(1, 5)
        for r in any_client.get("/api/pairs", params={"per_page": 10, "sort": "distance", "page": page}).json()["rows"]
    ]
    assert sorted(all_ids) == sorted(r["pair_id"] for r in rows(any_client))


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cscore_min": 2}, 422),
        ({"cscore_min": 0.9, "cscore_max": 0.2}, 422),
        ({"quality_max": -1}, 422),
        ({"sort": "password"}, 422),
        ({"order": "sideways"}, 422),
        ({"page": 0}, 422),
        ({"per_page": 100000}, 422),
        ({"fold": "abc"}, 422),
        ({"label": "maybe"}, 422),
        ({"identity": "x" * 500}, 422),
        ({"dataset": "nope"}, 400),
        ({"model": "nope"}, 400),
        ({"models": "dlib,nope"}, 400),
        ({"models": "dlib,,x"}, 422),
        ({"agreement": "mostly"}, 422),
        ({"sort": "cscore", "sort_model": "nope"}, 400),
    ],
)
def test_bad_filter_values(any_client: TestClient, params: dict[str, Any], status: int) -> None:
    response = any_client.get("/api/pairs", params=params)
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_pair_detail_and_neighbours(any_client: TestClient, backend_store: WebStore) -> None:  # noqa: F811
    pair_id = backend_store.with_maps[0]
    body = any_client.get(f"/api/pairs/{pair_id}").json()
    assert [r["model"] for r in body["pair"]["results"]] == ["dlib", "other-net"]
    assert body["pair"]["xmaps"][0]["methods"] == [1, 2, 3]
    assert body["server_setting"] == TINY.cache_key()
    ordered = [r["pair_id"] for r in rows(any_client, sort="distance")]
    middle = ordered[5]
    for index in (5, None, 17):  # right hint, no hint, stale hint
        params = {"sort": "distance"} | ({"index": index} if index is not None else {})
        around = any_client.get(f"/api/pairs/{middle}/neighbours", params=params).json()
        assert (around["index"], around["previous"], around["next"]) == (5, ordered[4], ordered[6])
    first = backend_store.pair_ids[0]
    filtered_out = any_client.get(f"/api/pairs/{first}/neighbours", params={"label": "different"}).json()
    assert filtered_out["index"] is None
    assert any_client.get("/api/pairs/999999").status_code == 404
    assert any_client.get("/api/pairs/999999/neighbours").status_code == 404
    assert any_client.get("/api/pairs/abc").status_code == 422


def test_xmap_images_differ_by_method_patch_and_display(client: TestClient, web_store: WebStore) -> None:  # noqa: F811
    base = f"/api/pairs/{web_store.with_maps[0]}/xmaps/dlib"
    pictures = set()
    for method in (1, 2, 3):
        for patch in ("7", "14", "28", "merged"):
            for display in ("blend", "heat"):
                response = client.get(f"{base}/{method}/1.png", params={"patch": patch, "display": display})
                assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
                pictures.add(response.content)
    assert len(pictures) == 24
    assert client.get(f"/api/pairs/{web_store.with_maps[0]}/aligned/2.png", params={"model": "dlib"}).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/pairs/{p}/xmaps/dlib/4/1.png", 404),
        ("/api/pairs/{p}/xmaps/dlib/1/3.png", 422),
        ("/api/pairs/{p}/xmaps/dlib/1/1.png?patch=5", 404),
        ("/api/pairs/{p}/xmaps/dlib/1/1.png?patch=big", 422),
        ("/api/pairs/{p}/xmaps/dlib/1/1.png?display=sepia", 422),
        ("/api/pairs/{p}/xmaps/dlib/1/1.png?setting=nope", 404),
        ("/api/pairs/{p}/xmaps/nope/1/1.png", 404),
        ("/api/pairs/999999/xmaps/dlib/1/1.png", 404),
        ("/api/pairs/{p}/xmaps/other-net/1/1.png", 404),
        ("/api/pairs/{p}/aligned/1.png?model=nope", 400),
        ("/api/pairs/{p}/aligned/1.png", 422),
        ("/api/pairs/{p}/xmaps/dlib/1/raw?setting=nope", 404),
    ],
)
def test_bad_map_requests(client: TestClient, web_store: WebStore, path: str, status: int) -> None:  # noqa: F811
    assert client.get(path.format(p=web_store.with_maps[0])).status_code == status


def test_raw_maps(client: TestClient, web_store: WebStore) -> None:  # noqa: F811
    response = client.get(f"/api/pairs/{web_store.with_maps[0]}/xmaps/dlib/2/raw")
    assert response.status_code == 200
    with np.load(io.BytesIO(response.content)) as stored:
        maps = {name: stored[name] for name in stored.files}
    assert set(maps) == {f"image{i}_{p}" for i in (1, 2) for p in ("p7", "p14", "p28", "merged")}
    assert all(m.dtype == np.float32 and m.shape == (150, 150) for m in maps.values())
    assert np.abs(maps["image1_merged"]).max() == pytest.approx(1.0, abs=1e-3)


def test_missing_maps_are_computed_on_request(client: TestClient, web_store: WebStore) -> None:  # noqa: F811
    pair_id = web_store.without_maps
    assert client.get(f"/api/pairs/{pair_id}/xmaps/dlib/1/1.png").status_code == 404
    started = client.post(f"/api/pairs/{pair_id}/xmaps/dlib")
    assert started.status_code == 202 and started.json()["status"] == "started"
    job = wait_for(client, started.json()["job"])
    assert job["status"] == "done" and job["done"] == job["total"] == 2 * (TINY.count + 1)
    stored = client.get(f"/api/pairs/{pair_id}").json()["pair"]["xmaps"]
    assert [(m["setting"], m["methods"]) for m in stored] == [(TINY.cache_key(), [1, 2, 3])]
    assert client.get(f"/api/pairs/{pair_id}/xmaps/dlib/3/2.png", params={"patch": "28"}).status_code == 200
    again = client.post(f"/api/pairs/{pair_id}/xmaps/dlib")
    assert again.status_code == 200 and again.json() == {"status": "stored", "job": None}
    assert client.post("/api/pairs/999999/xmaps/dlib").status_code == 404
    assert client.post(f"/api/pairs/{pair_id}/xmaps/nope").status_code == 400
    assert client.get("/api/jobs/no-such-job").status_code == 404


def test_images_and_thumbnails(client: TestClient, web_store: WebStore) -> None:  # noqa: F811
    full = client.get(f"/api/images/{web_store.image_id}")
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    thumb = client.get(f"/api/images/{web_store.image_id}", params={"size": 64})
    assert thumb.status_code == 200 and thumb.content.startswith(b"\xff\xd8") and len(thumb.content) < len(full.content)
    cached = client.get(
        f"/api/images/{web_store.image_id}", params={"size": 64}, headers={"If-None-Match": thumb.headers["etag"]}
    )
    assert cached.status_code == 304
    assert client.get("/api/images/999999").status_code == 404
    assert client.get(f"/api/images/{web_store.image_id}", params={"size": 5000}).status_code == 422


@pytest.mark.parametrize(
    "path",
    [
        "/api/images/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/images/1%2F..%2F..%2Fpyproject.toml",
        "/api/images/-1",
        "/static/..%2F..%2F..%2Fpyproject.toml",
        "/static/%2e%2e/%2e%2e/app.py",
        "/vendor/swagger/..%2F..%2F__init__.py",
    ],
)
def test_path_traversal_in_image_urls_is_refused(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert 400 <= response.status_code < 500
    assert b"root:" not in response.content and b"[project]" not in response.content


def test_image_rows_pointing_outside_their_root_are_not_served(client: TestClient, web_store: WebStore) -> None:  # noqa: F811
    with web_store.store.transaction() as session:
        known = session.get_one(Image, web_store.image_id)
        escaped = Image(
            dataset_id=known.dataset_id,
            identity_id=known.identity_id,
            path="../../../../../../etc/passwd",
            width=1,
            height=1,
            file_size=1,
            content_hash="f" * 64,
            quality=0.5,
        )
        session.add(escaped)
        session.flush()
        escaped_id = escaped.id
    response = client.get(f"/api/images/{escaped_id}")
    assert response.status_code == 404 and b"root:" not in response.content


# --- your own pair -------------------------------------------------------------------------------------


def test_verify_two_photos(client: TestClient) -> None:
    response = client.post(
        "/api/verify", files={"image1": photo("Aaron_Eckhart", 1), "image2": photo("Abel_Pacheco", 1)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["same"] is False and body["decision"] == "different people"
    assert 0.5 <= body["cscore"] <= 1 and body["distance"] > body["threshold"]
    assert [p["detected"] for p in body["photos"]] == [True, True]
    assert len(body["photos"][0]["box"]) == 4
    for p in body["photos"]:
        for url in (p["photo_url"], p["aligned_url"]):
            assert client.get(url).content.startswith(b"\x89PNG")


def test_explain_job_start_poll_fetch(client: TestClient) -> None:
    started = client.post(
        "/api/explain", files={"image1": photo("Akhmed_Zakayev", 1), "image2": photo("Akhmed_Zakayev", 3)}
    )
    assert started.status_code == 202, started.text
    upload = started.json()
    assert upload["same"] is True and upload["xmaps_ready"] is False
    assert wait_for(client, upload["job"])["status"] == "done"
    fetched = client.get(f"/api/uploads/{upload['id']}").json()
    assert fetched["xmaps_ready"] is True and fetched["job"] is None
    pictures = {
        client.get(f"/api/uploads/{upload['id']}/xmaps/{method}/{image}.png", params={"patch": patch}).content
        for method in (1, 2, 3)
        for image in (1, 2)
        for patch in ("28", "merged")
    }
    assert all(p.startswith(b"\x89PNG") for p in pictures) and len(pictures) >= 8
    assert client.get(f"/api/uploads/{upload['id']}/xmaps/4/1.png").status_code == 404
    assert client.get(f"/api/uploads/{upload['id']}/xmaps/1/1.png", params={"patch": "7"}).status_code == 404
    assert client.get("/api/uploads/nope").status_code == 404
    assert client.get("/api/uploads/nope/photo/1.png").status_code == 404


def test_upload_errors_are_clear(client: TestClient) -> None:
    good = photo("Aaron_Eckhart", 1)
    blank = io.BytesIO()
    from PIL import Image as PILImage

    PILImage.new("RGB", (200, 200), (128, 128, 128)).save(blank, "PNG")
    cases = [
        ({"image1": ("notes.txt", b"hello, not a photo", "text/plain"), "image2": good}, 415, "not a photo"),
        ({"image1": ("fake.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 64, "image/jpeg"), "image2": good}, 415, "fake.jpg"),
        ({"image1": ("empty.jpg", b"", "image/jpeg"), "image2": good}, 415, "empty.jpg"),
        ({"image1": ("grey.png", blank.getvalue(), "image/png"), "image2": good}, 422, "no face"),
        ({"image1": good}, 422, "image2"),
    ]
    for files, status, words in cases:
        response = client.post("/api/verify", files=files)
        assert response.status_code == status, (files.keys(), response.text)
        assert words in response.json()["detail"]
    wrong_model = client.post("/api/verify", files={"image1": good, "image2": good}, data={"model": "/etc/passwd.onnx"})
    assert wrong_model.status_code == 400 and "unknown model" in wrong_model.json()["detail"]


def test_oversized_uploads_are_refused(web_store: WebStore, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("XFV_MAX_UPLOAD_BYTES", "20000")
    with TestClient(create_app(web_store.store, occlusion=TINY)) as small:
        big = ("big.jpg", b"\xff\xd8" + bytes(30_000), "image/jpeg")
        response = small.post("/api/verify", files={"image1": big, "image2": photo("Aaron_Eckhart", 1)})
        assert response.status_code == 413
        assert response.json()["detail"] == "big.jpg is 30 kB: photos may be at most 20 kB"
        huge = ("huge.jpg", bytes(2_000_000), "image/jpeg")
        response = small.post("/api/explain", files={"image1": huge, "image2": huge})
        assert response.status_code == 413
        assert response.json()["detail"] == "the upload is 4.0 MB: far over the limit of 20 kB per photo"


# --- reviews ------------------------------------------------------------------------------------------


def test_review_queue_and_recording(any_client: TestClient, backend_store: WebStore) -> None:  # noqa: F811
    queue = any_client.get("/api/reviews", params={"max_cscore": 0.999, "per_page": 100}).json()
    scores = [item["row"]["cscore"] for item in queue["items"]]
    assert queue["model"] == "dlib" and scores == sorted(scores) and all(s <= 0.999 for s in scores)
    pair_id = queue["items"][0]["row"]["pair_id"]
    saved = any_client.post(
        "/api/reviews",
        json={"pair_id": pair_id, "model": "dlib", "verdict": "disagree", "comment": " looks off ", "reviewer": "ana"},
    )
    assert saved.status_code == 201 and saved.json()["comment"] == "looks off"
    assert any_client.get(f"/api/pairs/{pair_id}/reviews").json()[0]["verdict"] == "disagree"
    again = any_client.get("/api/reviews", params={"max_cscore": 0.999, "per_page": 100}).json()
    item = next(i for i in again["items"] if i["row"]["pair_id"] == pair_id)
    assert item["latest"]["verdict"] == "disagree" and item["reviews"] == 1
    assert "looks off" in any_client.get("/review", params={"max_cscore": 0.999}).text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"pair_id": 999999, "model": "dlib", "verdict": "agree"}, 404),
        ({"pair_id": "{odd}", "model": "other-net", "verdict": "agree"}, 404),
        ({"pair_id": "{first}", "model": "nope", "verdict": "agree"}, 400),
        ({"pair_id": "{first}", "model": "dlib", "verdict": "perhaps"}, 422),
        ({"pair_id": "{first}", "model": "dlib", "verdict": "agree", "comment": "x" * 3000}, 422),
        ({"model": "dlib", "verdict": "agree"}, 422),
    ],
)
def test_bad_reviews(
    any_client: TestClient,
    backend_store: WebStore,  # noqa: F811
    body: dict[str, Any],
    status: int,
) -> None:
    ids = {"{first}": backend_store.pair_ids[0], "{odd}": backend_store.pair_ids[1]}
    body = {key: ids.get(value, value) if isinstance(value, str) else value for key, value in body.items()}
    assert any_client.post("/api/reviews", json=body).status_code == status
    assert any_client.get("/api/reviews", params={"max_cscore": 3}).status_code == 422
    assert any_client.get("/api/pairs/999999/reviews").status_code == 404


def test_a_burst_of_requests_never_waits_for_the_connection_pool(web_store: WebStore) -> None:  # noqa: F811
    """A request keeps its pooled connection until its answer is serialised on a worker thread. With
    a bounded pool and few threads, requests waiting for a connection (holding every thread) and
    answers waiting for a thread (holding every connection) blocked each other until the pool timed
    out; the store's pool never makes a request wait."""
    app = create_app(web_store.store, occlusion=TINY)
    paths = [f"/api/pairs/{pair_id}" for pair_id in web_store.pair_ids] + ["/api/pairs?sort=cscore"] * 10

    async def burst() -> list[int]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2  # this event loop only
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://xfv") as client:
            with anyio.move_on_after(20):
                responses = await asyncio.gather(*(client.get(path) for path in paths))
                return [response.status_code for response in responses]
        pytest.fail("requests still waiting after 20 s: they blocked each other on the connection pool")

    assert asyncio.run(burst()) == [200] * len(paths)


def test_serve_command_parses() -> None:
    import argparse

    from xfv.cli import web

    parser = argparse.ArgumentParser()
    web.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--port", "8123"])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 8123, web.run_serve)
    assert parser.parse_args(["serve", "--workers", "3"]).workers == 3


def test_viewer_offers_a_second_model_beside_and_the_landing_page_counts_disagreements(
    any_client: TestClient,
    backend_store: WebStore,  # noqa: F811
) -> None:
    both = backend_store.pair_ids[0]  # other-net has results for the even pairs
    page = any_client.get(f"/pairs/{both}", params={"models": "dlib,other-net"}).text
    assert '<option value="other-net" selected>other-net</option>' in page.split('data-model-select="b"')[1]
    assert 'data-model="other-net" data-auto="1" data-hash="1" data-side="b"' in page
    disagreeing = any_client.get(f"/pairs/{both}", params={"agreement": "disagree"}).text
    assert 'data-model="other-net" data-auto="1" data-hash="1" data-side="b"' in disagreeing
    alone = any_client.get(f"/pairs/{both}").text
    assert '<div class="xv-side" data-side="b" hidden>' in alone and 'data-model="" data-auto="1"' in alone
    asked = any_client.get(f"/pairs/{both}", params={"model": "other-net", "compare": "dlib"}).text
    assert '<option value="dlib" selected>dlib</option>' in asked.split('data-model-select="b"')[1]
    split = len(rows(any_client, agreement="disagree"))
    landing = any_client.get("/").text
    assert f"models disagree on {split}</a>" in landing
    assert any_client.get("/api/stats").json()["datasets"][0]["disagreements"] == split
