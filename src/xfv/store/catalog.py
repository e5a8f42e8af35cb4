"""What the store holds by name: datasets and models (a model's row is added on first use)."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from xfv.errors import DatasetError, ModelError
from xfv.models.base import ModelSpec
from xfv.store.models import Dataset, Model, PairResult


def find_dataset(session: Session, name: str) -> Dataset:
    """The dataset called ``name``; the error lists the datasets there are."""
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise unknown_dataset(name, dataset_names(session))
    return dataset


def unknown_dataset(name: str, known: list[str]) -> DatasetError:
    """The error for a dataset name the store lacks, listing ``known`` (the ingested ones)."""
    hint = f"ingested: {', '.join(known)}" if known else "none is ingested yet: run `xfv ingest` first"
    return DatasetError(f"no dataset named {name!r} in the store ({hint})")


def unknown_model(name: str, known: list[str]) -> ModelError:
    """The error for a model name the store lacks, listing ``known`` (the stored ones)."""
    hint = f"stored: {', '.join(known)}" if known else "none yet: run `xfv compute` first"
    return ModelError(f"no model named {name!r} in the store ({hint})")


def find_model(session: Session, name: str) -> Model:
    """The stored model called ``name``; the error lists the models with stored results."""
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise unknown_model(name, model_names(session))
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


def default_model(session: Session, dataset: Dataset | None) -> Model | None:
    """The first model (by name) with results, on ``dataset`` if given."""
    has_results = select(PairResult.pair_id).where(PairResult.model_id == Model.id)
    if dataset is not None:
        has_results = has_results.where(PairResult.dataset_id == dataset.id)
    return session.scalars(select(Model).where(has_results.exists()).order_by(Model.name).limit(1)).first()


def list_datasets(session: Session) -> list[Dataset]:
    """All ingested datasets by name."""
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


def dataset_names(session: Session) -> list[str]:
    """The names of the ingested datasets, in order."""
    return list(session.scalars(select(Dataset.name).order_by(Dataset.name)))


def model_names(session: Session) -> list[str]:
    """The names of the models with a row in the store (results or X-Maps), in order."""
    return list(session.scalars(select(Model.name).order_by(Model.name)))
