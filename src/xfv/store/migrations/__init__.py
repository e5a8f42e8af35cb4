"""Alembic migrations of the store, applied by :func:`xfv.store.migrate.upgrade`."""
