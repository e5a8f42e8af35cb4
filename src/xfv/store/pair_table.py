"""The pair table: one query behind the web explorer, the API's pair list, the review queue and
the export (filters, sorting by any column, pagination, previous/next).

The indexes ``pairs (dataset_id, position | fold | same)``, ``pair_results (dataset_id, model_id,
distance | cscore | correct)`` and, for every dataset at once, ``pair_results (model_id, distance |
cscore)`` keep it fast on 30,000+ pairs.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, Select, case, func, null, select
from sqlalchemy.orm import Session, aliased

from xfv.errors import XfvError
from xfv.store.catalog import default_model, find_dataset, find_model
from xfv.store.changes import ChangeToken
from xfv.store.engine import Store
from xfv.store.models import Dataset, Identity, Image, Model, Pair, PairResult

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
#: Sort columns an index serves (a page of them is read without sorting every matching row).
INDEXED_SORTS = frozenset({"position", "distance", "correct", "cscore"})
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class PairQuery:
    """Filters, sorting and paging of the pair table; None means "any".

    ``dataset`` None is every dataset; ``model`` None is the first model (by name) with results
    (on ``dataset`` if given), or none at all while nothing is computed. ``identity`` matches part
    of either person's name, any case; the quality range applies to the worse image of a pair."""

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

    @property
    def needs_results(self) -> bool:
        """Whether a filter or the sort reads a model's results."""
        result_filters = (self.predicted_same, self.correct, self.min_cscore, self.max_cscore)
        return any(v is not None for v in result_filters) or self.sort in RESULT_SORTS

    def check(self) -> None:
        """Reject what cannot be answered, with a message a web form or a CLI can show."""
        if self.sort not in SORT_COLUMNS:
            raise XfvError(f"cannot sort by {self.sort!r}: use one of {', '.join(SORT_COLUMNS)}")
        if self.page < 1 or not 1 <= self.per_page <= MAX_PAGE_SIZE:
            raise XfvError(f"page must be >= 1 and per_page 1 to {MAX_PAGE_SIZE}")


@dataclass(frozen=True)
class PairRow:
    """One pair of the table with one model's result (result fields None without results).
    Image paths are relative to the dataset's root."""

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


@dataclass(frozen=True)
class PairPage:
    """A page of the table, the number of rows matching the filters, and the model whose results
    the rows show (None while the store has no results)."""

    rows: list[PairRow]
    total: int
    page: int
    per_page: int
    model: str | None

    @property
    def offset(self) -> int:
        """Index of the page's first row in the whole ordered table."""
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


IMAGE1, IMAGE2 = aliased(Image, name="image1"), aliased(Image, name="image2")
IDENTITY1, IDENTITY2 = aliased(Identity, name="identity1"), aliased(Identity, name="identity2")
#: The worse image of a pair decides its quality (portable: no LEAST in SQLite, no 2-argument MIN in PostgreSQL).
LOWER_QUALITY = case((IMAGE1.quality < IMAGE2.quality, IMAGE1.quality), else_=IMAGE2.quality)


@dataclass
class _Plan:
    """The filters of one query as SQL, with the joins they need beyond the base table: the base
    is ``pair_results`` when a model has results (so sorts on its columns walk its indexes),
    else ``pairs``."""

    with_results: bool
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    joins: set[str] = field(default_factory=set)

    @property
    def base(self) -> Any:
        return PairResult if self.with_results else Pair

    @property
    def pair_id(self) -> Any:
        return PairResult.pair_id if self.with_results else Pair.id

    def where(self, condition: ColumnElement[bool], *joins: str) -> None:
        self.conditions.append(condition)
        self.joins.update(joins)

    def joined(self, query: Select[Any], joins: set[str]) -> Select[Any]:
        """``query`` from the base table with the joins named (and those they depend on); an
        image's or person's side is joined only where it is needed (a sort by the first person
        reads neither the second image nor its person)."""
        query = query.select_from(self.base)
        if self.with_results and joins:
            query = query.join(Pair, Pair.id == PairResult.pair_id)
        if joins & {"image1", "identity1"}:
            query = query.join(IMAGE1, IMAGE1.id == Pair.image1_id)
        if joins & {"image2", "identity2"}:
            query = query.join(IMAGE2, IMAGE2.id == Pair.image2_id)
        if "identity1" in joins:
            query = query.join(IDENTITY1, IDENTITY1.id == IMAGE1.identity_id)
        if "identity2" in joins:
            query = query.join(IDENTITY2, IDENTITY2.id == IMAGE2.identity_id)
        if "dataset" in joins:
            query = query.join(Dataset, Dataset.id == Pair.dataset_id)
        return query.where(*self.conditions)


