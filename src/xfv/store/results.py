"""Results of a model on a dataset: per pair (``pair_results``: distance, then threshold, decision,
correctness and C-Score) and per fold (``fold_results``: threshold, accuracy, C-Score calibration)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.orm import Session

from xfv.store.models import Dataset, FoldResult, Model, Pair, PairResult


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


def stored_calibration(session: Session, model_name: str) -> tuple[dict[str, Any], str] | None:
    """The C-Score calibration the store fitted for a model (its first dataset's first fold, fitted
    on the other folds, as :meth:`~xfv.method.calibration.Calibrator.to_dict`) and that dataset's name."""
    row = session.execute(
        select(FoldResult.calibration, Dataset.name)
        .join(Model, Model.id == FoldResult.model_id)
        .join(Dataset, Dataset.id == FoldResult.dataset_id)
        .where(Model.name == model_name)
        .order_by(Dataset.id, FoldResult.fold)
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


@dataclass(frozen=True)
class ModelResult:
    """One model's verdict on a pair (score fields None until scoring ran)."""

    model: str
    distance: float
    threshold: float | None
    predicted_same: bool | None
    correct: bool | None
    cscore: float | None


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
