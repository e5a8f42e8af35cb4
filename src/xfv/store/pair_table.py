"""The pair table: the data behind the web explorer, the API's pair list, the viewer's
previous/next, the review queue and the export (filters, sorting by any column of any model,
pagination, neighbours), with every compared model's result side by side.

The store's pair table is read once into memory as columns (:class:`PairTable`: numpy arrays of
pair ids, datasets, folds, labels, people, image qualities and, per model, distance, threshold,
decision, correctness and C-Score), a few hundred kilobytes for LFW's 6,000 pairs and three models.
A query is then a boolean mask, a cached full ordering per sort column (stable, ties broken by pair
id) filtered by the mask, and a slice: no SQL, so a page costs the same whatever the filters and
the sort, and comparing models ("they disagree") costs nothing more. :class:`PairTables` keeps the
table of a store while its ``pair_table`` data version stays the same, so every server process
reloads it after any write by any process to what it is read from (SQLite or PostgreSQL).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from xfv.errors import XfvError
from xfv.store.catalog import unknown_dataset, unknown_model
from xfv.store.changes import DataVersionToken
from xfv.store.engine import Store
from xfv.store.models import Dataset, Identity, Image, Model, Pair, PairResult
from xfv.store.results import ModelResult

#: Columns the pair table sorts by; ``position`` is the protocol order (dataset, then line).
SortColumn = Literal[
    "position",
    "dataset",
    "fold",
    "identity1",
    "identity2",
    "label",
    "quality1",
    "quality2",
    "distance",
    "threshold",
    "prediction",
    "correct",
    "cscore",
]
SORT_COLUMNS: tuple[SortColumn, ...] = get_args(SortColumn)
#: Sort columns that read a model's results.
RESULT_SORTS = frozenset({"distance", "threshold", "prediction", "correct", "cscore"})
#: Whether the compared models' decisions on a pair agree (at least two decided, all alike) or not.
Agreement = Literal["agree", "disagree"]
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class PairQuery:
    """Filters, sorting and paging of the pair table; None means "any".

    ``dataset`` None is every dataset; ``model`` None is the first of ``models`` if given, else
    the first model (by name) with results (on ``dataset`` if given), or none at all while nothing
    is computed. Its results are the row's own columns and what the result filters read; the table
    lists the pairs it has a result for. ``models`` are the models compared side by side (None:
    every model with results there), ``agreement`` filters on their decisions, ``sort_model`` is
    the model whose column a result sort reads (default ``model``). ``identity`` matches part of
    either person's name, any case; the quality range applies to the worse image of a pair."""

    dataset: str | None = None
    model: str | None = None
    fold: int | None = None
    same: bool | None = None
    predicted_same: bool | None = None
    correct: bool | None = None
    identity: str | None = None
    min_cscore: float | None = None
    max_cscore: float | None = None
    min_quality: float | None = None
    max_quality: float | None = None
    sort: SortColumn = "position"
    descending: bool = False
    page: int = 1
    per_page: int = 50
    models: tuple[str, ...] | None = None
    agreement: Agreement | None = None
    sort_model: str | None = None

    @property
    def needs_results(self) -> bool:
        """Whether a filter or the sort reads a model's results."""
        result_filters = (self.predicted_same, self.correct, self.min_cscore, self.max_cscore, self.agreement)
        return any(v is not None for v in result_filters) or self.sort in RESULT_SORTS

    def check(self) -> None:
        """Reject what cannot be answered, with a message a web form or a CLI can show."""
        if self.sort not in SORT_COLUMNS:
            raise XfvError(f"cannot sort by {self.sort!r}: use one of {', '.join(SORT_COLUMNS)}")
        if self.page < 1 or not 1 <= self.per_page <= MAX_PAGE_SIZE:
            raise XfvError(f"page must be >= 1 and per_page 1 to {MAX_PAGE_SIZE}")
        if self.agreement is not None and self.agreement not in get_args(Agreement):
            raise XfvError(f"agreement must be one of {', '.join(get_args(Agreement))}, not {self.agreement!r}")


@dataclass(frozen=True)
class PairRow:
    """One pair of the table with its model's result (result fields None without results) and
    the result of every compared model that has one (``results``, by model name, in the table's
    model order). Image paths are relative to the dataset's root."""

    pair_id: int
    dataset: str
    position: int
    fold: int
    same: bool
    image1_id: int
    image1_path: str
    identity1: str
    quality1: float
    image2_id: int
    image2_path: str
    identity2: str
    quality2: float
    distance: float | None
    threshold: float | None
    predicted_same: bool | None
    correct: bool | None
    cscore: float | None
    results: dict[str, ModelResult] = field(default_factory=dict)


