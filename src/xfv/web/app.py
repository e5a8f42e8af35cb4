"""The FastAPI application: pages, the REST API, static assets and error answers.

``create_app()`` opens the store at ``get_settings().database_url`` (migrating it) and wires
everything; ``xfv serve`` runs it with uvicorn. Every asset is served from this package (and
Swagger UI's from the ``swagger-ui-bundle-v2`` package), so the platform works with no internet
access.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from xfv import __version__
from xfv.cache import BlobCache
from xfv.config import get_settings
from xfv.errors import XfvError
from xfv.method.occlusion import OcclusionSettings
from xfv.models import get_model
from xfv.pipeline.explain import OcclusionEngine
from xfv.store import Store, open_store
from xfv.web import api, pages
from xfv.web.answers import AnswerCache
from xfv.web.api.common import IMMUTABLE
from xfv.web.errors import TooManyJobsError, status_for
from xfv.web.protection import CONTENT_SECURITY_POLICY, Protection
from xfv.web.services import Services
from xfv.web.table_rows import prepare
from xfv.web.templating import templates

log = logging.getLogger(__name__)
STATIC = Path(str(resources.files("xfv.web") / "static"))
DESCRIPTION = (
    "eXplainable Face Verification: browse benchmark pairs with every model's distance, decision and "
    "C-Score, view X-Maps, explain your own pair and review doubtful decisions. Errors answer "
    '`{"detail": "message"}` with a 4xx status.'
)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.url.path != "/openapi.json"


def _error(request: Request, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON error for the API, a page for a browser (with ``headers`` such as Allow or Retry-After)."""
    if _wants_html(request):
        return templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message}, status_code=status, headers=headers
        )
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(XfvError)
    async def user_error(request: Request, exc: XfvError) -> Response:
        retry = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyJobsError) else None
        return _error(request, status_for(exc), str(exc), retry)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), exc.headers)


def _validation_message(exc: RequestValidationError) -> str:
    """One readable line per invalid field, e.g. ``cscore_min: Input should be less than or equal to 1``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


#: The files of the ``swagger-ui-bundle-v2`` package the docs page loads (nothing else of it is served).
SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from local files; its one inline script is allowed by its hash."""
    from swagger_ui_bundle import swagger_ui_path

    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="xfv API",
        swagger_js_url="/vendor/swagger/swagger-ui-bundle.js",
        swagger_css_url="/vendor/swagger/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(page.body).decode()
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    policy = CONTENT_SECURITY_POLICY.replace("script-src 'self'", f"script-src 'self' {hashes}")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    @app.get("/vendor/swagger/{name}", include_in_schema=False)
    def swagger_file(name: str) -> FileResponse:
        if name not in SWAGGER_FILES:
            raise HTTPException(404, f"no file {name!r} here: only the docs page's own files are served")
        return FileResponse(Path(swagger_ui_path) / name, media_type=SWAGGER_FILES[name], headers=IMMUTABLE)


def _warm_up(services: Services) -> None:
    """Read the pair table and render its rows, load the default model and build what its X-Maps
    need, before the first request: the first visitors wait for none of it (a store or model that
    cannot be read is left to the requests, which answer the error)."""
    try:
        prepare(services.tables.current())
    except (SQLAlchemyError, XfvError) as exc:
        log.warning("xfv: the pair table is not read ahead: %s", exc)
    try:
        OcclusionEngine(get_model(services.default_model), services.occlusion).warm_up()
    except XfvError as exc:
        log.warning("xfv: model %s is not loaded ahead: %s", services.default_model, exc)


def create_app(store: Store | None = None, *, occlusion: OcclusionSettings | None = None) -> FastAPI:
    """The web platform on ``store`` (default: the configured one), computing missing X-Maps with
    ``occlusion`` (default: the paper's patch sizes 7, 14, 28 and stride 5)."""
    settings = get_settings()
    own_store = store is None
    store = store or open_store()
    services = Services.build(store, occlusion or OcclusionSettings(), settings)

    answers = settings.answer_cache_bytes
    shared = BlobCache(settings.web_answers_path, answers) if answers > 0 else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_warm_up, services)
        yield
        services.jobs.shutdown()
        if shared is not None:
            shared.close()
        if own_store:
            store.close()

    app = FastAPI(
        title="xfv", description=DESCRIPTION, version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.services = services
    app.add_middleware(AnswerCache, store=store, max_bytes=answers, shared=shared)
    app.add_middleware(Protection, photo_limit=settings.max_upload_bytes)  # outermost: every answer
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _install_docs(app)
    _install_error_handlers(app)
    app.include_router(pages.router)  # first: the explorer and viewer are matched before the API's many routes
    app.include_router(api.router)
    return app
