"""Read-only queries of the web platform, on the store's SQLAlchemy models.

The explorer table (:func:`explorer_page`) starts from ``pair_results`` when a model has results,
so sorts on a model's columns walk the indexes ``pair_results (dataset_id, model_id, distance |
cscore | correct)`` and protocol order walks ``pairs (dataset_id, position)``, stopping after one
page. The count joins only the tables its filters need, and the page's ids are found before the
few rows shown are joined to their images, people and dataset. Without any results (a dataset
ingested but not computed) it reads ``pairs`` and leaves the result columns empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, null, select
from sqlalchemy.orm import Session, aliased

from xfv.errors import XfvError
from xfv.store.models import Dataset, Identity, Image, Model, OcclusionSetting, Pair, PairResult, XMapResult
from xfv.store.repository import ModelSummary, dataset_models, find_dataset, find_model, list_datasets
from xfv.web.errors import NotFoundError
from xfv.web.filters import ExplorerQuery

IMAGE1, IMAGE2 = aliased(Image, name="image1"), aliased(Image, name="image2")
IDENTITY1, IDENTITY2 = aliased(Identity, name="identity1"), aliased(Identity, name="identity2")
#: The worse image of a pair decides its quality (portable: no LEAST in SQLite, no 2-argument MIN in PostgreSQL).
LOWER_QUALITY = case((IMAGE1.quality < IMAGE2.quality, IMAGE1.quality), else_=IMAGE2.quality)

# --- the explorer table -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplorerRow:
    """One pair of the table with one model's result (result fields None without results)."""

    pair_id: int
    dataset: str
    position: int
    fold: int
    same: bool
    image1_id: int
    image2_id: int
    identity1: str
    identity2: str
    quality1: float
    quality2: float
    distance: float | None
    threshold: float | None
    predicted_same: bool | None
    correct: bool | None
    cscore: float | None


@dataclass(frozen=True)
class ExplorerPage:
    """A page of the table, the rows matching the filters, and the model whose results it shows."""

    rows: list[ExplorerRow]
    total: int
    query: ExplorerQuery
    model: str | None
    offset: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


@dataclass
class _Plan:
    """The filters of one query as SQL, with the joins they need beyond the base table."""

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