@dataclass(frozen=True)
class PairPage:
    """A page of the table, the number of rows matching the filters, the model whose results the
    rows show (None while the store has no results) and the models compared (that one first)."""

    rows: list[PairRow]
    total: int
    page: int
    per_page: int
    model: str | None
    models: list[str] = field(default_factory=list)

    @property
    def offset(self) -> int:
        """Index of the page's first row in the whole ordered table."""
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class Neighbours:
    """Where a pair stands in a table order: its 0-based index, the pairs before and after it
    (None at the ends), and the number of rows; ``index`` None if the filters leave it out."""

    index: int | None
    total: int
    previous: int | None
    next: int | None


@dataclass(frozen=True)
class _Results:
    """One model's results as columns aligned with the table's pairs: NaN where it has none
    (decision and correctness as 1.0 / 0.0 / NaN)."""

    name: str
    has: np.ndarray
    distance: np.ndarray
    threshold: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray
    cscore: np.ndarray
    #: Codes of the datasets it has results on.
    datasets: frozenset[int]

    def column(self, sort: str) -> np.ndarray:
        return {
            "distance": self.distance,
            "threshold": self.threshold,
            "prediction": self.predicted,
            "correct": self.correct,
            "cscore": self.cscore,
        }[sort]


@dataclass(frozen=True)
class _View:
    """A query's matching rows (table indexes, in order), its model and the models compared."""

    order: np.ndarray
    model: _Results | None
    compared: list[_Results]


def _none_if_nan(values: list[float]) -> list[float | None]:
    return [None if v != v else v for v in values]


def _decisions(values: list[float]) -> list[bool | None]:
    return [None if v != v else v == 1.0 for v in values]


