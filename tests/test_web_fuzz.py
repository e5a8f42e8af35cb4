"""API fuzz: 1,200 generated requests over every route of the schema and the pages, never a 5xx.

A seeded generator (reproducible: the failing request is printed) fills each route's path and
query parameters, by name, with a good value for that parameter (a stored pair, its model, a map's
method, a real upload and job) or with hostile text (ids beyond 64 bits, negative and float
numbers, NaN, traversal, SQL and LIKE metacharacters, markup, control characters, very long
strings), sends random JSON and multipart bodies to the writes (junk, tiny and bomb images, now and
then a real photo), and now and then an unsupported method or a foreign Origin. Good values reach
the code behind the checks: every GET route must answer 2xx at least once, and 4xx at least once if it takes any input.
Every status a route answers must be one its OpenAPI entry documents.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import quote, unquote

import pytest
from fastapi.testclient import TestClient

from tests.test_web_hardening import jpeg_claiming, png_bytes, png_header
from tests.web_fixtures import WebStore
from xfv.store.pair_table import SORT_COLUMNS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SEED = 20261201
REQUESTS = 1200
EXPLORER = ["dataset", "model", "label", "prediction", "outcome", "fold", "identity", "cscore_min", "cscore_max",
            "quality_min", "quality_max", "sort", "order", "page", "per_page"]  # fmt: skip
#: Pages and files outside the schema, with their query parameters.
PAGES: list[tuple[str, list[str]]] = [
    ("/", []),
    ("/explorer", EXPLORER),
    ("/pairs/{pair_id}", [*EXPLORER, "i"]),
    ("/review", ["max_cscore", "dataset", "model", "page"]),
    ("/explain", []),
    ("/api", []),
    ("/docs", []),
    ("/openapi.json", []),
    ("/vendor/swagger/{name}", []),
    ("/static/{file}", ["v"]),
]
HOSTILE = [
    "0", "-1", "1.5", "1e3", "nan", "inf", "-inf", "", " ", "true", "null",
    str(2**63 - 1), str(2**63), str(2**64), "9" * 40, "-" + "9" * 30,
    "abc", "dlib", "other-net", "merged", "blend", "heat", "same", "different", "asc", "desc", "cscore",
    "../../etc/passwd", "..%2F..%2Fpyproject.toml", "%00", "\x00", "\r\nX-Injected: 1", "%", "_", "%_%",
    "' OR 1=1 --", "<script>alert(1)</script>", "ü名前", "x" * 5000,
]  # fmt: skip
#: Query parameters that no route declares, added now and then.
STRAY = ["index", "i", "size", "patch", "display", "setting", "max_cscore", "unknown"]


def good_values(store: WebStore, upload_id: str, job_id: str) -> dict[str, list[str]]:
    """Per parameter name, values the server holds or accepts."""
    pairs = [store.pair_ids[0], *store.with_maps, store.without_maps]
    return {
        "pair_id": [str(p) for p in [*pairs, *store.with_maps]],
        "image_id": [str(store.image_id)],
        "model": ["dlib", "dlib", "other-net"],
        "method": ["1", "2", "3"],
        "image": ["1", "2"],
        "upload_id": [upload_id],
        "job_id": [job_id],
        "name": ["swagger-ui-bundle.js", "swagger-ui.css", "index.html"],
        "file": ["app.css", "viewer.js", "favicon.svg"],
        "patch": ["merged", "7", "14", "28"],
        "display": ["blend", "heat"],
        "setting": ["occ1:ref112:p7-14-28:s5:black:rect", "occ1:ref112:p28:s40:black:rect"],
        "sort": list(SORT_COLUMNS),
        "order": ["asc", "desc"],
        "label": ["same", "different"],
        "prediction": ["same", "different"],
        "outcome": ["correct", "wrong"],
        "dataset": ["lfw"],
        "fold": ["0", "1"],
        "identity": ["bush", "a", "Zakayev"],
        "cscore_min": ["0.5", "0.9"],
        "cscore_max": ["0.8", "1"],
        "quality_min": ["0.2"],
        "quality_max": ["0.9"],
        "max_cscore": ["0.8", "1"],
        "page": ["1", "2"],
        "per_page": ["25", "200"],
        "index": ["0", "1"],
        "i": ["0", "3"],
        "size": ["96", "16"],
    }


class Generator:
    """Seeded requests: each value is good for its parameter or hostile."""

    def __init__(self, rng: random.Random, good: dict[str, list[str]]) -> None:
        self.rng = rng
        self.good = good
        self.good_rate = 0.6

    def next_request(self) -> None:
        """Draw how hostile the next request is: most values good (to reach the code behind the
        checks), about half, or mostly hostile."""
        self.good_rate = self.rng.choice([0.95, 0.6, 0.3])

    def value(self, name: str) -> str:
        if name in self.good and self.rng.random() < self.good_rate:
            return self.rng.choice(self.good[name])
        return self.rng.choice(HOSTILE)

    def path(self, template: str) -> tuple[str, bool]:
        """The path with its parameters filled, and whether it still routes to ``template`` (no
        value empty or holding a slash once decoded)."""
        values = {name: self.value(name) for name in re.findall(r"\{([^}]+)\}", template)}
        routed = all(v and "/" not in unquote(v) and v not in (".", "..") for v in values.values())
        return re.sub(r"\{([^}]+)\}", lambda m: quote(values[m.group(1)], safe=""), template), routed

    def query(self, declared: list[str]) -> dict[str, str]:
        names = declared + self.rng.sample(STRAY, 2)
        chosen = self.rng.sample(names, self.rng.randint(0, min(5, len(names))))
        return {name: self.value(name) for name in chosen}

    def json_body(self, store: WebStore) -> Any:
        rng = self.rng
        fields = {"pair_id": rng.choice([int(store.pair_ids[0]), int(store.pair_ids[0]), 2**63, 2**64, -3, "x", None, 1.5]),
                  "model": self.value("model"), "verdict": rng.choice(["agree", "disagree", "maybe", 1]),
                  "comment": self.value("comment"), "reviewer": self.value("reviewer")}  # fmt: skip
        if rng.random() < 0.9:
            return {k: v for k, v in fields.items() if rng.random() < 0.8}
        return rng.choice([[], 3, "x", {"pair_id": {"$gt": 0}}])

    def files(self, photos: list[bytes]) -> dict[str, tuple[str, bytes, str]]:
        rng = self.rng
        junk = [b"", b"\x89PNG\r\n\x1a\n" + rng.randbytes(40), b"\xff\xd8\xff" + rng.randbytes(60), rng.randbytes(200),
                png_bytes(1, 1), png_bytes(3000, 2), png_header(20000, 20000), jpeg_claiming(6000, 6000)]  # fmt: skip
        pool = photos if rng.random() < 0.15 else junk
        return {f"image{i}": (f"photo{i}.png", rng.choice(pool), "image/png") for i in (1, 2) if rng.random() < 0.95}


Operation = tuple[str, str, list[str], dict[str, Any] | None]  # method, path template, query names, responses


def _operations(schema: dict[str, Any]) -> list[Operation]:
    return [
        (
            method,
            path,
            [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"],
            operation["responses"],
        )
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]


@pytest.fixture(scope="module")
def upload_and_job(client: TestClient) -> tuple[str, str, list[bytes]]:
    """A real upload (two LFW photos) explained by a real job, for the generator to poll; the photos."""
    from tests.conftest import lfw_image

    photos = [lfw_image("Aaron_Eckhart", 1).read_bytes(), lfw_image("Abel_Pacheco", 1).read_bytes()]
    files = {"image1": ("a.jpg", photos[0], "image/jpeg"), "image2": ("b.jpg", photos[1], "image/jpeg")}
    upload = client.post("/api/explain", files=files)
    assert upload.status_code == 202, upload.text
    job = upload.json()["job"]
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"the upload's X-Map job is still {job['status']}"
        time.sleep(0.1)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "done", job
    return upload.json()["id"], job["id"], photos


def test_generated_requests_never_get_a_5xx(
    client: TestClient,
    web_store: WebStore,  # noqa: F811
    upload_and_job: tuple[str, str, list[bytes]],
) -> None:
    upload_id, job_id, photos = upload_and_job
    operations = _operations(client.get("/openapi.json").json())
    generate = Generator(random.Random(SEED), good_values(web_store, upload_id, job_id))
    rng = generate.rng
    statuses: Counter[int] = Counter()
    answers: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for number in range(REQUESTS):
        generate.next_request()
        if rng.random() < 0.2:
            template, declared = rng.choice(PAGES)
            method, documented = "get", None
        else:
            method, template, declared, documented = rng.choice(operations)
        if rng.random() < 0.05:
            method, documented = rng.choice(["put", "delete", "patch"]), None
        url, routed = generate.path(template)
        headers = {"Origin": "http://evil.example"} if rng.random() < 0.05 else {}
        params = generate.query(declared)
        if method == "post" and template.endswith(("/verify", "/explain")):
            response = client.post(url, params=params, files=generate.files(photos), headers=headers)
        elif method == "post" and template.endswith("/reviews"):
            response = client.post(url, params=params, json=generate.json_body(web_store), headers=headers)
        else:
            response = client.request(method.upper(), url, params=params, headers=headers)
        status = response.status_code
        statuses[status] += 1
        sent = f"request {number}: {response.request.method} {str(response.request.url)[:300]}"
        assert status < 500, f"{sent} -> {status}: {response.text[:300]}"
        assert "Traceback" not in response.text, sent
        if status == 405:
            assert response.headers.get("allow"), f"{sent}: 405 without Allow"
        if routed and method in ("get", "post"):
            answers[(method, template)][status] += 1
        if documented is not None and routed:
            assert str(status) in documented, f"{sent} -> {status}, not in its schema: {sorted(documented)}"
    for (method, template), counts in sorted(answers.items()):
        print(f"{method.upper():4s} {template}: {dict(sorted(counts.items()))}")
    assert sum(statuses.values()) == REQUESTS >= 1000
    reached = {op: counts for op, counts in answers.items() if op[0] == "get"}
    for method, template, *_ in operations:
        assert (method, template) in answers, f"{method.upper()} {template} was never requested"
    takes_input = {template for _, template, declared, _ in operations if declared or "{" in template}
    for (_, template), counts in reached.items():
        assert any(200 <= s < 300 for s in counts), f"GET {template} never answered 2xx: {dict(counts)}"
        if template in takes_input:
            assert any(400 <= s < 500 for s in counts), f"GET {template} never answered 4xx: {dict(counts)}"
    posts = Counter(s for (m, _), counts in answers.items() if m == "post" for s in counts.elements())
    assert {200, 201, 202} & set(posts) and {403, 413, 422} <= set(posts), posts
