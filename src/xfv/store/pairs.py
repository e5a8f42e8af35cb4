"""Pairs of a dataset: their image files for compute jobs, and one pair as the viewer shows it.

The pair table (filters, sorting, paging) is :mod:`xfv.store.pair_table`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from xfv.errors import NotFoundError
from xfv.store.models import Dataset, Image, Pair
from xfv.store.results import ModelResult, results_by_pair
from xfv.store.xmaps import StoredMaps, stored_maps


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
