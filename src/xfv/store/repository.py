"""Reading and writing the store: every query the CLI, the compute pipeline and the web use.

Tables (ORM classes in :mod:`xfv.store.models`, migrations in ``xfv/store/migrations``):

- ``datasets``: an ingested benchmark (name, protocol, absolute root, input mode, counts).
- ``identities``: people of a dataset. ``images``: files of a dataset, path relative to the root,
  width, height, file size, SHA-256 of the content, quality score in [0, 1]
  (:mod:`xfv.faces.quality`).
- ``pairs``: the protocol's pairs: position in the protocol file (0-based), fold (0-9), label
  ``same``, the two images.
- ``models``: a model by name with its weights hash and spec (one name = one set of weights).
- ``pair_results``: per pair x model: cosine distance (written per compute chunk), then the fold's
  threshold, the decision, its correctness and the C-Score (written together by the scoring step;
  NULL until then).
- ``fold_results``: per dataset x model x fold: threshold and C-Score calibration (L, d0, k, b and
  the calibrator's full JSON) fitted on the other nine folds, and the fold's accuracy.
- ``occlusion_settings`` and ``xmap_results``: X-Maps per pair x model x method x occlusion
  setting: distance, forward passes, and the maps as a compressed float16 ``.npz``
  (:mod:`xfv.store.arrays`: raw maps per patch size and merged, both images). Aligned faces are
  not stored: ``align_path(root / image.path, spec, dataset.input_mode)`` redraws them in
  milliseconds.
- ``jobs`` and ``job_chunks``: batch computations, their chunks and progress
  (:mod:`xfv.store.jobs`).
- ``reviews``: a person's verdict (agree/disagree, comment) on a model's decision for a pair,
  recorded from the web platform's review queue.

The pair table is :func:`query_pairs` (filters, sorting by any column, pagination): the one query
behind the web explorer, the API's pair list and the review queue; :func:`pair_neighbours` walks
its order and :func:`result_rows` exports it. The indexes ``pairs (dataset_id, position | fold |
same)``, ``pair_results (dataset_id, model_id, distance | cscore | correct)`` and, for every
dataset at once, ``pair_results (model_id, distance | cscore)`` keep it fast on 30,000+ pairs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, case, delete, func, insert, null, select, update
from sqlalchemy.orm import Session, aliased

from xfv.errors import DatasetError, ModelError, XfvError
from xfv.method.occlusion import OcclusionSettings
from xfv.models.base import ModelSpec
from xfv.store.arrays import unpack_maps
from xfv.store.models import (
    Dataset,
    FoldResult,
    Identity,
    Image,
    Job,
    Model,
    OcclusionSetting,
    Pair,
    PairResult,
    XMapResult,
)

# --- datasets and models -------------------------------------------------------------------------


def find_dataset(session: Session, name: str) -> Dataset:
    """The dataset called ``name``; the error lists the datasets there are."""
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        known = session.scalars(select(Dataset.name).order_by(Dataset.name)).all()
        hint = f"ingested: {', '.join(known)}" if known else "none is ingested yet: run `xfv ingest` first"
        raise DatasetError(f"no dataset named {name!r} in the store ({hint})")
    return dataset


def find_model(session: Session, name: str) -> Model:
    """The stored model called ``name``; the error lists the models with stored results."""
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        known = session.scalars(select(Model.name).order_by(Model.name)).all()
        hint = f"stored: {', '.join(known)}" if known else "none yet: run `xfv compute` first"
        raise ModelError(f"no model named {name!r} in the store ({hint})")
    return model


def register_model(session: Session, spec: ModelSpec) -> Model:
    """The store's row for ``spec``, added on first use. A name already stored with other weights
    is an error: results of two different networks must never mix under one name."""
    model = session.scalar(select(Model).where(Model.name == spec.name))
    if model is None:
        model = Model(
            name=spec.name, weights_hash=spec.weights_hash, spec=json.loads(json.dumps(spec.to_dict(), default=str))
        )
        session.add(model)
        session.flush()
    elif model.weights_hash != spec.weights_hash:
        raise ModelError(
            f"the store has results of a model named {spec.name!r} with weights {model.weights_hash or '(none)'}, "
            f"but this {spec.name!r} has weights {spec.weights_hash or '(none)'}: give the new model another name"
        )
    return model


@dataclass(frozen=True)
class PairFiles:
    """What a compute worker needs of a pair: ids, label, fold and the two image files' paths."""

    pair_id: int
    position: int
    fold: int
    same: bool
    path1: str
    path2: str


