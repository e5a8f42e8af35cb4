"""Answers of the read-only pages and API calls, reused while the store is unchanged.

The explorer, ``/api/pairs``, the viewer and its neighbours, the landing page and ``/api/stats``
depend only on their URL and on the store's content, and that changes rarely (ingest, compute, a
review, a finished X-Map). So each such request first reads the ``answers`` data
version, a counter that triggers raise with every committed write by any process to the tables
those pages read (every table but the jobs' and the uploads': a running job's progress writes
leave it as it is); an answer rendered for the same URL under the same version is sent again
instead of querying and rendering anew. Every answer carries an ETag of (version, URL), so a
browser revalidating (``Cache-Control: no-cache``) gets 304 Not Modified while nothing changed.

The version is :class:`xfv.store.changes.DataVersionToken`'s: on SQLite it costs two small file
reads while no commit happened, and one tiny query (on a thread) after one; on PostgreSQL one
query. A store without the counter, or an unreadable one, is never cached. An answer is kept
from the second time its URL is rendered under the same version (this process remembers the last
:data:`SEEN_URLS` URLs it rendered, without their bodies): most URLs of a browsing session are
asked once, and a fresh answer then costs no compression and no write to the shared file. Cached
bodies are kept zlib-compressed, at most ``get_settings().answer_cache_bytes`` per server process,
and in a file that every server process of the machine shares (:class:`xfv.cache.BlobCache`,
``web-answers.sqlite`` in the cache folder), so an answer one process rendered is sent by the
others too (``xfv serve --workers N``).
"""

from __future__ import annotations

import hashlib
import re
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xfv.cache import BlobCache
from xfv.store import Store
from xfv.store.changes import DataVersionToken

#: Browsers may keep an answer but must ask (cheaply, with its ETag) before reusing it.
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class _Answer:
    token: bytes
    body: bytes  # zlib-compressed
    media_type: bytes


#: URLs whose first rendering this process remembers (the second one is kept).
SEEN_URLS = 50_000

#: GET paths whose answers depend only on their URL and the store: the explorer, the viewer, the
#: landing page, and the API calls behind them.
CACHEABLE = re.compile(r"^/(|explorer|pairs/[0-9]+|api/stats|api/pairs|api/pairs/[0-9]+|api/pairs/[0-9]+/neighbours)$")


class AnswerCache:
    """ASGI middleware: answers of :data:`CACHEABLE` GET requests by URL, valid while the store's
    ``answers`` data version stays the same (at most ``max_bytes`` of them, compressed, in this
    process; and in ``shared``, the file the server processes share, if given)."""

    def __init__(self, app: ASGIApp, store: Store, max_bytes: int, shared: BlobCache | None = None) -> None:
        self.app = app
        self._version = DataVersionToken(store, "answers")
        self._store_name = store.description.encode()
        self._shared = shared
        self._max_bytes = max_bytes
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._seen: OrderedDict[str, bytes] = OrderedDict()  # URL -> token it was rendered under once
        self._size = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or self._max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        if not CACHEABLE.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = await self._read_token()  # before rendering: a write meanwhile makes the answer stale
        if token is None:
            await self.app(scope, receive, send)
            return
        key = f"{scope['path']}?{scope['query_string'].decode('latin-1')}"
        etag = '"' + hashlib.blake2b(token + key.encode(), digest_size=12).hexdigest() + '"'
        headers = [(b"etag", etag.encode()), (b"cache-control", REVALIDATE.encode())]
        if Headers(scope=scope).get("if-none-match") == etag:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
        if (found is None or found.token != token) and self._shared is not None:
            found = self._from_shared(key, token)
        if found is not None and found.token == token:
            body = zlib.decompress(found.body)
            length = [(b"content-type", found.media_type), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": length + headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, self._recording(send, key, token, headers, keep=self._seen_before(key, token)))

    async def _read_token(self) -> bytes | None:
        """The ``answers`` data version: known without a query (two small file reads) while no commit
        happened since it was last read, else queried on a thread."""
        return self._version.cached() or await anyio.to_thread.run_sync(self._version.read)

    def _shared_key(self, key: str) -> bytes:
        return hashlib.blake2b(self._store_name + b"\n" + key.encode(), digest_size=16).digest()

    def _from_shared(self, key: str, token: bytes) -> _Answer | None:
        """The answer another process (or this one) kept in the shared file, kept here too."""
        assert self._shared is not None
        value = self._shared.get(self._shared_key(key), token)
        if value is None:
            return None
        media_type, body = value.split(b"\n", 1)
        answer = _Answer(token, body, media_type)
        self._keep(key, answer)
        return answer

    def _seen_before(self, key: str, token: bytes) -> bool:
        """Whether this process rendered ``key`` before under ``token``; remembers it otherwise."""
        with self._lock:
            if self._seen.pop(key, None) == token:
                return True
            self._seen[key] = token
            if len(self._seen) > SEEN_URLS:
                self._seen.popitem(last=False)
            return False

    def _recording(self, send: Send, key: str, token: bytes, headers: list[tuple[bytes, bytes]], keep: bool) -> Send:
        """``send`` that tags a 200 answer with its ETag and, with ``keep``, keeps its body once complete."""
        status, media_type, chunks = 0, b"", []

        async def recording(message: Message) -> None:
            nonlocal status, media_type
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 200:
                    media_type = dict(message.get("headers", [])).get(b"content-type", b"")
                    message = {**message, "headers": [*message.get("headers", []), *headers]}
            elif message["type"] == "http.response.body" and status == 200 and keep:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answer = _Answer(token, zlib.compress(b"".join(chunks), 1), media_type)
                    self._keep(key, answer)
                    await send(message)
                    if self._shared is not None:  # after the answer is sent: the client does not wait for it
                        value = answer.media_type + b"\n" + answer.body
                        await anyio.to_thread.run_sync(self._shared.put, self._shared_key(key), token, value)
                    return
            await send(message)

        return recording

    def _keep(self, key: str, answer: _Answer) -> None:
        with self._lock:
            old = self._answers.pop(key, None)
            self._size -= len(old.body) if old else 0
            self._answers[key] = answer
            self._size += len(answer.body)
            while self._size > self._max_bytes and self._answers:
                _, dropped = self._answers.popitem(last=False)
                self._size -= len(dropped.body)
