"""The store's change token: a few bytes that change with every committed write by any process,
read cheaply; and :class:`DataVersionToken`, a trigger-raised counter of writes to some tables
only, read again only when the change token moved. What is computed from those tables (the web's
answers, its pair table) is reused while the counter stays the same.

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
    it covers, see migrations 0005 and 0006); None where the store has none."""
    return session.scalar(select(DataVersion.version).where(DataVersion.name == name))


class DataVersionToken:
    """The data version ``name`` as a token for what is kept from the tables it covers: a job's
    progress writes move the change token but not the version, so what is kept stays valid.

    On SQLite the version is queried only when the change token moved since the last read (no
    commit, no new version); on PostgreSQL reading the token costs a round trip too, so the
    version is queried at once. None where the store has no such counter (or it is unreadable)."""

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self._name = name
        self._changes = ChangeToken(store)
        self._last: tuple[bytes, bytes | None] | None = None  # change token -> version read after it

    def cached(self) -> bytes | None:
        """The version last read, if no commit happened since (two small file reads, no query);
        else None: then :meth:`read` queries it."""
        return self._known(self._change_token())

    def read(self) -> bytes | None:
        """The version now, as bytes naming the counter."""
        token = self._change_token()
        found = self._known(token)
        if found is not None:
            return found
        try:
            with self._store.sessions() as session:  # its snapshot starts after the token was read
                version = data_version(session, self._name)
        except SQLAlchemyError:
            return None
        value = None if version is None else f"{self._name}:{version}".encode()
        if token is not None:
            self._last = (token, value)
        return value

    def _change_token(self) -> bytes | None:
        return None if self._changes.blocking else self._changes.read()

    def _known(self, token: bytes | None) -> bytes | None:
        last = self._last
        return last[1] if token is not None and last is not None and last[0] == token else None


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