#: Per sort column: the SQL expressions it orders by and the joins they need. Protocol order is
#: (dataset, position), which the unique index ``pairs (dataset_id, position)`` serves.
_SORTS: dict[str, tuple[tuple[Any, ...], tuple[str, ...]]] = {
    "position": ((Pair.dataset_id, Pair.position), ("pair",)),
    "dataset": ((Dataset.name,), ("dataset",)),
    "fold": ((Pair.fold,), ("pair",)),
    "identity1": ((IDENTITY1.name,), ("identity1",)),
    "identity2": ((IDENTITY2.name,), ("identity2",)),
    "label": ((Pair.same,), ("pair",)),
    "quality1": ((IMAGE1.quality,), ("image1",)),
    "quality2": ((IMAGE2.quality,), ("image2",)),
    "distance": ((PairResult.distance,), ()),
    "threshold": ((PairResult.threshold,), ()),
    "prediction": ((PairResult.predicted_same,), ()),
    "correct": ((PairResult.correct,), ()),
    "cscore": ((PairResult.cscore,), ()),
}
#: Every join a table row needs.
_ROW_JOINS = {"pair", "image1", "image2", "identity1", "identity2", "dataset"}
#: Both images: the quality filters read the worse of the two.
_BOTH_IMAGES = ("image1", "image2")


def _only_dataset(session: Session, model: Model) -> int | None:
    """The id of the one dataset with results of ``model``, None if there are several. Saying so
    in the query lets "all datasets" of a one-dataset store walk the (dataset, model, column) indexes."""
    has_results = select(PairResult.pair_id).where(PairResult.dataset_id == Dataset.id, PairResult.model_id == model.id)
    ids = list(session.scalars(select(Dataset.id).where(has_results.exists()).limit(2)))
    return ids[0] if len(ids) == 1 else None


def _plan(session: Session, q: PairQuery) -> tuple[_Plan, Model | None]:
    """Check ``q``, resolve its names and turn its filters into SQL conditions."""
    q.check()
    dataset = find_dataset(session, q.dataset) if q.dataset is not None else None
    model = find_model(session, q.model) if q.model is not None else default_model(session, dataset)
    if model is None and q.needs_results:
        raise XfvError(
            "filtering or sorting by results needs computed results: the store has none yet (run `xfv compute`)"
        )
    plan = _Plan(with_results=model is not None)
    if model is not None:
        plan.where(PairResult.model_id == model.id)
    dataset_id = dataset.id if dataset is not None else (_only_dataset(session, model) if model is not None else None)
    if dataset_id is not None:
        # On the column whose index also serves the sort: pairs (dataset_id, position) for the
        # protocol order, pair_results (dataset_id, model_id, ...) for everything else.
        if q.sort == "position" or model is None:
            plan.where(Pair.dataset_id == dataset_id, "pair")
        else:
            plan.where(PairResult.dataset_id == dataset_id)
    if q.predicted_same is not None:
        plan.where(PairResult.predicted_same.is_(q.predicted_same))
    if q.correct is not None:
        plan.where(PairResult.correct.is_(q.correct))
    if q.min_cscore is not None:
        plan.where(PairResult.cscore >= q.min_cscore)
    if q.max_cscore is not None:
        plan.where(PairResult.cscore <= q.max_cscore)
    if q.same is not None:
        plan.where(Pair.same.is_(q.same), "pair")
    if q.fold is not None:
        plan.where(Pair.fold == q.fold, "pair")
    if q.min_quality is not None:
        plan.where(LOWER_QUALITY >= q.min_quality, *_BOTH_IMAGES)
    if q.max_quality is not None:
        plan.where(LOWER_QUALITY <= q.max_quality, *_BOTH_IMAGES)
    if q.identity and q.identity.strip():
        plan.where(plan.pair_id.in_(_pairs_of_people(q.identity.strip())))
    return plan, model


