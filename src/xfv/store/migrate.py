"""Schema migrations with Alembic, run from code: no ``alembic.ini`` needed.

The migration scripts ship inside the package (``xfv/store/migrations``), so an installed xfv
can upgrade any store it opens. To add a migration after changing :mod:`xfv.store.models`::

    python -m xfv.store.migrate "what changed"     # autogenerates a revision against $XFV_DATABASE_URL

then read and tidy the generated file in ``migrations/versions``.
"""

from __future__ import annotations

import sys
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

#: Any constant works; it keeps two processes from migrating one PostgreSQL database at once.
_PG_MIGRATION_LOCK = 720_601


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (and at ``connection`` if given)."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("xfv.store") / "migrations"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the package knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations have no head revision"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at (None for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; a database already there is left untouched."""
    head = head_revision()
    with engine.connect() as connection:
        if current_revision(connection) == head:
            return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), "head")


def make_revision(message: str) -> None:
    """Autogenerate a migration from the difference between the models and the database."""
    command.revision(alembic_config(), message=message, autogenerate=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit('usage: python -m xfv.store.migrate "what changed"')
    make_revision(sys.argv[1])