class PairTable:
    """The whole pair table of a store in memory, as numpy columns (see the module docstring);
    built by :meth:`load`, read-only afterwards (safe to share between threads)."""

    def __init__(self, pairs: dict[str, np.ndarray], names: dict[str, list[str]], results: list[_Results]) -> None:
        self._pairs = pairs
        self.datasets = names["datasets"]  # by name; a pair's dataset code indexes this list
        self._people = names["people"]  # sorted; a pair's identity codes index this list
        self._people_lower = [name.lower() for name in self._people]
        self._results = {r.name: r for r in results}
        self._known = sorted(self._results)  # every model of the store, with results or not
        self.models = [name for name in self._known if self._results[name].datasets]  # those with results
        self._lower_quality = np.minimum(pairs["quality1"], pairs["quality2"])
        self._orders: dict[tuple[str, str | None, bool], np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pairs["pair_id"])

    @classmethod
    def load(cls, session: Session) -> PairTable:
        """Read every pair, its images and people, and every model's results (six plain queries,
        no ORM objects)."""
        run = session.connection().execute
        datasets = run(select(Dataset.id, Dataset.name).order_by(Dataset.name)).all()
        dataset_code = {row[0]: code for code, row in enumerate(datasets)}
        people = dict(run(select(Identity.id, Identity.name)).all())
        names = sorted(set(people.values()))
        name_code = {name: code for code, name in enumerate(names)}  # people of two datasets may share a name
        person_code = {pid: name_code[name] for pid, name in people.items()}
        images = {row[0]: row[1:] for row in run(select(Image.id, Image.path, Image.quality, Image.identity_id))}
        rows = run(
            select(Pair.id, Pair.dataset_id, Pair.position, Pair.fold, Pair.same, Pair.image1_id, Pair.image2_id)
            .order_by(Pair.id)
        ).all()  # fmt: skip
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        image1, image2 = [images[r[5]] for r in rows], [images[r[6]] for r in rows]
        pairs = {
            "pair_id": ids,
            "dataset": np.array([dataset_code[r[1]] for r in rows], dtype=np.int64),
            "position": np.array([r[2] for r in rows], dtype=np.int64),
            "fold": np.array([r[3] for r in rows], dtype=np.int64),
            "same": np.array([bool(r[4]) for r in rows], dtype=bool),
            "image1_id": np.array([r[5] for r in rows], dtype=np.int64),
            "image2_id": np.array([r[6] for r in rows], dtype=np.int64),
            "image1_path": np.array([i[0] for i in image1], dtype=object),
            "image2_path": np.array([i[0] for i in image2], dtype=object),
            "quality1": np.array([i[1] for i in image1], dtype=np.float64),
            "quality2": np.array([i[1] for i in image2], dtype=np.float64),
            "identity1": np.array([person_code[i[2]] for i in image1], dtype=np.int64),
            "identity2": np.array([person_code[i[2]] for i in image2], dtype=np.int64),
        }
        models = dict(run(select(Model.id, Model.name)).all())
        found = run(
            select(
                PairResult.model_id, PairResult.pair_id, PairResult.dataset_id, PairResult.distance,
                PairResult.threshold, PairResult.predicted_same, PairResult.correct, PairResult.cscore,
            )
        ).all()  # fmt: skip
        by_model: dict[int, list[Any]] = {}
        for row in found:
            by_model.setdefault(row[0], []).append(row)
        results = [_model_results(name, by_model.get(mid, []), ids, dataset_code) for mid, name in models.items()]
        return cls(pairs, {"datasets": [row[1] for row in datasets], "people": names}, results)

    # --- queries ---------------------------------------------------------------------------

    def query(self, q: PairQuery) -> PairPage:
        """One page of the table for ``q``, and how many rows match."""
        view, positions, page = self._page(q)
        return replace(page, rows=self._rows(positions, view))

    def page_ids(self, q: PairQuery) -> tuple[PairPage, list[int]]:
        """:meth:`query`'s page without its rows (``rows`` left empty) and the page's pair ids in
        order: for callers that keep rows rendered, who build those they lack with :meth:`rows_of`."""
        _, positions, page = self._page(q)
        return page, self._pairs["pair_id"][positions].tolist()

    def rows_of(self, q: PairQuery, pair_ids: list[int]) -> list[PairRow]:
        """The rows of ``pair_ids`` (pairs of this table) with the results of the models ``q`` compares."""
        return self._rows(np.searchsorted(self._pairs["pair_id"], pair_ids), self._view(q))

    def every_row(self, q: PairQuery) -> list[PairRow]:
        """Every row ``q`` matches, in its order (paging ignored)."""
        view = self._view(q)
        return self._rows(view.order, view)

    def neighbours(self, q: PairQuery, pair_id: int, index_hint: int | None = None) -> Neighbours:
        """The previous and next pair of ``pair_id`` in the order of ``q`` (its paging is ignored);
        ``index_hint`` (the row's index when the viewer was opened from the table) is tried first."""
        ids = self._pairs["pair_id"][self._view(q).order]
        if index_hint is not None and 0 <= index_hint < len(ids) and ids[index_hint] == pair_id:
            index = index_hint
        else:
            found = np.flatnonzero(ids == pair_id)
            if not len(found):
                return Neighbours(None, len(ids), None, None)
            index = int(found[0])
        previous = int(ids[index - 1]) if index > 0 else None
        following = int(ids[index + 1]) if index + 1 < len(ids) else None
        return Neighbours(index, len(ids), previous, following)

    def default_model(self, dataset: str | None = None) -> str | None:
        """The first model (by name) with results, on ``dataset`` if given."""
        return next(iter(self.models_on(dataset)), None)

    def models_on(self, dataset: str | None = None) -> list[str]:
        """The models with results (on ``dataset`` if given), by name."""
        code = self._dataset_code(dataset) if dataset is not None else None
        return [m for m in self.models if code is None or code in self._results[m].datasets]

    # --- the parts -------------------------------------------------------------------------

    def _dataset_code(self, name: str) -> int:
        try:
            return self.datasets.index(name)
        except ValueError:
            raise unknown_dataset(name, self.datasets) from None

    def _model(self, name: str) -> _Results:
        found = self._results.get(name)
        if found is None:
            raise unknown_model(name, self._known)
        return found

    def _page(self, q: PairQuery) -> tuple[_View, np.ndarray, PairPage]:
        """``q``'s view, the table positions of its page in order, and the page without its rows."""
        view = self._view(q)
        offset = (q.page - 1) * q.per_page
        positions = view.order[offset : offset + q.per_page]
        names = [r.name for r in view.compared]
        return (
            view,
            positions,
            PairPage([], len(view.order), q.page, q.per_page, view.model.name if view.model else None, names),
        )

    def _view(self, q: PairQuery) -> _View:
        """Check ``q``, resolve its names, and find its rows in order."""
        q.check()
        dataset = q.dataset
        code = self._dataset_code(dataset) if dataset is not None else None
        main_name = q.model or (q.models[0] if q.models else self.default_model(dataset))
        model = self._model(main_name) if main_name is not None else None
        if model is None and q.needs_results:
            raise XfvError(
                "filtering or sorting by results needs computed results: the store has none yet (run `xfv compute`)"
            )
        others = q.models if q.models is not None else self.models_on(dataset)
        compared = [model] if model is not None else []
        compared += [self._model(name) for name in dict.fromkeys(others) if model is None or name != model.name]
        mask = model.has.copy() if model is not None else np.ones(len(self), dtype=bool)
        self._filter(mask, q, code, model, compared)
        sort_model = self._model(q.sort_model) if q.sort_model is not None and q.sort in RESULT_SORTS else model
        order = self._order(q.sort, sort_model, q.descending)
        return _View(order[mask[order]], model, compared)

    def _filter(
        self, mask: np.ndarray, q: PairQuery, code: int | None, model: _Results | None, compared: list[_Results]
    ) -> None:
        """Narrow ``mask`` (in place) to the rows ``q``'s filters keep."""
        pairs = self._pairs
        if code is not None:
            mask &= pairs["dataset"] == code
        if q.fold is not None:
            mask &= pairs["fold"] == q.fold
        if q.same is not None:
            mask &= pairs["same"] == q.same
        if model is not None:
            if q.predicted_same is not None:
                mask &= model.predicted == float(q.predicted_same)
            if q.correct is not None:
                mask &= model.correct == float(q.correct)
            if q.min_cscore is not None:
                mask &= model.cscore >= q.min_cscore
            if q.max_cscore is not None:
                mask &= model.cscore <= q.max_cscore
        if q.min_quality is not None:
            mask &= self._lower_quality >= q.min_quality
        if q.max_quality is not None:
            mask &= self._lower_quality <= q.max_quality
        if q.identity and q.identity.strip():
            text = q.identity.strip().lower()
            people = np.array([text in name for name in self._people_lower] or [False], dtype=bool)
            mask &= people[pairs["identity1"]] | people[pairs["identity2"]]
        if q.agreement is not None:
            decisions = np.array([r.predicted for r in compared]).reshape(len(compared), len(self))
            said_same, said_different = (decisions == 1.0).any(axis=0), (decisions == 0.0).any(axis=0)
            if q.agreement == "disagree":
                mask &= said_same & said_different
            else:
                mask &= ((decisions == decisions).sum(axis=0) >= 2) & ~(said_same & said_different)

    def _order(self, sort: str, model: _Results | None, descending: bool) -> np.ndarray:
        """Every row of the table in the order of ``sort`` (ties by pair id, the same direction;
        rows without the value last), computed once per table, column and direction."""
        key = (sort, model.name if model is not None and sort in RESULT_SORTS else None, descending)
        found = self._orders.get(key)
        if found is not None:
            return found
        pairs = self._pairs
        if sort in RESULT_SORTS:
            values = model.column(sort) if model is not None else np.full(len(self), np.nan)
            keys: tuple[np.ndarray, ...] = (values,)
        else:
            keys = {
                "position": (pairs["dataset"], pairs["position"]),
                "dataset": (pairs["dataset"],),
                "fold": (pairs["fold"],),
                "identity1": (pairs["identity1"],),
                "identity2": (pairs["identity2"],),
                "label": (pairs["same"],),
                "quality1": (pairs["quality1"],),
                "quality2": (pairs["quality2"],),
            }[sort]
        ascending = np.lexsort((pairs["pair_id"], *reversed(keys)))  # NaN sorts last
        order = ascending
        if descending:
            missing = np.isnan(keys[0][ascending]) if keys[0].dtype.kind == "f" else np.zeros(len(self), dtype=bool)
            order = np.concatenate([ascending[~missing][::-1], ascending[missing][::-1]])
        with self._lock:
            self._orders[key] = order
        return order

    def _rows(self, indexes: np.ndarray, view: _View) -> list[PairRow]:
        """The table rows at ``indexes``, with the view's model's and compared models' results."""
        pairs = self._pairs
        column = {name: values[indexes].tolist() for name, values in pairs.items()}
        datasets, people = self.datasets, self._people
        cells = {r.name: _cells(r, indexes) for r in view.compared}
        main = cells[view.model.name] if view.model is not None else None
        rows = []
        for n, pair_id in enumerate(column["pair_id"]):
            results = {name: cell for name, found in cells.items() if (cell := found[n]) is not None}
            mine = main[n] if main is not None else None
            rows.append(
                PairRow(
                    pair_id, datasets[column["dataset"][n]], column["position"][n], column["fold"][n],
                    column["same"][n], column["image1_id"][n], column["image1_path"][n],
                    people[column["identity1"][n]], column["quality1"][n], column["image2_id"][n],
                    column["image2_path"][n], people[column["identity2"][n]], column["quality2"][n],
                    mine.distance if mine else None, mine.threshold if mine else None,
                    mine.predicted_same if mine else None, mine.correct if mine else None,
                    mine.cscore if mine else None, results,
                )
            )  # fmt: skip
        return rows


