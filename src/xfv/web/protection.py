"""What every answer and every request goes through: security headers, same-origin writes, body limits.

One ASGI middleware, :class:`Protection`, outermost in the app:

- every answer gets a Content-Security-Policy (only this server's scripts; no framing), nosniff,
  a Referrer-Policy and X-Frame-Options; a redirect's ``Location`` is made relative, so a forged
  ``Host`` header is never reflected into it;
- a state-changing request (not GET, HEAD or OPTIONS) whose ``Origin`` (or, without one, ``Referer``)
  is another site's is refused with 403, so a foreign page cannot post uploads or start jobs in a
  visitor's browser; clients that send neither (curl, scripts) are served;
- a request body is counted as it arrives, announced (``Content-Length``) or not (chunked): a
  multipart upload may hold two photos plus form overhead, anything else (JSON) :data:`JSON_LIMIT`
  bytes; beyond that the request is answered 413 without reading further.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xfv.web.uploads import human_size

#: Largest non-multipart body (a review is a few hundred bytes).
JSON_LIMIT = 64 * 1024
#: Form fields and multipart framing beside the two photos of an upload.
FORM_OVERHEAD = 1_000_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Pages load only this server's scripts and styles (style attributes carry bar widths); pictures
#: may be data/blob URLs (Swagger UI's icons, the explain page's previews).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lower case; None for ``null`` or a URL without a host."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def foreign_origin(scope: Scope, headers: Headers) -> str | None:
    """The other site a state-changing request comes from (its Origin, else its Referer), or None
    when it comes from this server's own pages or names no origin at all."""
    claimed = headers.get("origin") or headers.get("referer")
    if claimed is None:
        return None
    own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
    origin = _origin(claimed)
    return None if origin == own else (origin or claimed[:100])


class BodyTooLarge(HTTPException):
    """A request body that grew past its limit while it was read (413)."""

    def __init__(self, size: int, limit: int, photo_limit: int, multipart: bool) -> None:
        what = f"the upload is {human_size(size)}: far over the limit of {human_size(photo_limit)} per photo"
        super().__init__(413, what if multipart else f"the request body is over {human_size(limit)}")
        self.limit = limit


class Protection:
    """Security headers on every answer, same-origin state changes and counted request bodies."""

    def __init__(self, app: ASGIApp, photo_limit: int) -> None:
        self.app = app
        self.photo_limit = photo_limit
        self.upload_limit = 2 * photo_limit + FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)

        async def send_protected(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in answer:
                        answer[name] = value
                if "location" in answer:
                    answer["location"] = _relative(answer["location"])
            await send(message)

        if scope["method"] not in SAFE_METHODS:
            foreign = foreign_origin(scope, headers)
            if foreign is not None:
                message = f"refused a {scope['method']} from another site ({foreign}): use this server's own pages"
                await JSONResponse({"detail": message}, status_code=403)(scope, receive, send_protected)
                return
            multipart = headers.get("content-type", "").lower().startswith("multipart/")
            limit = self.upload_limit if multipart else JSON_LIMIT
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                error = BodyTooLarge(int(length), limit, self.photo_limit, multipart)
                await JSONResponse({"detail": error.detail}, status_code=413)(scope, receive, send_protected)
                return
            receive = self._counted(receive, limit, multipart)
        await self.app(scope, receive, send_protected)

    def _counted(self, receive: Receive, limit: int, multipart: bool) -> Receive:
        """``receive`` that raises :class:`BodyTooLarge` once the body passes ``limit`` bytes."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(seen, limit, self.photo_limit, multipart)
            return message

        return counted


def _relative(location: str) -> str:
    """A redirect target without scheme and host (the browser keeps the host it asked)."""
    parts = urlsplit(location)
    if not parts.netloc:
        return location
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
