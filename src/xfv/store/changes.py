"""The store's change token: a few bytes that change with every committed write by any process,
read cheaply, so answers computed from the store can be reused while it stays the same.

On SQLite (WAL mode), the write-ahead log's index header (its frame count, running checksum and
salts change with every commit) and the database header's change counter; on PostgreSQL,
``pg_current_wal_lsn()`` (it advances with every write). Any other store has no token.

The SQLite files are read through descriptors this process opens once and never closes: closing
any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included
(https://www.sqlite.org/howtocorrupt.html, 2.2), so a token read by open/read/close made another
process closing the database believe it was the last one and delete the write-ahead log and its
index while this process was still writing to them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from xfv.store.engine import Store
from xfv.store.models import DataVersion


class ChangeToken:
    """Reads a store's change token (see the module docstring); None where there is none."""

    def __init__(self, store: Store) -> None:
        url = store.engine.url
        database = url.database if url.get_backend_name() == "sqlite" else None
        self._sqlite = Path(database) if database and database != ":memory:" else None
        self._postgres = url.get_backend_name() == "postgresql"
        self._engine = store.engine

    @property
    def blocking(self) -> bool:
        """Whether reading waits on the database server (PostgreSQL), not on two small file reads."""
        return self._postgres

    def read(self) -> bytes | None:
        """The token now, None where there is none."""
        if self._sqlite is not None:
            return self._sqlite_token(self._sqlite)
        if self._postgres:
            return self._postgres_token()
        return None

    def _postgres_token(self) -> bytes | None:
        try:
            with self._engine.connect() as connection:
                return str(connection.scalar(text("SELECT pg_current_wal_lsn()"))).encode()
        except SQLAlchemyError:
            return None

    @staticmethod
    def _sqlite_token(path: Path) -> bytes | None:
        try:
            counter = _read_at(path, 24, 4)  # the file change counter (rollback-journal mode)
            if counter is None:
                return None
            index = _read_at(path.with_name(path.name + "-shm"), 0, 48)  # the WAL index header
        except OSError:
            return None
        return counter if index is None else counter + index


def data_version(session: Session, name: str) -> int | None:
    """The counter ``name`` of ``data_versions`` (raised by triggers with every write to the tables
    it covers, see migration 0005); None where the store has none."""
    return session.scalar(select(DataVersion.version).where(DataVersion.name == name))


#: Per file, the descriptor this process reads it through and the file it is (its inode).
_OPEN: dict[Path, tuple[int, int]] = {}
_OPEN_LOCK = threading.Lock()


def _read_at(path: Path, offset: int, size: int) -> bytes | None:
    """``size`` bytes at ``offset`` of ``path`` (None if it does not exist), through a descriptor
    kept open for good: never closed, so SQLite's locks in this process stay (module docstring).
    A file SQLite deleted and made anew is opened anew; the old descriptor stays open too."""
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        return None
    with _OPEN_LOCK:
        found = _OPEN.get(path)
        if found is None or found[1] != inode:
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            found = _OPEN[path] = (descriptor, os.fstat(descriptor).st_ino)
    return os.pread(found[0], size, offset)
