"""The store at a glance, for the landing page and ``/api/stats``: datasets, models, counts,
accuracy per dataset x model, and an example pair to show."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from xfv.datasets import PROTOCOLS
from xfv.store.catalog import default_model, list_datasets, model_names
from xfv.store.models import Dataset, Image, Model, Pair, PairResult, XMapResult
from xfv.store.results import fold_results


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
    #: Pairs on which the models with results here decide differently (None with fewer than two models).
    disagreements: int | None = None


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
    datasets = []
    for d in list_datasets(session):
        models = dataset_models(session, d)
        datasets.append(
            DatasetOverview(
                d.name,
                d.protocol,
                d.pair_count,
                d.image_count,
                models,
                *_quality(session, d),
                PROTOCOLS[d.protocol].caveat if d.protocol in PROTOCOLS else "",
                disagreements=disagreements(session, d) if len(models) > 1 else None,
            )
        )
    example_pair, example_model = _example(session)
    return Overview(
        datasets=datasets,
        models=model_names(session),
        pairs=session.scalar(select(func.count()).select_from(Pair)) or 0,
        results=session.scalar(select(func.count()).select_from(PairResult)) or 0,
        xmap_pairs=session.scalar(select(func.count(func.distinct(XMapResult.pair_id)))) or 0,
        example_pair=example_pair,
        example_model=example_model,
    )


def disagreements(session: Session, dataset: Dataset) -> int:
    """How many pairs of ``dataset`` the models decide differently (one says same, another
    different), from the primary key ``pair_results (pair_id, model_id)``."""
    split = (
        select(PairResult.pair_id)
        .where(PairResult.dataset_id == dataset.id, PairResult.predicted_same.is_not(None))
        .group_by(PairResult.pair_id)
        .having(func.count(func.distinct(PairResult.predicted_same)) > 1)
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(split)) or 0


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