def dataset_pair_files(session: Session, dataset: Dataset) -> list[PairFiles]:
    """All pairs of a dataset in protocol order, with image paths relative to the dataset root."""
    image1, image2 = aliased(Image), aliased(Image)
    rows = session.execute(
        select(Pair.id, Pair.position, Pair.fold, Pair.same, image1.path, image2.path)
        .join(image1, Pair.image1_id == image1.id)
        .join(image2, Pair.image2_id == image2.id)
        .where(Pair.dataset_id == dataset.id)
        .order_by(Pair.position)
    )
    return [PairFiles(*row) for row in rows]


# --- pair results -------------------------------------------------------------------------------


def add_distances(
    session: Session, dataset: Dataset, model: Model, pair_ids: Sequence[int], distances: np.ndarray
) -> None:
    """Insert the distances of one compute chunk (score columns stay NULL until scoring)."""
    rows = [
        {"pair_id": int(pair_id), "model_id": model.id, "dataset_id": dataset.id, "distance": float(distance)}
        for pair_id, distance in zip(pair_ids, distances, strict=True)
    ]
    if rows:
        session.execute(insert(PairResult), rows)


@dataclass(frozen=True)
class DistanceTable:
    """A dataset's distances for one model in protocol order, with labels and folds (for scoring)."""

    pair_ids: np.ndarray
    distances: np.ndarray
    same: np.ndarray
    folds: np.ndarray


def distance_table(session: Session, dataset: Dataset, model: Model) -> DistanceTable:
    """Every stored distance of ``model`` on ``dataset``, in protocol order."""
    rows = session.execute(
        select(Pair.id, PairResult.distance, Pair.same, Pair.fold)
        .join(PairResult, and_(PairResult.pair_id == Pair.id, PairResult.model_id == model.id))
        .where(Pair.dataset_id == dataset.id)
        .order_by(Pair.position)
    ).all()
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return DistanceTable(
        pair_ids=np.asarray(columns[0], dtype=np.int64),
        distances=np.asarray(columns[1], dtype=np.float64),
        same=np.asarray(columns[2], dtype=bool),
        folds=np.asarray(columns[3], dtype=np.int64),
    )


def pair_correctness(session: Session, dataset: Dataset, model: Model) -> dict[int, bool | None]:
    """Pair id -> whether ``model`` decided it right (None before scoring); only pairs with results."""
    query = select(PairResult.pair_id, PairResult.correct).where(
        PairResult.dataset_id == dataset.id, PairResult.model_id == model.id
    )
    return dict(session.execute(query).all())


@dataclass(frozen=True)
class FoldScore:
    """What scoring found for one fold."""

    fold: int
    n_pairs: int
    threshold: float
    accuracy: float
    calibration: dict[str, Any]


