"""The pages in a real browser: Playwright driving Debian's Chromium against a live server.

Each test saves a screenshot of its page under ``artifacts/screenshots/`` (kept by CI as an
artefact). Every request the pages make is watched: anything not sent to the test server fails
the test, so the platform provably needs no CDN. Skipped with a reason when Playwright or
``/usr/bin/chromium`` (``apt-get install chromium``) is missing.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from tests.conftest import lfw_image
from tests.test_several_faces import make_couple
from tests.test_web_progressive import TWO_LEVELS
from tests.web_fixtures import THRESHOLD, TINY, WebStore
from xfv.models import get_model
from xfv.store.catalog import register_model
from xfv.store.models import Model, PairResult
from xfv.web import create_app, uploads

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """``xfv serve``'s ``app`` on a free loopback port, in a thread; yields its base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    port = _free_port()
    runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not runner.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    runner.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(web_store: WebStore) -> Iterator[str]:  # noqa: F811
    """The platform with one occlusion level (28 px patches, stride 40): maps in a moment."""
    with _serving(create_app(web_store.store, occlusion=TINY)) as url:
        yield url


@pytest.fixture(scope="module")
def two_level_server(web_store: WebStore) -> Iterator[str]:  # noqa: F811
    """The platform with two occlusion levels (28 px, then 14 px): a coarse map first."""
    with _serving(create_app(web_store.store, occlusion=TWO_LEVELS)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _watched_page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh page on ``server`` that records JavaScript errors, CSP refusals and outside requests."""
    context = browser.new_context(base_url=server, viewport={"width": 1440, "height": 1000})
    outside: list[str] = []
    errors: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # The Content-Security-Policy refusing anything a page uses shows as a console error.
    tab.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield tab
    context.close()
    assert not outside, f"requests outside the server: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture()
def page(browser: Any, server: str) -> Iterator[Any]:
    yield from _watched_page(browser, server)


@pytest.fixture()
def two_level_page(browser: Any, two_level_server: str) -> Iterator[Any]:
    yield from _watched_page(browser, two_level_server)


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


#: The viewer page's first X-Map viewer (model A; model B's stands beside it).
SIDE_A = '.xv-side[data-side="a"] [data-xmap-viewer]'
SIDE_B = '.xv-side[data-side="b"] [data-xmap-viewer]'


def wait_ready(page: Any, selector: str = SIDE_A) -> None:
    """Wait until a viewer shows its maps (both overlay images loaded)."""
    page.wait_for_selector(f'{selector}[data-state="ready"]')
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel + ' img.overlay')].every(i => i.complete && i.naturalWidth > 0)",
        arg=selector,
    )


def test_landing_page(page: Any) -> None:
    page.goto("/")
    assert "See why a face model says" in page.locator("h1").inner_text()
    assert page.locator("#accuracy-table").get_by_text("other-net").count() == 1
    wait_ready(page, "#preview [data-xmap-viewer]")
    page.locator('#preview .seg[data-control="method"] button[data-value="3"]').click()
    wait_ready(page, "#preview [data-xmap-viewer]")
    shoot(page, "landing")


def test_explorer_wrong_decisions_sorted_by_cscore_then_viewer(page: Any) -> None:
    page.goto("/explorer")
    page.select_option('select[name="outcome"]', "wrong")
    page.wait_for_url(re.compile(r"outcome=wrong"))
    page.locator('th a[data-sort="cscore"][data-sort-model="dlib"]').click()
    page.wait_for_url(re.compile(r"sort=cscore"))
    rows = page.locator("#pairs tbody tr[data-pair]")
    assert rows.count() > 0
    assert rows.locator('td[data-model="dlib"] .mark.bad').count() == rows.count(), "every row is a wrong decision"
    scores = [float(text) for text in page.locator('#pairs td[data-model="dlib"] .cscore-value').all_inner_texts()]
    assert scores == sorted(scores)
    assert "outcome=wrong" in page.url and "sort=cscore" in page.url
    shoot(page, "explorer")
    rows.first.click()
    page.wait_for_url(re.compile(r"/pairs/\d+\?.*outcome=wrong"))
    wait_ready(page)  # its maps were not stored: computed on request, with progress, then shown
    assert page.locator("#prev-pair").get_attribute("class").endswith("disabled")


def test_viewer_switches_method_and_patch_size(page: Any, web_store: WebStore) -> None:  # noqa: F811
    page.goto("/explorer")
    page.locator(f'#pairs tr[data-pair="{web_store.with_maps[0]}"] .thumbs').click()
    page.wait_for_url(re.compile(rf"/pairs/{web_store.with_maps[0]}\?"))
    wait_ready(page)
    overlay = page.locator(f'{SIDE_A} img[data-overlay="1"]')
    seen = {(overlay.get_attribute("src"), overlay.screenshot())}
    for control, value in [("method", "2"), ("patch", "14"), ("method", "3"), ("patch", "7"), ("display", "heat")]:
        page.locator(f'{SIDE_A} .seg[data-control="{control}"] button[data-value="{value}"]').click()
        wait_ready(page)
        shown = (overlay.get_attribute("src"), overlay.screenshot())
        assert shown[0] not in {s for s, _ in seen}, f"{control}={value} did not change the map URL"
        assert shown[1] not in {p for _, p in seen}, f"{control}={value} did not change the picture"
        seen.add(shown)
    page.locator(f'{SIDE_A} input[data-control="opacity"]').fill("40")
    assert overlay.evaluate("i => i.style.opacity") == "0.4"
    assert "method=3" in page.url and "patch=7" in page.url and "display=heat" in page.url
    page.locator(f'{SIDE_A} input[data-control="opacity"]').fill("85")
    shoot(page, "viewer")
    page.locator("#next-pair").click()
    page.wait_for_url(re.compile(rf"/pairs/{web_store.with_maps[1]}\?"))
    wait_ready(page)


@pytest.fixture(scope="module")
def second_real_model(web_store: WebStore) -> str:  # noqa: F811
    """Results of a second real model, ``dlib-int8``, on the fixture's pairs: dlib's distances,
    mirrored about the threshold on every third pair so the two models disagree there."""
    spec = get_model("dlib-int8").spec
    with web_store.store.transaction() as session:
        model = register_model(session, spec)
        dlib = session.scalars(select(PairResult).join(Model).where(Model.name == "dlib")).all()
        mirrored = [(r, 2 * THRESHOLD - r.distance if i % 3 == 0 else r.distance) for i, r in enumerate(dlib)]
        session.add_all(
            PairResult(
                pair_id=r.pair_id, model_id=model.id, dataset_id=r.dataset_id, distance=d, threshold=THRESHOLD,
                predicted_same=d <= THRESHOLD, correct=(d <= THRESHOLD) == (r.predicted_same == r.correct),
                cscore=r.cscore,
            )
            for r, d in mirrored
        )  # fmt: skip
    return spec.name


def test_explorer_filters_disagreeing_models_then_shows_both_maps_side_by_side(
    page: Any, second_real_model: str
) -> None:
    page.goto("/explorer")
    assert [t.strip() for t in page.locator("th.model-group").all_text_contents()] == ["dlib", "dlib-int8", "other-net"]
    page.goto(f"/explorer?models=dlib,{second_real_model}")
    page.select_option('select[name="agreement"]', "disagree")
    page.wait_for_url(re.compile(r"agreement=disagree"))
    assert [t.strip() for t in page.locator("th.model-group").all_text_contents()] == ["dlib", "dlib-int8"]
    rows = page.locator("#pairs tbody tr[data-pair]")
    assert rows.count() >= 6
    for row in rows.all():
        decisions = {row.locator(f'td[data-model="{m}"]').nth(1).inner_text() for m in ("dlib", second_real_model)}
        assert decisions == {"same", "different"}, "each row: dlib says one thing, dlib-int8 the other"
    page.locator(f'th a[data-sort="distance"][data-sort-model="{second_real_model}"]').click()
    page.wait_for_url(re.compile(r"sort_model=dlib-int8"))
    distances = [float(t) for t in page.locator(f'#pairs td.mono[data-model="{second_real_model}"]').all_inner_texts()]
    assert distances == sorted(distances)
    shoot(page, "explorer-models-disagree")
    rows.first.click()
    page.wait_for_url(re.compile(r"/pairs/\d+\?.*agreement=disagree"))
    assert page.locator("#viewer-model").input_value() == "dlib"
    assert page.locator("#viewer-model-b").input_value() == second_real_model
    wait_ready(page)  # neither model's maps were stored: both computed on request, with progress
    wait_ready(page, SIDE_B)
    first, second = (page.locator(f'{side} img[data-overlay="1"]') for side in (SIDE_A, SIDE_B))
    assert "/xmaps/dlib/1/1.png" in first.get_attribute("src")
    assert f"/xmaps/{second_real_model}/1/1.png" in second.get_attribute("src")
    assert "b.model=dlib-int8" in page.url
    page.locator(f'{SIDE_B} .seg[data-control="method"] button[data-value="2"]').click()
    wait_ready(page, SIDE_B)
    assert "/xmaps/dlib-int8/2/" in second.get_attribute("src") and "/xmaps/dlib/1/" in first.get_attribute("src")
    shoot(page, "viewer-side-by-side")
    page.select_option("#viewer-model-b", "")
    assert page.locator('.xv-side[data-side="b"]').is_hidden()


def test_explain_your_own_pair(page: Any, tmp_path: Path) -> None:
    page.goto("/explain")
    page.set_input_files('input[name="image1"]', str(lfw_image("Akhmed_Zakayev", 1)))
    page.set_input_files('input[name="image2"]', str(lfw_image("Akhmed_Zakayev", 3)))
    page.locator("#explain-submit").click()
    page.wait_for_selector('#explain-result[data-state="done"]')
    assert page.locator("#verdict").inner_text() == "Same person"
    assert float(page.locator("#fact-distance").inner_text()) < float(page.locator("#fact-threshold").inner_text())
    wait_ready(page, "#upload-viewer [data-xmap-viewer]")
    page.locator('#upload-viewer .seg[data-control="method"] button[data-value="2"]').click()
    wait_ready(page, "#upload-viewer [data-xmap-viewer]")
    shoot(page, "explain")

    not_a_photo = tmp_path / "notes.txt"
    not_a_photo.write_text("not a photo")
    page.set_input_files('input[name="image1"]', str(not_a_photo))
    page.locator("#explain-submit").click()
    error = page.locator("#explain-error")
    error.wait_for(state="visible")
    assert "notes.txt is not a photo" in error.inner_text()
    shoot(page, "explain-error")


def test_explain_page_shows_the_coarse_maps_first(
    two_level_page: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The 28 px maps of an upload are shown while the job refines them with 14 px patches."""
    monkeypatch.setenv("XFV_CACHE_DIR", str(tmp_path))  # faces explained by other tests are not cached here
    page = two_level_page
    coarse_shown = threading.Event()
    real = uploads.explain_pair_progressively

    def held_after_the_first_level(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for number, step in enumerate(real(*args, **kwargs)):
            yield step
            if number == 0:
                coarse_shown.wait(timeout=60)

    monkeypatch.setattr(uploads, "explain_pair_progressively", held_after_the_first_level)
    viewer = "#upload-viewer [data-xmap-viewer]"
    page.goto("/explain")
    page.set_input_files('input[name="image1"]', str(lfw_image("Akhmed_Zakayev", 1)))
    page.set_input_files('input[name="image2"]', str(lfw_image("Akhmed_Zakayev", 3)))
    page.locator("#explain-submit").click()
    try:
        page.wait_for_selector(f'{viewer}[data-level="28"]')
        page.wait_for_function(
            "sel => [...document.querySelectorAll(sel + ' img.overlay')].every(i => i.complete && i.naturalWidth > 0)",
            arg=viewer,
        )
        assert page.locator("#explain-result").get_attribute("data-state") == "running"
        assert "level=28" in page.locator(f'{viewer} img[data-overlay="1"]').get_attribute("src")
        buttons = page.locator(f'{viewer} .seg[data-control="patch"] button')
        assert buttons.all_inner_texts() == ["28", "merged"]
        assert (
            "Showing the 28 px maps; refining with 14 px patches"
            in page.locator(f"{viewer} [data-message]").inner_text()
        )
        assert re.search(r"level 2 of 2", page.locator(f"{viewer} .progress-text").inner_text())
        assert page.locator(f"{viewer} [data-compute]").is_hidden(), "no compute button while computing"
        assert page.locator("#explain-submit").is_enabled(), "the form is free while the maps compute"
        shoot(page, "explain-coarse")
    finally:
        coarse_shown.set()
    page.wait_for_selector('#explain-result[data-state="done"]')
    wait_ready(page, viewer)
    assert buttons.all_inner_texts() == ["14", "28", "merged"]
    assert "level=" not in page.locator(f'{viewer} img[data-overlay="1"]').get_attribute("src")


def test_explain_page_picks_the_second_face_of_a_couple(page: Any, tmp_path: Path) -> None:
    couple, single = make_couple(tmp_path)
    page.goto("/explain")
    page.set_input_files('input[name="image1"]', str(couple))
    page.set_input_files('input[name="image2"]', str(single))
    page.locator("#explain-submit").click()
    page.wait_for_selector('#explain-result[data-state="done"]')
    boxes = page.locator('[data-face-picker="1"] .face-box')
    assert boxes.count() == 2 and page.locator('[data-face-picker="2"] .face-box').count() == 1
    assert page.locator('[data-face-picker="1"] .face-box.chosen').get_attribute("data-face") == "1"
    caption = page.locator('[data-face-caption="1"]')
    assert "2 faces found · using face 1 (largest and most central)" in caption.inner_text()
    assert page.locator("#verdict").inner_text() == "Different people"
    aligned_before = page.locator('[data-aligned="1"]').screenshot()

    boxes.nth(1).click()
    page.wait_for_selector('[data-face-picker="1"] .face-box.chosen[data-face="2"]')
    page.wait_for_selector('#explain-result[data-state="done"]')
    assert "using face 2 (face 2 as asked)" in page.locator('[data-face-caption="1"]').inner_text()
    assert page.locator("#verdict").inner_text() == "Same person"
    page.wait_for_function("() => document.querySelector('[data-aligned=\"1\"]').complete")
    assert page.locator('[data-aligned="1"]').screenshot() != aligned_before, "the aligned face changed"
    shoot(page, "explain-two-faces")

    cut = tmp_path / "cut.jpg"  # the left third of the face cut off by the photo's edge
    Image.open(single).crop((100, 0, 250, 250)).save(cut)
    page.set_input_files('input[name="image2"]', str(cut))
    page.locator("#explain-submit").click()
    warnings = page.locator('[data-face-warnings="2"]')
    warnings.wait_for(state="visible")
    assert re.fullmatch(r"face cut off: \d+% of its box lies outside the photo", warnings.inner_text().strip())
    assert page.locator('[data-face-warnings="1"]').is_hidden()
    assert "using face 2" in page.locator('[data-face-caption="1"]').inner_text(), "the choice is kept"
    page.wait_for_selector('#explain-result[data-state="done"]')


def test_review_queue(page: Any) -> None:
    page.goto("/review?max_cscore=0.999")
    card = page.locator(".queue-item").first
    card.locator("textarea").fill("the ears do not match")
    card.locator("button.disagree").click()
    card.locator("[data-review-state].saved").wait_for()
    assert "disagree" in card.locator("[data-review-state]").inner_text()
    shoot(page, "review")


def test_api_docs_work_offline(page: Any) -> None:
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .information-container .title")
    assert page.get_by_text("/api/pairs/{pair_id}/xmaps/{model}", exact=False).count() > 0
    shoot(page, "api-docs")
