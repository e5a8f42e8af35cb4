"""Read-only queries of the web platform beyond the pair table, on the store's SQLAlchemy models:
one pair for the viewer, its stored X-Maps, image files, and the store's overview.

The pair table itself (explorer, API pair list, review queue, previous/next) is the store's
:func:`xfv.store.repository.query_pairs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from xfv.datasets import PROTOCOLS
from xfv.store.models import Dataset, Image, Model, OcclusionSetting, Pair, PairResult, XMapResult
from xfv.store.repository import ModelSummary, dataset_models, default_model, list_datasets
from xfv.web.errors import NotFoundError

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
    """A dataset, its image quality (mean, and mean gap within a pair), its protocol's caveat, and
    how each model did on it."""

    name: str
    protocol: str
    pairs: int
    images: int
    models: list[ModelSummary]
    mean_quality: float | None = None
    mean_quality_gap: float | None = None
    caveat: str = ""


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
        DatasetOverview(
            d.name, d.protocol, d.pair_count, d.image_count, dataset_models(session, d), *_quality(session, d),
            PROTOCOLS[d.protocol].caveat if d.protocol in PROTOCOLS else "",
        )
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


def _quality(session: Session, dataset: Dataset) -> tuple[float | None, float | None]:
    """Mean image quality of a dataset, and the mean quality difference of the two images of a pair."""
    first, second = aliased(Image), aliased(Image)
    mean = session.scalar(select(func.avg(Image.quality)).where(Image.dataset_id == dataset.id))
    gap = session.scalar(
        select(func.avg(func.abs(first.quality - second.quality)))
        .select_from(Pair)
        .join(first, first.id == Pair.image1_id)
        .join(second, second.id == Pair.image2_id)
        .where(Pair.dataset_id == dataset.id)
    )
    return (None if mean is None else float(mean)), (None if gap is None else float(gap))


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
