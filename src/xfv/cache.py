"""A persistent cache of numpy arrays keyed by strings, in one SQLite file.

Embeddings and occlusion embeddings are stored here, keyed by image content, model and
alignment, so a second run of any job costs only reading. SQLite gives atomic writes and safe
use from several processes at once.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import threading
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


_caches: dict[Path, ArrayCache] = {}


def default_cache() -> ArrayCache:
    """The process-wide cache at ``get_settings().embedding_cache_path``."""
    from xfv.config import get_settings

    path = get_settings().embedding_cache_path
    if path not in _caches:
        _caches[path] = ArrayCache(path)
    return _caches[path]
