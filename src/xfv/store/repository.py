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

The explorer's pair table is :func:`query_pairs` (filters, sorting, pagination); indexes on
``pairs (dataset_id, position | fold | same)`` and ``pair_results (dataset_id, model_id,
distance | cscore | correct)`` keep it fast on 30,000+ pairs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Select, and_, case, delete, func, insert, or_, select, update
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


def pairs_with_xmaps(session: Session, model: Model, setting: OcclusionSetting, methods: Sequence[int]) -> set[int]:
    """Ids of the pairs that already have X-Maps of every one of ``methods``."""
    query = (
        select(XMapResult.pair_id)
        .where(
            XMapResult.model_id == model.id, XMapResult.setting_id == setting.id, XMapResult.method.in_(list(methods))
        )
        .group_by(XMapResult.pair_id)
        .having(func.count() == len(set(methods)))
    )
    return set(session.scalars(query))


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


# --- the explorer's pair table ------------------------------------------------------------------


@dataclass(frozen=True)
class PairRow:
    """One row of the pair table: the pair, its images and, with a model, that model's result."""

    pair_id: int
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
    distance: float | None = None
    threshold: float | None = None
    predicted_same: bool | None = None
    correct: bool | None = None
    cscore: float | None = None


#: Sort keys of :class:`PairQuery`; ``quality`` is the lower quality of the pair's two images.
SORT_KEYS = ("position", "fold", "distance", "cscore", "quality", "identity")
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class PairQuery:
    """Filters, sorting and paging of the pair table; None means "any". ``model`` is needed for
    the result columns and their filters. ``identity`` matches part of either name, any case."""

    dataset: str
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
    sort: str = "position"
    descending: bool = False
    page: int = 1
    per_page: int = 50

    def check(self) -> None:
        """Reject what cannot be answered, with a message a web form can show."""
        if self.sort not in SORT_KEYS:
            raise XfvError(f"cannot sort by {self.sort!r}: use one of {', '.join(SORT_KEYS)}")
        if self.page < 1 or not 1 <= self.per_page <= MAX_PAGE_SIZE:
            raise XfvError(f"page must be >= 1 and per_page 1 to {MAX_PAGE_SIZE}")
        needs_model = (self.predicted_same, self.correct, self.min_cscore, self.max_cscore)
        if self.model is None and (any(v is not None for v in needs_model) or self.sort in ("distance", "cscore")):
            raise XfvError("filtering or sorting by a result needs a model")


@dataclass(frozen=True)
class PairPage:
    """One page of the pair table and the number of rows matching the filters."""

    rows: list[PairRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class _PairTable:
    """The pair table's select (outer-joined to a model's results) and the columns queries need."""

    query: Select  # type: ignore[type-arg]  # its row type depends on the model columns
    quality: Any
    identity1: Any
    identity2: Any

    def sort_column(self, key: str) -> Any:
        columns = {
            "position": Pair.position,
            "fold": Pair.fold,
            "quality": self.quality,
            "identity": self.identity1,
            "distance": PairResult.distance,
            "cscore": PairResult.cscore,
        }
        return columns[key]


def _pair_table(dataset: Dataset, model: Model | None) -> _PairTable:
    image1, image2 = aliased(Image), aliased(Image)
    identity1, identity2 = aliased(Identity), aliased(Identity)
    columns = [
        Pair.id, Pair.position, Pair.fold, Pair.same,
        image1.id, image1.path, identity1.name, image1.quality,
        image2.id, image2.path, identity2.name, image2.quality,
    ]  # fmt: skip
    if model is not None:
        columns += [
            PairResult.distance,
            PairResult.threshold,
            PairResult.predicted_same,
            PairResult.correct,
            PairResult.cscore,
        ]
    query = (
        select(*columns)
        .join(image1, Pair.image1_id == image1.id)
        .join(image2, Pair.image2_id == image2.id)
        .join(identity1, image1.identity_id == identity1.id)
        .join(identity2, image2.identity_id == identity2.id)
        .where(Pair.dataset_id == dataset.id)
    )
    if model is not None:
        query = query.outerjoin(PairResult, and_(PairResult.pair_id == Pair.id, PairResult.model_id == model.id))
    lower_quality = case((image1.quality < image2.quality, image1.quality), else_=image2.quality)
    return _PairTable(query, lower_quality, identity1.name, identity2.name)


def _filtered(table: _PairTable, q: PairQuery) -> Select:  # type: ignore[type-arg]
    conditions = []
    if q.fold is not None:
        conditions.append(Pair.fold == q.fold)
    if q.same is not None:
        conditions.append(Pair.same.is_(q.same))
    if q.predicted_same is not None:
        conditions.append(PairResult.predicted_same.is_(q.predicted_same))
    if q.correct is not None:
        conditions.append(PairResult.correct.is_(q.correct))
    if q.min_cscore is not None:
        conditions.append(PairResult.cscore >= q.min_cscore)
    if q.max_cscore is not None:
        conditions.append(PairResult.cscore <= q.max_cscore)
    if q.min_quality is not None:
        conditions.append(table.quality >= q.min_quality)
    if q.max_quality is not None:
        conditions.append(table.quality <= q.max_quality)
    if q.identity:
        pattern = f"%{q.identity}%"
        conditions.append(or_(table.identity1.ilike(pattern), table.identity2.ilike(pattern)))
    return table.query.where(*conditions)


def query_pairs(session: Session, q: PairQuery) -> PairPage:
    """A page of the pair table of ``q.dataset`` (with ``q.model``'s results), filtered and sorted;
    ties are broken by position so pages never overlap."""
    q.check()
    dataset = find_dataset(session, q.dataset)
    model = find_model(session, q.model) if q.model is not None else None
    table = _pair_table(dataset, model)
    query = _filtered(table, q)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    key = table.sort_column(q.sort)
    ordered = query.order_by(key.desc() if q.descending else key.asc(), Pair.position)
    rows = session.execute(ordered.limit(q.per_page).offset((q.page - 1) * q.per_page)).all()
    return PairPage([PairRow(*row) for row in rows], total, q.page, q.per_page)


def result_rows(session: Session, dataset: Dataset, model: Model) -> list[PairRow]:
    """Every pair of ``dataset`` with ``model``'s result, in protocol order (for export)."""
    query = _pair_table(dataset, model).query
    return [PairRow(*row) for row in session.execute(query.order_by(Pair.position))]


def image_file(session: Session, image_id: int) -> Path:
    """The absolute path of a stored image (dataset root / relative path), e.g. to serve it."""
    row = session.execute(
        select(Dataset.root, Image.path).join(Image, Image.dataset_id == Dataset.id).where(Image.id == image_id)
    ).first()
    if row is None:
        raise DatasetError(f"no image with id {image_id} in the store")
    return Path(row[0]) / row[1]


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
