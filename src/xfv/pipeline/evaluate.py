"""The 10-fold verification protocol: distances, fold thresholds, accuracy, AUC, TAR@FAR."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xfv.datasets import PairList
from xfv.method.distances import cosine_distance
from xfv.method.metrics import fold_accuracies, roc_auc, tar_at_far
from xfv.method.thresholds import fold_thresholds
from xfv.models.base import FaceModel
from xfv.pipeline.embeddings import embed_paths


def pair_distances(pairs: PairList, model: FaceModel, mode: str, progress: bool = True) -> np.ndarray:
    """Cosine distance of every pair; each image is embedded once (and cached)."""
    images = pairs.unique_images()
    index = {path: i for i, path in enumerate(images)}
    embeddings = embed_paths(images, model, mode, progress=progress)
    first = embeddings[[index[p.image1] for p in pairs.pairs]]
    second = embeddings[[index[p.image2] for p in pairs.pairs]]
    return cosine_distance(first, second)


@dataclass
class EvaluationReport:
    """What the 10-fold protocol measured for one model on one pair list (``protocol``: its name,
    e.g. ``lfw`` or ``xqlfw-synth``)."""

    protocol: str
    model: str
    input_mode: str
    distances: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    thresholds: np.ndarray
    fold_accuracies: np.ndarray
    auc: float
    tar_at_far_1e3: float
    #: Caveats of the pair list (see :attr:`PairList.notes`).
    notes: tuple[str, ...] = ()

    @property
    def accuracy_mean(self) -> float:
        return float(self.fold_accuracies.mean())

    @property
    def accuracy_std(self) -> float:
        return float(self.fold_accuracies.std())

    def summary(self) -> dict[str, object]:
        """The JSON-able figures (no per-pair arrays)."""
        return {
            "protocol": self.protocol,
            "model": self.model,
            "input_mode": self.input_mode,
            "n_pairs": int(len(self.distances)),
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "fold_accuracies": [float(a) for a in self.fold_accuracies],
            "thresholds": [float(t) for t in self.thresholds],
            "auc": self.auc,
            "tar_at_far_1e-3": self.tar_at_far_1e3,
            **({"notes": list(self.notes)} if self.notes else {}),
        }


def evaluate_distances(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold thresholds (from the other folds) and per-fold accuracies."""
    thresholds = fold_thresholds(distances, same, folds)
    return thresholds, fold_accuracies(distances, same, folds, thresholds)


def evaluate(pairs: PairList, model: FaceModel, mode: str, progress: bool = True) -> EvaluationReport:
    """Run the 10-fold protocol for ``model`` on ``pairs``."""
    distances = pair_distances(pairs, model, mode, progress)
    same, folds = pairs.same, pairs.folds
    thresholds, accuracies = evaluate_distances(distances, same, folds)
    return EvaluationReport(
        protocol=pairs.name,
        model=model.spec.name,
        input_mode=mode,
        distances=distances,
        same=same,
        folds=folds,
        thresholds=thresholds,
        fold_accuracies=accuracies,
        auc=roc_auc(distances, same),
        tar_at_far_1e3=tar_at_far(distances, same, 1e-3),
        notes=pairs.notes,
    )