def _cells(results: _Results, indexes: np.ndarray) -> list[ModelResult | None]:
    """A model's results at ``indexes`` (None where it has none)."""
    columns = zip(
        results.has[indexes].tolist(),
        results.distance[indexes].tolist(),
        _none_if_nan(results.threshold[indexes].tolist()),
        _decisions(results.predicted[indexes].tolist()),
        _decisions(results.correct[indexes].tolist()),
        _none_if_nan(results.cscore[indexes].tolist()),
        strict=True,
    )
    name = results.name
    return [ModelResult(name, d, t, p, c, s) if has else None for has, d, t, p, c, s in columns]


def _model_results(name: str, rows: list[Any], ids: np.ndarray, dataset_code: dict[int, int]) -> _Results:
    """One model's result rows (model, pair, dataset, distance, threshold, decision, correct,
    C-Score) as columns aligned with the table's sorted pair ids."""
    at = np.searchsorted(ids, np.array([r[1] for r in rows], dtype=np.int64))

    def spread(position: int) -> np.ndarray:
        values = np.full(len(ids), np.nan)
        values[at] = np.array([np.nan if r[position] is None else float(r[position]) for r in rows])
        return values

    has = np.zeros(len(ids), dtype=bool)
    has[at] = True
    datasets = frozenset(dataset_code[d] for d in {r[2] for r in rows})
    return _Results(name, has, spread(3), spread(4), spread(5), spread(6), spread(7), datasets)