def _pairs_of_people(text: str) -> Any:
    """Ids of the pairs with a person whose name contains ``text`` (any case): found from the few
    matching identities through the image and pair indexes, not by joining every row."""
    people = select(Identity.id).where(Identity.name.icontains(text, autoescape=True))  # % and _ are literal
    images = select(Image.id).where(Image.identity_id.in_(people))
    return select(Pair.id).where(Pair.image1_id.in_(images)).union(select(Pair.id).where(Pair.image2_id.in_(images)))


def _ordered_ids(plan: _Plan, q: PairQuery) -> Select[Any]:
    """The matching pair ids in the order ``q`` asks for; ties broken by pair id so pages never overlap."""
    keys, sort_joins = _SORTS[q.sort]
    query = plan.joined(select(plan.pair_id), plan.joins | set(sort_joins))
    return query.order_by(*(key.desc() if q.descending else key.asc() for key in (*keys, plan.pair_id)))


def _count(session: Session, plan: _Plan) -> int:
    """How many rows match, joining only the tables the filters need."""
    return session.scalar(plan.joined(select(func.count()), plan.joins)) or 0


def _row_select(plan: _Plan) -> Select[Any]:
    """Full table rows (columns in :class:`PairRow` order) for the pairs ``plan`` matches."""
    results: list[Any] = (
        [PairResult.distance, PairResult.threshold, PairResult.predicted_same, PairResult.correct, PairResult.cscore]
        if plan.with_results
        else [null()] * 5
    )
    columns = select(
        plan.pair_id, Dataset.name, Pair.position, Pair.fold, Pair.same,
        IMAGE1.id, IMAGE1.path, IDENTITY1.name, IMAGE1.quality,
        IMAGE2.id, IMAGE2.path, IDENTITY2.name, IMAGE2.quality,
        *results,
    )  # fmt: skip
    return plan.joined(columns, _ROW_JOINS)


def _rows(session: Session, model_id: int | None, pair_ids: list[int]) -> list[PairRow]:
    """The table rows of ``pair_ids`` (with the results of model ``model_id``), in that order."""
    plan = _Plan(with_results=model_id is not None)
    plan.where(plan.pair_id.in_(pair_ids))
    if model_id is not None:
        plan.where(PairResult.model_id == model_id)
    found = {row[0]: PairRow(*row) for row in session.execute(_row_select(plan))}
    return [found[pair_id] for pair_id in pair_ids if pair_id in found]


def query_pairs(session: Session, q: PairQuery, orders: OrderCache | None = None) -> PairPage:
    """One page of the pair table for ``q``, and how many rows match: the explorer's table, the
    API's pair list and the review queue. With ``orders``, the view's whole order is taken from
    (or kept in) that cache, so other pages of the same view cost no count and no sort.

    The count joins only the tables its filters need. The page's pair ids are found next, joining
    only what the filters and the sort need, so sorts by a result column walk the indexes
    ``pair_results ([dataset_id,] model_id, column)`` and protocol order walks ``pairs (dataset_id,
    position)``, stopping after one page; only then are those few rows joined to their images,
    people and dataset (a "deferred join")."""
    offset = (q.page - 1) * q.per_page
    order = orders.get(q) if orders is not None else None
    if order is not None:
        page_ids = order.ids[offset : offset + q.per_page].tolist()
        return PairPage(_rows(session, order.model_id, page_ids), len(order.ids), q.page, q.per_page, order.model)
    plan, model = _plan(session, q)
    total = _count(session, plan)
    pair_ids = list(session.scalars(_ordered_ids(plan, q).limit(q.per_page).offset(offset)))
    model_id = model.id if model else None
    return PairPage(_rows(session, model_id, pair_ids), total, q.page, q.per_page, model.name if model else None)


@dataclass(frozen=True)
class Neighbours:
    """Where a pair stands in a table order: its 0-based index, the pairs before and after it
    (None at the ends), and the number of rows; ``index`` None if the filters leave it out."""

    index: int | None
    total: int
    previous: int | None
    next: int | None


