"""The store: datasets, pairs, models, results, X-Maps and jobs in SQLite or PostgreSQL."""

from xfv.store.engine import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]
