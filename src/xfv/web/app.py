"""The FastAPI application: pages, the REST API, static assets and error answers.

``create_app()`` opens the store at ``get_settings().database_url`` (migrating it) and wires
everything; ``xfv serve`` runs it with uvicorn. Every asset is served from this package (and
Swagger UI's from the ``swagger-ui-bundle-v2`` package), so the platform works with no internet
access.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from xfv import __version__
from xfv.config import get_settings
from xfv.errors import XfvError
from xfv.method.occlusion import OcclusionSettings
from xfv.store import Store, open_store
from xfv.web import api, pages
from xfv.web.errors import status_for
from xfv.web.services import Services
from xfv.web.templating import templates
from xfv.web.uploads import human_size

STATIC = Path(str(resources.files("xfv.web") / "static"))
DESCRIPTION = (
    "eXplainable Face Verification: browse benchmark pairs with every model's distance, decision and "
    "C-Score, view X-Maps, explain your own pair and review doubtful decisions. Errors answer "
    '`{"detail": "message"}` with a 4xx status.'
)


class UploadLimit:
    """Refuses a request body announced larger than two photos (plus form overhead) before it is read (413)."""

    def __init__(self, app: ASGIApp, photo_limit: int) -> None:
        self.app = app
        self.photo_limit = photo_limit
        self.limit = 2 * photo_limit + 1_000_000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT"):
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit:
                size, limit = human_size(int(length)), human_size(self.photo_limit)
                message = f"the upload is {size}: far over the limit of {limit} per photo"
                await JSONResponse({"detail": message}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.url.path != "/openapi.json"


def _error(request: Request, status: int, message: str) -> Response:
    """A JSON error for the API, a page for a browser."""
    if _wants_html(request):
        return templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message}, status_code=status
        )
    return JSONResponse({"detail": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(XfvError)
    async def user_error(request: Request, exc: XfvError) -> Response:
        return _error(request, status_for(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))


def _validation_message(exc: RequestValidationError) -> str:
    """One readable line per invalid field, e.g. ``cscore_min: Input should be less than or equal to 1``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from local files (the ``swagger-ui-bundle-v2`` package)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/vendor/swagger", StaticFiles(directory=str(swagger_ui_path)), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="xfv API",
            swagger_js_url="/vendor/swagger/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},
        )


def create_app(store: Store | None = None, *, occlusion: OcclusionSettings | None = None) -> FastAPI:
    """The web platform on ``store`` (default: the configured one), computing missing X-Maps with
    ``occlusion`` (default: the paper's patch sizes 7, 14, 28 and stride 5)."""
    settings = get_settings()
    own_store = store is None
    store = store or open_store()
    services = Services.build(
        store, occlusion or OcclusionSettings(), settings.default_model, settings.max_upload_bytes
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        services.jobs.shutdown()
        if own_store:
            store.close()

    app = FastAPI(
        title="xfv", description=DESCRIPTION, version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.services = services
    app.add_middleware(UploadLimit, photo_limit=settings.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _install_docs(app)
    _install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(pages.router)
    return app