def write_scores(
    session: Session,
    dataset: Dataset,
    model: Model,
    table: DistanceTable,
    thresholds: np.ndarray,
    predicted_same: np.ndarray,
    cscores: np.ndarray,
    folds: Sequence[FoldScore],
) -> None:
    """Fill the score columns of every pair result and replace the fold results, in the caller's
    transaction (so readers see all scores of a dataset or none)."""
    correct = predicted_same == table.same
    session.execute(
        update(PairResult),
        [
            {
                "pair_id": int(pair_id),
                "model_id": model.id,
                "threshold": float(t),
                "predicted_same": bool(p),
                "correct": bool(c),
                "cscore": float(s),
            }
            for pair_id, t, p, c, s in zip(table.pair_ids, thresholds, predicted_same, correct, cscores, strict=True)
        ],
    )
    session.execute(delete(FoldResult).where(FoldResult.dataset_id == dataset.id, FoldResult.model_id == model.id))
    session.execute(
        insert(FoldResult),
        [
            {
                "dataset_id": dataset.id,
                "model_id": model.id,
                "fold": fold.fold,
                "n_pairs": fold.n_pairs,
                "threshold": fold.threshold,
                "accuracy": fold.accuracy,
                "cscore_L": fold.calibration["parameters"]["L"],
                "cscore_d0": fold.calibration["parameters"]["d0"],
                "cscore_k": fold.calibration["parameters"]["k"],
                "cscore_b": fold.calibration["parameters"]["b"],
                "calibration": fold.calibration,
            }
            for fold in folds
        ],
    )


def fold_results(session: Session, dataset: Dataset, model: Model) -> list[FoldResult]:
    """The per-fold thresholds, accuracies and calibrations of ``model`` on ``dataset``."""
    query = select(FoldResult).where(FoldResult.dataset_id == dataset.id, FoldResult.model_id == model.id)
    return list(session.scalars(query.order_by(FoldResult.fold)))


# --- X-Maps -------------------------------------------------------------------------------------


def occlusion_setting(session: Session, settings: OcclusionSettings) -> OcclusionSetting:
    """The row for an occlusion configuration, added on first use."""
    key = settings.cache_key()
    row = session.scalar(select(OcclusionSetting).where(OcclusionSetting.key == key))
    if row is None:
        params = {name: getattr(settings, name) for name in settings.__dataclass_fields__}
        row = OcclusionSetting(key=key, params=json.loads(json.dumps(params)))
        session.add(row)
        session.flush()
    return row


#: Up to this many pair ids go into an SQL ``IN``; beyond, all rows of the model and setting are read.
FEW_PAIRS = 500


def missing_xmap_methods(
    session: Session, model: Model, setting_key: str, pair_ids: Iterable[int], methods: Sequence[int]
) -> dict[int, tuple[int, ...]]:
    """Per pair of ``pair_ids``, those of ``methods`` without stored X-Maps of ``model`` under the
    occlusion setting ``setting_key`` (pairs with all of them stored are left out), so adding a
    method asks for that method only."""
    ids = list(pair_ids)
    query = (
        select(XMapResult.pair_id, XMapResult.method)
        .join(OcclusionSetting, OcclusionSetting.id == XMapResult.setting_id)
        .where(XMapResult.model_id == model.id, OcclusionSetting.key == setting_key)
    )
    if len(ids) <= FEW_PAIRS:
        query = query.where(XMapResult.pair_id.in_(ids))
    stored: dict[int, set[int]] = {}
    for pair_id, method in session.execute(query):
        stored.setdefault(pair_id, set()).add(method)
    missing = {pair_id: tuple(m for m in methods if m not in stored.get(pair_id, ())) for pair_id in ids}
    return {pair_id: todo for pair_id, todo in missing.items() if todo}


@dataclass(frozen=True)
class XMapRecord:
    """One pair's X-Maps of one method, as a compute worker returns them."""

    pair_id: int
    method: int
    distance: float
    forward_passes: int
    maps: bytes


def add_xmaps(session: Session, model: Model, setting: OcclusionSetting, records: Sequence[XMapRecord]) -> None:
    """Insert the X-Maps of one compute chunk, skipping pair x method rows already stored (an
    earlier run may have computed some of the methods)."""
    pair_ids = sorted({r.pair_id for r in records})
    stored = set(
        session.execute(
            select(XMapResult.pair_id, XMapResult.method).where(
                XMapResult.model_id == model.id, XMapResult.setting_id == setting.id, XMapResult.pair_id.in_(pair_ids)
            )
        )
    )
    rows = [
        {
            "pair_id": r.pair_id,
            "model_id": model.id,
            "setting_id": setting.id,
            "method": r.method,
            "distance": r.distance,
            "forward_passes": r.forward_passes,
            "maps": r.maps,
        }
        for r in records
        if (r.pair_id, r.method) not in stored
    ]
    if rows:
        session.execute(insert(XMapResult), rows)