def pair_neighbours(
    session: Session, q: PairQuery, pair_id: int, index_hint: int | None = None, orders: OrderCache | None = None
) -> Neighbours:
    """The previous and next pair of ``pair_id`` in the order of ``q`` (its paging is ignored).

    ``index_hint`` (the row's index when the viewer was opened from the table) is checked with one
    three-row query; if the table changed since, the pair is found in the ordered list of ids.
    With ``orders``, the view's order comes from that cache."""
    order = orders.get(q) if orders is not None else None
    if order is not None:
        return _neighbours(order.ids, pair_id, index_hint)
    plan, _ = _plan(session, q)
    ids_query = _ordered_ids(plan, q)
    if index_hint is not None and index_hint >= 0:
        start = max(index_hint - 1, 0)
        window = list(session.scalars(ids_query.limit(3).offset(start)))
        position = index_hint - start
        if position < len(window) and window[position] == pair_id:
            previous = window[position - 1] if position > 0 else None
            following = window[position + 1] if position + 1 < len(window) else None
            return Neighbours(index_hint, _count(session, plan), previous, following)
    return _neighbours(array("q", session.scalars(ids_query)), pair_id)


def _neighbours(ids: array[int], pair_id: int, index_hint: int | None = None) -> Neighbours:
    """Where ``pair_id`` stands in the ordered ``ids`` (at ``index_hint`` if it is there)."""
    if index_hint is not None and 0 <= index_hint < len(ids) and ids[index_hint] == pair_id:
        index = index_hint
    elif pair_id in ids:
        index = ids.index(pair_id)
    else:
        return Neighbours(None, len(ids), None, None)
    return Neighbours(
        index, len(ids), ids[index - 1] if index > 0 else None, ids[index + 1] if index + 1 < len(ids) else None
    )


@dataclass(frozen=True)
class _Order:
    """A view's matching pair ids in order, under the change token they were read at."""

    token: bytes
    model_id: int | None
    model: str | None
    ids: array[int]


class OrderCache:
    """Recent table orders, reused while the store is unchanged: per view (filters and sort, any
    page), the matching pair ids in order. Paging through a view and walking it from the viewer ask
    for the same order again and again, and an order by a name, a quality, the fold or the label
    sorts every matching row (no index can serve a sort across the join). Sorts an index serves
    (:data:`INDEXED_SORTS`) are not kept: a page of them costs less than reading the whole order.

    An order is read in a fresh session after the store's change token
    (:class:`~xfv.store.changes.ChangeToken`), so it is never older than its token, and it is used
    only while the token is the same; a store without a token is never cached. At most
    ``max_bytes`` of ids (8 bytes each) are kept, the least recently used dropped first."""

    def __init__(self, store: Store, max_bytes: int) -> None:
        self._store = store
        self._token = ChangeToken(store)
        self._max_bytes = max_bytes
        self._orders: OrderedDict[PairQuery, _Order] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, q: PairQuery) -> _Order | None:
        """The order of ``q``'s view, read now if not kept; None where nothing is cached or an
        index serves the sort (then a page costs no more than reading its rows)."""
        token = self._token.read() if self._max_bytes > 0 and q.sort not in INDEXED_SORTS else None
        if token is None:
            return None
        key = replace(q, page=1, per_page=1)
        with self._lock:
            found = self._orders.get(key)
            if found is not None and found.token == token:
                self._orders.move_to_end(key)
                return found
        with self._store.sessions() as fresh:  # its snapshot starts after the token was read
            plan, model = _plan(fresh, q)
            ids = array("q", fresh.connection().execute(_ordered_ids(plan, q)).scalars())  # no ORM rows
            order = _Order(token, model.id if model else None, model.name if model else None, ids)
        self._keep(key, order)
        return order

    def _keep(self, key: PairQuery, order: _Order) -> None:
        with self._lock:
            old = self._orders.pop(key, None)
            self._size -= 8 * len(old.ids) if old else 0
            self._orders[key] = order
            self._size += 8 * len(order.ids)
            while self._size > self._max_bytes and self._orders:
                _, dropped = self._orders.popitem(last=False)
                self._size -= 8 * len(dropped.ids)


def result_rows(session: Session, dataset: Dataset, model: Model) -> list[PairRow]:
    """Every pair of ``dataset`` with a result of ``model``, in protocol order (for export)."""
    plan = _Plan(with_results=True)
    plan.where(PairResult.dataset_id == dataset.id)
    plan.where(PairResult.model_id == model.id)
    return [PairRow(*row) for row in session.execute(_row_select(plan).order_by(Pair.position))]