def _sort_columns(plan: _Plan) -> dict[str, tuple[tuple[Any, ...], tuple[str, ...]]]:
    """Per sort column: the SQL expressions it orders by and the joins they need. Protocol order
    is (dataset, position), which the unique index ``pairs (dataset_id, position)`` serves."""
    return {
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


def _plan(session: Session, q: ExplorerQuery) -> tuple[_Plan, Model | None]:
    """Resolve names and turn the filters into SQL conditions."""
    dataset = find_dataset(session, q.dataset) if q.dataset else None
    model = find_model(session, q.model) if q.model else default_model(session, dataset)
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
    _result_filters(plan, q)
    if q.label is not None:
        plan.where(Pair.same.is_(q.label == "same"), "pair")
    if q.fold is not None:
        plan.where(Pair.fold == q.fold, "pair")
    if q.quality_min is not None:
        plan.where(q.quality_min <= LOWER_QUALITY, "images")
    if q.quality_max is not None:
        plan.where(q.quality_max >= LOWER_QUALITY, "images")
    if q.identity:
        plan.where(plan.pair_id.in_(_pairs_of_people(q.identity.strip())))
    return plan, model


def _pairs_of_people(text: str) -> Any:
    """Ids of the pairs with a person whose name contains ``text`` (any case): found from the few
    matching identities through the image and pair indexes, not by joining every row."""
    people = select(Identity.id).where(Identity.name.ilike(f"%{text}%"))
    images = select(Image.id).where(Image.identity_id.in_(people))
    return select(Pair.id).where(Pair.image1_id.in_(images)).union(select(Pair.id).where(Pair.image2_id.in_(images)))


def _result_filters(plan: _Plan, q: ExplorerQuery) -> None:
    if q.prediction is not None:
        plan.where(PairResult.predicted_same.is_(q.prediction == "same"))
    if q.outcome is not None:
        plan.where(PairResult.correct.is_(q.outcome == "correct"))
    if q.cscore_min is not None:
        plan.where(PairResult.cscore >= q.cscore_min)
    if q.cscore_max is not None:
        plan.where(PairResult.cscore <= q.cscore_max)


def _ordered(plan: _Plan, q: ExplorerQuery, columns: Select[Any], joins: set[str]) -> Select[Any]:
    """``columns`` with ``joins``, filtered and sorted as ``q`` says; ties broken by pair id so pages never overlap."""
    keys, sort_joins = _sort_columns(plan)[q.sort]
    query = plan.joined(columns, plan.joins | joins | set(sort_joins))
    descending = q.order == "desc"
    return query.order_by(*(key.desc() if descending else key.asc() for key in (*keys, plan.pair_id)))


def _row_columns(plan: _Plan) -> Select[Any]:
    results: list[Any] = (
        [PairResult.distance, PairResult.threshold, PairResult.predicted_same, PairResult.correct, PairResult.cscore]
        if plan.with_results
        else [null()] * 5
    )
    return select(
        plan.pair_id,
        Dataset.name,
        Pair.position,
        Pair.fold,
        Pair.same,
        IMAGE1.id,
        IMAGE2.id,
        IDENTITY1.name,
        IDENTITY2.name,
        IMAGE1.quality,
        IMAGE2.quality,
        *results,
    )


#: Every join a table row needs.
ROW_JOINS = {"pair", "images", "identities", "dataset"}


def _rows(session: Session, model: Model | None, pair_ids: list[int]) -> list[ExplorerRow]:
    """The table rows of ``pair_ids`` (with ``model``'s results), in that order."""
    plan = _Plan(with_results=model is not None)
    plan.where(plan.pair_id.in_(pair_ids))
    if model is not None:
        plan.where(PairResult.model_id == model.id)
    found = {row[0]: ExplorerRow(*row) for row in session.execute(plan.joined(_row_columns(plan), ROW_JOINS))}
    return [found[pair_id] for pair_id in pair_ids if pair_id in found]


def explorer_page(session: Session, q: ExplorerQuery) -> ExplorerPage:
    """One page of the pair table for ``q``, and how many rows match.

    The page's pair ids are found first, joining only what the filters and the sort need; then
    only those rows are joined to their images, people and dataset (a "deferred join")."""
    plan, model = _plan(session, q)
    total = session.scalar(plan.joined(select(func.count()), plan.joins)) or 0
    offset = (q.page - 1) * q.per_page
    pair_ids = list(session.scalars(_ordered(plan, q, select(plan.pair_id), set()).limit(q.per_page).offset(offset)))
    return ExplorerPage(_rows(session, model, pair_ids), total, q, model.name if model else None, offset)


@dataclass(frozen=True)
class Neighbours:
    """Where a pair stands in the explorer's current order: its 0-based index, the pairs before
    and after it (None at the ends), and the number of rows; ``index`` None if filtered out."""

    index: int | None
    total: int
    previous: int | None
    next: int | None


def neighbours(session: Session, q: ExplorerQuery, pair_id: int, index_hint: int | None = None) -> Neighbours:
    """The previous and next pair of ``pair_id`` in the order of ``q``.

    ``index_hint`` (the row's index when the viewer was opened from the table) is checked with one
    three-row query; if the table changed since, the pair is found in the ordered list of ids.
    """
    plan, _ = _plan(session, q)
    ids_query = _ordered(plan, q, select(plan.pair_id), set())
    if index_hint is not None and index_hint >= 0:
        start = max(index_hint - 1, 0)
        window = list(session.scalars(ids_query.limit(3).offset(start)))
        position = index_hint - start
        if position < len(window) and window[position] == pair_id:
            total = session.scalar(plan.joined(select(func.count()), plan.joins)) or 0
            previous = window[position - 1] if position > 0 else None
            following = window[position + 1] if position + 1 < len(window) else None
            return Neighbours(index_hint, total, previous, following)
    ids = list(session.scalars(ids_query))
    if pair_id not in ids:
        return Neighbours(None, len(ids), None, None)
    index = ids.index(pair_id)
    return Neighbours(
        index, len(ids), ids[index - 1] if index > 0 else None, ids[index + 1] if index + 1 < len(ids) else None
    )


# --- one pair -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """An image of a pair as the viewer shows it."""

    id: int
    path: str
    identity: str
    width: int
    height: int
    quality: float


@dataclass(frozen=True)
class ModelResult:
    """One model's verdict on a pair (score fields None until scoring ran)."""

    model: str
    distance: float
    threshold: float | None
    predicted_same: bool | None
    correct: bool | None
    cscore: float | None


@dataclass(frozen=True)
class StoredMaps:
    """X-Maps stored for a pair: one model and occlusion setting, with the methods computed."""

    model: str
    setting: str
    params: dict[str, Any]
    methods: list[int]


@dataclass(frozen=True)
class PairDetail:
    """Everything the viewer shows about one pair."""

    pair_id: int
    dataset: str
    protocol: str
    input_mode: str
    position: int
    fold: int
    same: bool
    image1: ImageInfo
    image2: ImageInfo
    results: list[ModelResult]
    xmaps: list[StoredMaps]

    def result(self, model: str) -> ModelResult | None:
        return next((r for r in self.results if r.model == model), None)


def _image_info(image: Image) -> ImageInfo:
    return ImageInfo(image.id, image.path, image.identity.name, image.width, image.height, image.quality)


def get_pair(session: Session, pair_id: int) -> Pair:
    """The pair with id ``pair_id`` (its images and identities loaded), or :class:`NotFoundError`."""
    pair = session.get(Pair, pair_id)
    if pair is None:
        raise NotFoundError(f"no pair with id {pair_id} in the store")
    return pair


def pair_detail(session: Session, pair_id: int) -> PairDetail:
    """The pair, its images, every model's result and the X-Maps stored for it."""
    pair = get_pair(session, pair_id)
    dataset = session.get_one(Dataset, pair.dataset_id)
    return PairDetail(
        pair_id=pair.id,
        dataset=dataset.name,
        protocol=dataset.protocol,
        input_mode=dataset.input_mode,
        position=pair.position,
        fold=pair.fold,
        same=pair.same,
        image1=_image_info(pair.image1),
        image2=_image_info(pair.image2),
        results=results_by_pair(session, [pair.id]).get(pair.id, []),
        xmaps=stored_maps(session, pair.id),
    )


def results_by_pair(session: Session, pair_ids: list[int]) -> dict[int, list[ModelResult]]:
    """Every model's result for each of ``pair_ids`` (models by name)."""
    query = (
        select(
            PairResult.pair_id,
            Model.name,
            PairResult.distance,
            PairResult.threshold,
            PairResult.predicted_same,
            PairResult.correct,
            PairResult.cscore,
        )
        .join(Model, Model.id == PairResult.model_id)
        .where(PairResult.pair_id.in_(pair_ids))
        .order_by(Model.name)
    )
    found: dict[int, list[ModelResult]] = {}
    for pair_id, model, distance, threshold, predicted_same, correct, cscore in session.execute(query):
        found.setdefault(pair_id, []).append(ModelResult(model, distance, threshold, predicted_same, correct, cscore))
    return found


def stored_maps(session: Session, pair_id: int) -> list[StoredMaps]:
    """The X-Maps stored for a pair, grouped by model and occlusion setting."""
    query = (
        select(Model.name, OcclusionSetting.key, OcclusionSetting.params, XMapResult.method)
        .join(Model, Model.id == XMapResult.model_id)
        .join(OcclusionSetting, OcclusionSetting.id == XMapResult.setting_id)
        .where(XMapResult.pair_id == pair_id)
        .order_by(Model.name, OcclusionSetting.id, XMapResult.method)
    )
    groups: dict[tuple[str, str], StoredMaps] = {}
    for model, key, params, method in session.execute(query):
        groups.setdefault((model, key), StoredMaps(model, key, params, [])).methods.append(method)
    return list(groups.values())


def xmap_blob(session: Session, pair_id: int, model: str, method: int, setting: str) -> bytes:
    """The packed maps of one pair x model x method x setting, or :class:`NotFoundError`."""
    blob = session.scalar(
        select(XMapResult.maps)
        .join(Model, Model.id == XMapResult.model_id)
        .join(OcclusionSetting, OcclusionSetting.id == XMapResult.setting_id)
        .where(
            XMapResult.pair_id == pair_id,
            Model.name == model,
            XMapResult.method == method,
            OcclusionSetting.key == setting,
        )
    )
    if blob is None:
        raise NotFoundError(
            f"pair {pair_id} has no stored X-Maps of method {method} for model {model!r} and setting {setting!r}"
        )
    return blob


# --- images ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFile:
    """A stored image's file on disk and what aligning it needs."""

    path: Path
    input_mode: str
    content_hash: str


def image_file(session: Session, image_id: int) -> ImageFile:
    """The file of a registered image; only paths inside their dataset's root are ever returned."""
    row = session.execute(
        select(Image.path, Image.content_hash, Dataset.root, Dataset.input_mode)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Image.id == image_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no image with id {image_id} in the store")
    relative, content_hash, root, input_mode = row
    root_path = Path(root).resolve()
    path = (root_path / relative).resolve()
    if not path.is_relative_to(root_path) or not path.is_file():
        raise NotFoundError(f"image {image_id} is not on disk under its dataset's root")
    return ImageFile(path, input_mode, content_hash)


# --- overview -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetOverview:
    """A dataset and how each model did on it."""

    name: str
    protocol: str
    pairs: int
    images: int
    models: list[ModelSummary]


@dataclass(frozen=True)
class Overview:
    """What the store holds, for the landing page and ``/api/stats``."""

    datasets: list[DatasetOverview]
    models: list[str]
    pairs: int
    results: int
    xmap_pairs: int
    example_pair: int | None
    example_model: str | None


def overview(session: Session) -> Overview:
    """Datasets, models, counts, accuracy per dataset x model, and an example pair to show."""
    datasets = [
        DatasetOverview(d.name, d.protocol, d.pair_count, d.image_count, dataset_models(session, d))
        for d in list_datasets(session)
    ]
    example_pair, example_model = _example(session)
    return Overview(
        datasets=datasets,
        models=list(session.scalars(select(Model.name).order_by(Model.name))),
        pairs=session.scalar(select(func.count()).select_from(Pair)) or 0,
        results=session.scalar(select(func.count()).select_from(PairResult)) or 0,
        xmap_pairs=session.scalar(select(func.count(func.distinct(XMapResult.pair_id)))) or 0,
        example_pair=example_pair,
        example_model=example_model,
    )


def _example(session: Session) -> tuple[int | None, str | None]:
    """The pair (and model) the landing page shows: the first with stored X-Maps, else the first pair."""
    stored = session.execute(
        select(XMapResult.pair_id, Model.name)
        .join(Model, Model.id == XMapResult.model_id)
        .order_by(XMapResult.id)
        .limit(1)
    ).first()
    if stored is not None:
        return stored[0], stored[1]
    first_model = default_model(session, None)
    return session.scalar(select(Pair.id).order_by(Pair.id).limit(1)), first_model.name if first_model else None


def dataset_names(session: Session) -> list[str]:
    return list(session.scalars(select(Dataset.name).order_by(Dataset.name)))


def model_names(session: Session) -> list[str]:
    return list(session.scalars(select(Model.name).order_by(Model.name)))