@dataclass(frozen=True)
class XMapView:
    """Stored X-Maps of a pair for one method and occlusion setting, maps unpacked to float32."""

    method: int
    setting_key: str
    settings: dict[str, Any]
    distance: float
    forward_passes: int
    maps: dict[str, np.ndarray] = field(repr=False)


def pair_xmaps(session: Session, pair_id: int, model: Model, method: int | None = None) -> list[XMapView]:
    """The stored X-Maps of a pair for ``model`` (every method and setting, or one method)."""
    query = (
        select(XMapResult, OcclusionSetting)
        .join(OcclusionSetting, XMapResult.setting_id == OcclusionSetting.id)
        .where(XMapResult.pair_id == pair_id, XMapResult.model_id == model.id)
        .order_by(OcclusionSetting.id, XMapResult.method)
    )
    if method is not None:
        query = query.where(XMapResult.method == method)
    return [
        XMapView(x.method, s.key, s.params, x.distance, x.forward_passes, unpack_maps(x.maps))
        for x, s in session.execute(query)
    ]


# --- the pair table -----------------------------------------------------------------------------

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
        """``query`` from the base table with the joins named (and those they depend on)."""
        query = query.select_from(self.base)
        if self.with_results and joins:
            query = query.join(Pair, Pair.id == PairResult.pair_id)
        if joins & {"images", "identities"}:
            query = query.join(IMAGE1, IMAGE1.id == Pair.image1_id).join(IMAGE2, IMAGE2.id == Pair.image2_id)
        if "identities" in joins:
            query = query.join(IDENTITY1, IDENTITY1.id == IMAGE1.identity_id)
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
    "identity1": ((IDENTITY1.name,), ("identities",)),
    "identity2": ((IDENTITY2.name,), ("identities",)),
    "label": ((Pair.same,), ("pair",)),
    "quality1": ((IMAGE1.quality,), ("images",)),
    "quality2": ((IMAGE2.quality,), ("images",)),
    "distance": ((PairResult.distance,), ()),
    "threshold": ((PairResult.threshold,), ()),
    "prediction": ((PairResult.predicted_same,), ()),
    "correct": ((PairResult.correct,), ()),
    "cscore": ((PairResult.cscore,), ()),
}
#: Every join a table row needs.
_ROW_JOINS = {"pair", "images", "identities", "dataset"}


def default_model(session: Session, dataset: Dataset | None) -> Model | None:
    """The first model (by name) with results, on ``dataset`` if given."""
    has_results = select(PairResult.pair_id).where(PairResult.model_id == Model.id)
    if dataset is not None:
        has_results = has_results.where(PairResult.dataset_id == dataset.id)
    return session.scalars(select(Model).where(has_results.exists()).order_by(Model.name).limit(1)).first()


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
        plan.where(LOWER_QUALITY >= q.min_quality, "images")
    if q.max_quality is not None:
        plan.where(LOWER_QUALITY <= q.max_quality, "images")
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


def _rows(session: Session, model: Model | None, pair_ids: list[int]) -> list[PairRow]:
    """The table rows of ``pair_ids`` (with ``model``'s results), in that order."""
    plan = _Plan(with_results=model is not None)
    plan.where(plan.pair_id.in_(pair_ids))
    if model is not None:
        plan.where(PairResult.model_id == model.id)
    found = {row[0]: PairRow(*row) for row in session.execute(_row_select(plan))}
    return [found[pair_id] for pair_id in pair_ids if pair_id in found]