@dataclass(frozen=True)
class _KeptTable:
    """A pair table with the data version it was read after."""

    version: bytes
    table: PairTable


class PairTables:
    """The pair table of a store, kept while its data is unchanged: while the ``pair_table`` data
    version (raised by triggers only with writes to what the table is read from, read again only
    when the store's change token moved: :class:`~xfv.store.changes.DataVersionToken`) stays the
    same, so a running job's progress writes do not make every server process read the table
    again. The table is read in a fresh session after the version, so it is never older than it.
    One load at a time."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._version = DataVersionToken(store, "pair_table")
        self._kept: _KeptTable | None = None
        self._lock = threading.Lock()

    def current(self) -> PairTable:
        """The table as the store holds it now."""
        version = self._version.read()
        kept = self._kept
        if version is not None and kept is not None and kept.version == version:
            return kept.table
        with self._lock:
            kept = self._kept
            if version is not None and kept is not None and kept.version == version:
                return kept.table
            with self._store.sessions() as fresh:
                table = PairTable.load(fresh)
            if version is not None:
                self._kept = _KeptTable(version, table)
            return table


def query_pairs(session: Session, q: PairQuery, tables: PairTables | None = None) -> PairPage:
    """One page of the pair table for ``q``, and how many rows match: the explorer's table, the
    API's pair list and the review queue. With ``tables``, the table kept there is used (read in
    ``session`` otherwise)."""
    return (tables.current() if tables is not None else PairTable.load(session)).query(q)


def pair_neighbours(
    session: Session, q: PairQuery, pair_id: int, index_hint: int | None = None, tables: PairTables | None = None
) -> Neighbours:
    """The previous and next pair of ``pair_id`` in the order of ``q`` (see :meth:`PairTable.neighbours`)."""
    return (tables.current() if tables is not None else PairTable.load(session)).neighbours(q, pair_id, index_hint)


def result_rows(session: Session, dataset: Dataset, model: Model) -> list[PairRow]:
    """Every pair of ``dataset`` with a result of ``model``, in protocol order (for export)."""
    table = PairTable.load(session)
    if model.name not in table.models:
        return []
    return table.every_row(PairQuery(dataset=dataset.name, model=model.name, models=(model.name,)))
