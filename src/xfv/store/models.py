"""The store's tables as SQLAlchemy 2.0 ORM classes; the queries on them live beside, one module
per resource (:mod:`xfv.store`).

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
- ``web_jobs`` and ``web_uploads``: the web server's background jobs and uploaded pairs, shared by
  every server process.
- ``data_versions``: counters that database triggers raise with every write to what they name:
  ``pair_table`` counts writes to datasets, identities, images, pairs, models and pair results,
  so the web's kept pair table is read again only when they change, not on every job's progress;
  ``answers`` counts writes to every table but the jobs', the uploads' and its own, so the web's
  kept answers stay valid while jobs run.

Every change here needs an Alembic migration in ``xfv/store/migrations/versions``; a test checks
that the migrations build exactly these tables.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Constraint names are spelled out so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A stored time with its timezone: UTC, which SQLite drops on the way back (PostgreSQL keeps it)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[int]: JSON}


class Dataset(Base):
    """One ingested benchmark: a protocol read from a root folder under a user-chosen name."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    protocol: Mapped[str] = mapped_column(String(20))
    root: Mapped[str] = mapped_column(Text)
    input_mode: Mapped[str] = mapped_column(String(20))
    image_count: Mapped[int] = mapped_column(Integer)
    pair_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Identity(Base):
    """A person of a dataset (identities are per dataset: names are not global keys)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))


class Image(Base):
    """An image file of a dataset: path relative to the dataset root, size, content hash, quality."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("dataset_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    file_size: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    quality: Mapped[float] = mapped_column(Float)

    identity: Mapped[Identity] = relationship(lazy="joined")


class Pair(Base):
    """A pair of the protocol: its position in the protocol file, fold and label (same person?)."""

    __tablename__ = "pairs"
    __table_args__ = (
        UniqueConstraint("dataset_id", "position"),
        Index("ix_pairs_dataset_fold", "dataset_id", "fold"),
        Index("ix_pairs_dataset_same", "dataset_id", "same"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    fold: Mapped[int] = mapped_column(Integer)
    same: Mapped[bool] = mapped_column(Boolean)
    image1_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    image2_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)

    image1: Mapped[Image] = relationship(foreign_keys=[image1_id], lazy="joined")
    image2: Mapped[Image] = relationship(foreign_keys=[image2_id], lazy="joined")


class Model(Base):
    """A face model as it was when results were computed: one name means one set of weights."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    weights_hash: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PairResult(Base):
    """A model's verdict on a pair. ``distance`` lands with its compute chunk; the score columns
    (fold threshold, decision, correctness, C-Score) are filled together by the final scoring step."""

    __tablename__ = "pair_results"
    __table_args__ = (
        Index("ix_pair_results_dataset_model_distance", "dataset_id", "model_id", "distance"),
        Index("ix_pair_results_dataset_model_cscore", "dataset_id", "model_id", "cscore"),
        Index("ix_pair_results_dataset_model_correct", "dataset_id", "model_id", "correct"),
        # For the pair table over every dataset of a store holding several.
        Index("ix_pair_results_model_distance", "model_id", "distance"),
        Index("ix_pair_results_model_cscore", "model_id", "cscore"),
    )

    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    distance: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    predicted_same: Mapped[bool | None] = mapped_column(Boolean)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    cscore: Mapped[float | None] = mapped_column(Float)


class FoldResult(Base):
    """Per dataset x model x fold: the threshold and C-Score calibration fitted on the other folds,
    and the fold's accuracy. ``calibration`` is the calibrator's full ``to_dict()`` (reloadable)."""

    __tablename__ = "fold_results"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    fold: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_pairs: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float] = mapped_column(Float)
    cscore_L: Mapped[float] = mapped_column(Float)  # the paper's symbol L
    cscore_d0: Mapped[float] = mapped_column(Float)
    cscore_k: Mapped[float] = mapped_column(Float)
    cscore_b: Mapped[float] = mapped_column(Float)
    calibration: Mapped[dict[str, Any]] = mapped_column(JSON)


class OcclusionSetting(Base):
    """One occlusion configuration (patch sizes, stride, fill, ...), named by its stable key."""

    __tablename__ = "occlusion_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)


class XMapResult(Base):
    """X-Maps of a pair for one model, method and occlusion setting.

    ``maps`` is a compressed ``.npz`` (see :mod:`xfv.store.arrays`) with float16 maps per patch
    size and merged, for both images, so the viewer can redraw any map without recomputing."""

    __tablename__ = "xmap_results"
    __table_args__ = (
        UniqueConstraint("pair_id", "model_id", "setting_id", "method"),
        Index("ix_xmap_results_model_pair", "model_id", "pair_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    setting_id: Mapped[int] = mapped_column(ForeignKey("occlusion_settings.id", ondelete="CASCADE"))
    method: Mapped[int] = mapped_column(Integer)
    distance: Mapped[float] = mapped_column(Float)
    forward_passes: Mapped[int] = mapped_column(Integer)
    maps: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """A batch computation (``scores`` or ``xmaps``) and its progress; ``key`` names the command so
    a rerun of the same command finds and resumes it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    total_items: Mapped[int] = mapped_column(Integer, default=0)
    done_items: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobChunk(Base):
    """A unit of work of a job: the pairs it covers, and whether its results are committed.
    A chunk is marked done in the same transaction that writes its results."""

    __tablename__ = "job_chunks"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_ids: Mapped[list[int]] = mapped_column(JSON)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(200))
    seconds: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Review(Base):
    """A person's verdict on a model's decision for a pair (the web platform's review queue):
    ``agree`` or ``disagree``, with a comment and the reviewer's name (both may be empty)."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("verdict IN ('agree', 'disagree')", name="verdict"),
        Index("ix_reviews_model_pair", "model_id", "pair_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    verdict: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebJob(Base):
    """A background job of the web server (X-Maps of a pair or an upload), kept in the store so
    every server process answers its progress. ``active_key`` is the job's key while it is queued
    or running and NULL afterwards: its unique index makes the same work one job at a time across
    processes. ``updated_at`` is a heartbeat; a job silent for long lost its process. ``partial``
    is dropped when the job ends."""

    __tablename__ = "web_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(300))
    active_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(10))
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    result_url: Mapped[str] = mapped_column(String(300))
    worker: Mapped[str] = mapped_column(String(200))
    #: What the work reports on the way (e.g. patch sizes done) and its partial result (coarse maps).
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    partial: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebUpload(Base):
    """A pair of photos a visitor uploaded to the web platform: the verification (``facts``), the
    photos and aligned faces (``photos``, an .npz blob) and, once computed, the X-Maps (``maps``)."""

    __tablename__ = "web_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    photos: Mapped[bytes] = mapped_column(LargeBinary)
    maps: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class DataVersion(Base):
    """A counter the store's triggers raise with every write to the tables it names (migrations 0005, 0006)."""

    __tablename__ = "data_versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
