"""The store's change token: a few bytes that change with every committed write by any process,
read cheaply, so answers computed from the store can be reused while it stays the same.

On SQLite (WAL mode), the write-ahead log's index header (its frame count, running checksum and
salts change with every commit) and the database header's change counter; on PostgreSQL,
``pg_current_wal_lsn()`` (it advances with every write). Any other store has no token.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from xfv.store.engine import Store


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
