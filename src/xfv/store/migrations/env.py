"""Alembic environment: migrates the connection handed over by :mod:`xfv.store.migrate`.

Run by Alembic only. Without a handed-over connection (the ``alembic`` command line), it
connects to ``get_settings().database_url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from xfv.config import get_settings
from xfv.store.engine import create_store_engine
from xfv.store.models import Base


def run_migrations(connection: Connection) -> None:
    # Batch mode lets later migrations alter tables on SQLite too (it rebuilds the table).
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("xfv migrations run online only: they need a database connection")

handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    run_migrations(handed_over)
else:
    with create_store_engine(get_settings().database_url).begin() as connection:
        run_migrations(connection)