def query_pairs(session: Session, q: PairQuery) -> PairPage:
    """One page of the pair table for ``q``, and how many rows match: the explorer's table, the
    API's pair list and the review queue.

    The count joins only the tables its filters need. The page's pair ids are found next, joining
    only what the filters and the sort need, so sorts by a result column walk the indexes
    ``pair_results ([dataset_id,] model_id, column)`` and protocol order walks ``pairs (dataset_id,
    position)``, stopping after one page; only then are those few rows joined to their images,
    people and dataset (a "deferred join")."""
    plan, model = _plan(session, q)
    total = _count(session, plan)
    offset = (q.page - 1) * q.per_page
    pair_ids = list(session.scalars(_ordered_ids(plan, q).limit(q.per_page).offset(offset)))
    return PairPage(_rows(session, model, pair_ids), total, q.page, q.per_page, model.name if model else None)


@dataclass(frozen=True)
class Neighbours:
    """Where a pair stands in a table order: its 0-based index, the pairs before and after it
    (None at the ends), and the number of rows; ``index`` None if the filters leave it out."""

    index: int | None
    total: int
    previous: int | None
    next: int | None


def pair_neighbours(session: Session, q: PairQuery, pair_id: int, index_hint: int | None = None) -> Neighbours:
    """The previous and next pair of ``pair_id`` in the order of ``q`` (its paging is ignored).

    ``index_hint`` (the row's index when the viewer was opened from the table) is checked with one
    three-row query; if the table changed since, the pair is found in the ordered list of ids."""
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
    ids = list(session.scalars(ids_query))
    if pair_id not in ids:
        return Neighbours(None, len(ids), None, None)
    index = ids.index(pair_id)
    return Neighbours(
        index, len(ids), ids[index - 1] if index > 0 else None, ids[index + 1] if index + 1 < len(ids) else None
    )


def result_rows(session: Session, dataset: Dataset, model: Model) -> list[PairRow]:
    """Every pair of ``dataset`` with a result of ``model``, in protocol order (for export)."""
    plan = _Plan(with_results=True)
    plan.where(PairResult.dataset_id == dataset.id)
    plan.where(PairResult.model_id == model.id)
    return [PairRow(*row) for row in session.execute(_row_select(plan).order_by(Pair.position))]

# --- overviews ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSummary:
    """How one model did on one dataset (accuracy is the mean over folds, None before scoring)."""

    model: str
    pairs_done: int
    accuracy: float | None
    accuracy_std: float | None
    mean_cscore: float | None
    xmap_pairs: int


def dataset_models(session: Session, dataset: Dataset) -> list[ModelSummary]:
    """Every model with results on ``dataset``, with its accuracy, mean C-Score and X-Map count."""
    done = (
        select(PairResult.model_id, func.count().label("n"), func.avg(PairResult.cscore).label("cscore"))
        .where(PairResult.dataset_id == dataset.id)
        .group_by(PairResult.model_id)
        .subquery()
    )
    summaries = []
    for model, n, mean_cscore in session.execute(
        select(Model, done.c.n, done.c.cscore).join(done, done.c.model_id == Model.id)
    ):
        accuracies = [f.accuracy for f in fold_results(session, dataset, model)]
        xmap_pairs = session.scalar(
            select(func.count(func.distinct(XMapResult.pair_id)))
            .join(Pair, XMapResult.pair_id == Pair.id)
            .where(Pair.dataset_id == dataset.id, XMapResult.model_id == model.id)
        )
        summaries.append(
            ModelSummary(
                model=model.name,
                pairs_done=int(n),
                accuracy=float(np.mean(accuracies)) if accuracies else None,
                accuracy_std=float(np.std(accuracies)) if accuracies else None,
                mean_cscore=None if mean_cscore is None else float(mean_cscore),
                xmap_pairs=int(xmap_pairs or 0),
            )
        )
    return sorted(summaries, key=lambda s: s.model)


def list_datasets(session: Session) -> list[Dataset]:
    """All ingested datasets by name."""
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


def list_jobs(session: Session, dataset: Dataset | None = None, limit: int = 50) -> list[Job]:
    """The newest jobs first (of one dataset, or all)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if dataset is not None:
        query = query.where(Job.dataset_id == dataset.id)
    return list(session.scalars(query))
