"""A persistent cache of numpy arrays keyed by strings, in one SQLite file (and :class:`BlobCache`,
bytes that several processes share).

Embeddings and occlusion embeddings are stored here, keyed by image content, model and
alignment, so a second run of any job costs only reading. SQLite gives atomic writes and safe
use from several processes at once.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def content_hash(data: bytes) -> str:
    """Hex SHA-256 of some bytes (an image file's content, say)."""
    return hashlib.sha256(data).hexdigest()


def file_content_hash(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return content_hash(Path(path).read_bytes())


def _to_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _from_bytes(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


class ArrayCache:
    """``get``/``put`` numpy arrays by key; thread-safe, process-safe, durable."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        with self._lock, self._connection:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("CREATE TABLE IF NOT EXISTS arrays (key TEXT PRIMARY KEY, value BLOB NOT NULL)")

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            row = self._connection.execute("SELECT value FROM arrays WHERE key = ?", (key,)).fetchone()
        return None if row is None else _from_bytes(row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached arrays among ``keys`` (missing keys are simply absent)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._connection.execute(f"SELECT key, value FROM arrays WHERE key IN ({marks})", chunk)
                found.update((key, _from_bytes(value)) for key, value in rows)
        return found

    def put(self, key: str, array: np.ndarray) -> None:
        self.put_many({key: array})

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        rows = [(key, _to_bytes(array)) for key, array in items.items()]
        with self._lock, self._connection:
            self._connection.executemany("INSERT OR REPLACE INTO arrays (key, value) VALUES (?, ?)", rows)

    def close(self) -> None:
        self._connection.close()


class BlobCache:
    """Bytes by key and tag in one SQLite file that several processes share (WAL), about
    ``max_bytes`` at most: a value is found only under the tag it was kept with (a change token,
    say), a new tag drops the values of the others, and past ``max_bytes`` the older half goes.
    A cache and nothing more: an unreadable or busy file reads as a miss and keeps nothing."""

    #: Puts between two checks of the total size.
    CHECK_EVERY = 64

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._tag: bytes | None = None
        self._puts = 0

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=1, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")  # losing a cache entry in a crash is harmless
            connection.execute(
                "CREATE TABLE IF NOT EXISTS blobs (key BLOB PRIMARY KEY, tag BLOB NOT NULL, value BLOB NOT NULL, "
                "size INTEGER NOT NULL, added INTEGER NOT NULL)"
            )
            connection.execute("CREATE INDEX IF NOT EXISTS ix_blobs_added ON blobs (added)")
            self._connection = connection
        return self._connection

    def get(self, key: bytes, tag: bytes) -> bytes | None:
        """The value kept under ``key`` with ``tag``, if any."""
        try:
            with self._lock:
                row = (
                    self._connect().execute("SELECT value FROM blobs WHERE key = ? AND tag = ?", (key, tag)).fetchone()
                )
        except (sqlite3.Error, OSError):
            return None
        return None if row is None else bytes(row[0])

    def put(self, key: bytes, tag: bytes, value: bytes) -> None:
        """Keep ``value`` under ``key`` and ``tag`` (replacing what was there)."""
        try:
            with self._lock:
                connection = self._connect()
                if tag != self._tag:  # values of other tags can never be found again
                    connection.execute("DELETE FROM blobs WHERE tag != ?", (tag,))
                    self._tag = tag
                connection.execute(
                    "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?)", (key, tag, value, len(value), time.time_ns())
                )
                self._puts += 1
                if self._puts % self.CHECK_EVERY == 0:
                    self._shrink(connection)
        except (sqlite3.Error, OSError):
            return

    def _shrink(self, connection: sqlite3.Connection) -> None:
        """Drop the older half of the values once they pass ``max_bytes``."""
        size, count = connection.execute("SELECT coalesce(sum(size), 0), count(*) FROM blobs").fetchone()
        if size > self.max_bytes:
            connection.execute(
                "DELETE FROM blobs WHERE added <= (SELECT added FROM blobs ORDER BY added LIMIT 1 OFFSET ?)",
                (count // 2,),
            )

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


_caches: dict[Path, ArrayCache] = {}


def default_cache() -> ArrayCache:
    """The process-wide cache at ``get_settings().embedding_cache_path``."""
    from xfv.config import get_settings

    path = get_settings().embedding_cache_path
    if path not in _caches:
        _caches[path] = ArrayCache(path)
    return _caches[path]
