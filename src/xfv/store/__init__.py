"""The store: datasets, pairs, models, results, X-Maps, reviews and jobs in SQLite or PostgreSQL.

The one data-access layer: the CLI, the compute pipeline and the web read and write the store
only through these modules, one per resource (tables in :mod:`xfv.store.models`):

- :mod:`~xfv.store.engine` (open a store, sessions, transactions), :mod:`~xfv.store.migrate`;
- :mod:`~xfv.store.catalog`: datasets and models by name;
- :mod:`~xfv.store.pairs`: pairs of a dataset, one pair as the viewer shows it;
- :mod:`~xfv.store.pair_table`: the filterable, sortable, paged pair table (explorer, API, queue);
- :mod:`~xfv.store.results`: per-pair and per-fold results of a model;
- :mod:`~xfv.store.xmaps`: stored X-Maps and the methods a pair still lacks;
- :mod:`~xfv.store.images`: image files; :mod:`~xfv.store.reviews`: reviews and the review queue;
- :mod:`~xfv.store.overview`: counts and accuracies for the landing page;
- :mod:`~xfv.store.jobs`: batch compute jobs; :mod:`~xfv.store.web_jobs` and
  :mod:`~xfv.store.uploads`: the web server's jobs and uploaded pairs;
- :mod:`~xfv.store.changes`: the change token; :mod:`~xfv.store.arrays`: packed maps;
  :mod:`~xfv.store.ingest` and :mod:`~xfv.store.export`: benchmarks in, results out.
"""

from xfv.errors import StoreError
from xfv.store.engine import Store, open_store

__all__ = ["Store", "StoreError", "open_store"]
