"""Answers of the read-only pages and API calls, reused while the store is unchanged.

The explorer, ``/api/pairs``, the viewer and its neighbours depend only on their URL and on the
store's content, and the store changes rarely (ingest, compute, a review, a finished X-Map). So
each such request first reads the store's change token, a few bytes that change with every
committed write by any process; an answer rendered for the same URL under the same token is sent
again instead of querying and rendering anew. Every answer carries an ETag of (token, URL), so a
browser revalidating (``Cache-Control: no-cache``) gets 304 Not Modified while nothing changed.

The token: on SQLite (WAL mode), the write-ahead log's index header (its frame count, running
checksum and salts change with every commit) and the database header's change counter; on
PostgreSQL, ``pg_current_wal_lsn()`` (it advances with every write). Any other store, or an
unreadable token, is never cached. Cached bodies are kept zlib-compressed, at most
``get_settings().answer_cache_bytes`` per server process.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from xfv.store import Store

#: Browsers may keep an answer but must ask (cheaply, with its ETag) before reusing it.
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class _Answer:
    token: bytes
    body: bytes  # zlib-compressed
    media_type: str | None


class ChangeToken:
    """Reads a store's change token (see the module docstring); None where there is none."""

    def __init__(self, store: Store) -> None:
        url = store.engine.url
        database = url.database if url.get_backend_name() == "sqlite" else None
        self._sqlite = Path(database) if database and database != ":memory:" else None
        self._postgres = url.get_backend_name() == "postgresql"

    def read(self, session: Session) -> bytes | None:
        if self._sqlite is not None:
            return self._sqlite_token(self._sqlite)
        if self._postgres:
            try:
                return str(session.scalar(text("SELECT pg_current_wal_lsn()"))).encode()
            except SQLAlchemyError:
                return None
        return None

    @staticmethod
    def _sqlite_token(path: Path) -> bytes | None:
        try:
            with open(path, "rb") as database:
                database.seek(24)
                counter = database.read(4)  # the file change counter (rollback-journal mode)
            shm = path.with_name(path.name + "-shm")
            if not shm.exists():
                return counter
            with open(shm, "rb") as index:
                return counter + index.read(48)  # the WAL index header
        except OSError:
            return None


class AnswerCache:
    """Rendered answers by URL, valid while the store's change token stays the same."""

    def __init__(self, store: Store, max_bytes: int) -> None:
        self._token = ChangeToken(store)
        self._max_bytes = max_bytes
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def answer(self, request: Request, session: Session, render: Callable[[], Response]) -> Response:
        """The answer to ``request``: 304 when the browser's copy is current, a reused body when the
        store did not change since it was rendered, else ``render()`` (kept for next time)."""
        token = self._token.read(session) if self._max_bytes > 0 else None
        if token is None:
            return render()
        key = f"{request.url.path}?{request.url.query}"
        etag = '"' + hashlib.blake2b(token + key.encode(), digest_size=12).hexdigest() + '"'
        headers = {"ETag": etag, "Cache-Control": REVALIDATE}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
        if found is not None and found.token == token:
            return Response(zlib.decompress(found.body), media_type=found.media_type, headers=headers)
        response = render()
        if response.status_code == 200:
            self._keep(key, _Answer(token, zlib.compress(bytes(response.body), 1), response.media_type))
        response.headers.update(headers)
        return response

    def _keep(self, key: str, answer: _Answer) -> None:
        with self._lock:
            old = self._answers.pop(key, None)
            self._size -= len(old.body) if old else 0
            self._answers[key] = answer
            self._size += len(answer.body)
            while self._size > self._max_bytes and self._answers:
                _, dropped = self._answers.popitem(last=False)
                self._size -= len(dropped.body)
