"""Opening the store: engine, schema migrations and transactions.

``open_store()`` connects to ``get_settings().database_url`` (an SQLite file under ``XFV_HOME`` by
default, PostgreSQL when ``XFV_DATABASE_URL`` says so), brings the schema up to date with the
Alembic migrations shipped in this package, and returns a :class:`Store` whose ``transaction()``
commits everything in its block or nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from xfv.config import get_settings
from xfv.errors import StoreError

#: SQLite waits this long for another writer (another xfv process) before giving up.
SQLITE_BUSY_TIMEOUT_S = 60
#: Connections kept open for reuse. Beyond these the pool opens more on demand and never makes a
#: caller wait (``max_overflow=-1``): the web server's threads hold a connection from their first
#: query until FastAPI has serialised the answer, which itself needs a free thread, so with a
#: bounded pool, requests waiting for a connection (holding every thread) and answers waiting for a
#: thread (holding every connection) would block each other until the pool timed out. The number of
#: open connections is thus bounded by the requests in flight.
POOL_SIZE = 5


def normalise_url(url: str) -> URL:
    """Parse a database URL; ``postgresql://`` means psycopg 3 (the driver xfv installs)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"not a database URL: {url!r} (expected e.g. sqlite:///FILE or postgresql://USER@HOST/DB)"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def describe_url(url: URL) -> str:
    """The URL as text with the password hidden, for messages."""
    return url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys on (SQLite's default is off) and WAL, so readers never block the writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """An engine for ``url`` whose pool never blocks (see :data:`POOL_SIZE`); SQLite files get
    their folder created and safe pragmas."""
    parsed = normalise_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, pool_size=POOL_SIZE, max_overflow=-1
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=-1)
    except NoSuchModuleError:
        raise StoreError(f"no database driver for {describe_url(parsed)}: use sqlite:// or postgresql://") from None
    except ImportError as exc:
        raise StoreError(f"the database driver for {describe_url(parsed)} is not installed ({exc.name})") from None


@dataclass
class Store:
    """A migrated database: ``transaction()`` for work, ``engine`` for the rest."""

    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def description(self) -> str:
        return describe_url(self.engine.url)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose changes are committed at the end of the block, or all rolled back."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def check_connection(engine: Engine) -> None:
    """Fail early with a clear message when the database cannot be reached."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (DBAPIError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StoreError(f"cannot connect to the database {describe_url(engine.url)}: {reason}") from None


def open_store(url: str | None = None, migrate: bool = True) -> Store:
    """Connect to the store at ``url`` (default ``get_settings().database_url``) and migrate it."""
    engine = create_store_engine(url or get_settings().database_url)
    check_connection(engine)
    if migrate:
        from xfv.store.migrate import upgrade

        upgrade(engine)
    return Store(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
