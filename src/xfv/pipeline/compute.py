"""Batch compute over a stored dataset, resumable after any crash.

Two jobs, each found again by its key when the same command is rerun:

- ``scores`` (per dataset x model): the pairs are split into chunks; a chunk embeds its images
  (through the embedding cache) and computes its pairs' distances, and its rows are committed in
  the same transaction that marks it done. Per-fold thresholds and C-Scores need every distance
  of the dataset, so they are one final step, again a single transaction, run when all chunks are
  done; rerun alone when the C-Score options change.
- ``xmaps`` (per dataset x model x occlusion setting x methods x pair selection): chunks of a few
  pairs, each committing its pairs' X-Maps the same way.

Tasks run through an :mod:`~xfv.pipeline.executors` executor (this process, local worker
processes or Ray) and never touch the database: only this process writes, chunk by chunk, so a
``kill -9`` at any moment loses at most the chunks in flight and never leaves half a chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from tqdm import tqdm

from xfv.datasets import Pair, PairList
from xfv.errors import DatasetError, ModelError, XfvError
from xfv.faces import align_path
from xfv.method.calibration import out_of_fold_confidence
from xfv.method.cscore import CScoreCalibrator
from xfv.method.metrics import fold_accuracies
from xfv.method.occlusion import OcclusionSettings
from xfv.method.thresholds import fold_thresholds, pair_thresholds
from xfv.method.xmaps import check_methods
from xfv.models import get_model
from xfv.pipeline.evaluate import pair_distances
from xfv.pipeline.executors import Executor, make_executor, worker_name
from xfv.pipeline.explain import OcclusionEngine, explain_pair
from xfv.store import Store
from xfv.store.arrays import pack_maps, xmap_arrays
from xfv.store.catalog import find_dataset, register_model
from xfv.store.jobs import claim_finished_chunk, find_or_create_job, job_key, pending_chunks, set_params, set_status
from xfv.store.models import Dataset, Job, JobChunk, Model
from xfv.store.pairs import PairFiles, dataset_pair_files
from xfv.store.results import FoldScore, add_distances, distance_table, fold_results, pair_correctness, write_scores
from xfv.store.xmaps import XMapRecord, add_xmaps, missing_xmap_methods, occlusion_setting

#: Pairs per distance chunk: LFW's 6,000 pairs make 60 chunks of a few seconds each.
DEFAULT_CHUNK_PAIRS = 100
#: Pairs per X-Map chunk: each pair costs about 2 x 1,130 forward passes.
DEFAULT_XMAP_CHUNK_PAIRS = 2


@dataclass(frozen=True)
class ComputeOptions:
    """How to run: executor and workers, chunk sizes, C-Score histogram bins, progress bar."""

    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    chunk_size: int = DEFAULT_CHUNK_PAIRS
    xmap_chunk_size: int = DEFAULT_XMAP_CHUNK_PAIRS
    cscore_bins: int = 400
    progress: bool = True

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.xmap_chunk_size < 1:
            raise XfvError("chunk sizes must be at least 1 pair")


# --- tasks: run on workers, no database access --------------------------------------------------


@dataclass(frozen=True)
class TaskOutput:
    """What every task reports besides its results: the weights it ran, where, how long."""

    weights_hash: str
    worker: str
    seconds: float


@dataclass(frozen=True)
class DistanceTask:
    """Distances of some pairs: the model (name or spec path), input mode, root, relative paths."""

    model: str
    input_mode: str
    root: str
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DistanceOutput(TaskOutput):
    distances: np.ndarray = field(default_factory=lambda: np.empty(0))


def run_distance_task(task: DistanceTask) -> DistanceOutput:
    """Embed a chunk's images (cached per image) and return its pairs' cosine distances."""
    start = time.perf_counter()
    model = get_model(task.model)
    root = Path(task.root)
    pairs = PairList("chunk", root, [Pair(root / a, root / b, "", "", False, 0) for a, b in task.pairs])
    distances = pair_distances(pairs, model, task.input_mode, progress=False)
    return DistanceOutput(model.spec.weights_hash, worker_name(), time.perf_counter() - start, distances)


@dataclass(frozen=True)
class XMapTask:
    """X-Maps of some pairs ``(pair id, path 1, path 2, methods)`` under ``settings``."""

    model: str
    input_mode: str
    root: str
    pairs: tuple[tuple[int, str, str, tuple[int, ...]], ...]
    settings: OcclusionSettings


@dataclass(frozen=True)
class XMapOutput(TaskOutput):
    records: tuple[XMapRecord, ...] = ()


def run_xmap_task(task: XMapTask) -> XMapOutput:
    """Align and explain a chunk's pairs; maps are packed here so little data travels back.
    ``forward_passes`` of a record counts the passes its pair cost (0 if its faces were cached)."""
    start = time.perf_counter()
    model = get_model(task.model)
    engine = OcclusionEngine(model, task.settings)
    root = Path(task.root)
    records: list[XMapRecord] = []
    for pair_id, path1, path2, methods in task.pairs:
        face1 = align_path(root / path1, model.spec, task.input_mode)
        face2 = align_path(root / path2, model.spec, task.input_mode)
        explanation = explain_pair(face1, face2, model, methods, engine=engine)
        records.extend(
            XMapRecord(pair_id, method, explanation.distance, explanation.forward_passes, pack_maps(xmap_arrays(maps)))
            for method, maps in explanation.maps.items()
        )
    return XMapOutput(model.spec.weights_hash, worker_name(), time.perf_counter() - start, tuple(records))


# --- running chunks -----------------------------------------------------------------------------

OutputT = TypeVar("OutputT", bound=TaskOutput)


@dataclass
class ChunkRun(Generic[OutputT]):
    """The pending chunks of a job, their tasks, and how a chunk's output is written."""

    job: Job
    chunks: list[JobChunk]
    tasks: list[Any]
    function: Callable[[Any], OutputT]
    write: Callable[[Session, JobChunk, OutputT], None]


def _model_argument(name: str) -> str:
    """A model name as workers must see it: spec and ONNX paths made absolute."""
    return str(Path(name).resolve()) if name.endswith((".json", ".onnx")) else name


def _check_images(dataset: Dataset, chunks: Sequence[JobChunk], pairs: dict[int, PairFiles]) -> None:
    """Every image the chunks will read must exist, before any work starts."""
    root = Path(dataset.root)
    paths = dict.fromkeys(path for c in chunks for i in c.pair_ids for path in (pairs[i].path1, pairs[i].path2))
    missing = [path for path in paths if not (root / path).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DatasetError(
            f"{len(missing)} image(s) of dataset {dataset.name!r} are missing under {root} ({shown}); "
            "restore them or re-ingest the dataset from its new place under a new name"
        )


def _open_job(
    session: Session,
    key: str,
    kind: str,
    dataset: Dataset,
    model: Model,
    params: dict[str, Any],
    plan: list[list[int]],
    files: Sequence[PairFiles],
) -> tuple[Job, list[JobChunk], dict[int, PairFiles]]:
    """The job (found or created), its unfinished chunks and the pairs' files by id; missing images
    are an error before any work (raised inside the transaction, so a new job is rolled back)."""
    job = find_or_create_job(session, key, kind, dataset, model, params, plan)
    chunks = pending_chunks(session, job)
    by_id = {f.pair_id: f for f in files}
    _check_images(dataset, chunks, by_id)
    return job, chunks, by_id


def _run_chunks(store: Store, run: ChunkRun[OutputT], model: Model, options: ComputeOptions, label: str) -> int:
    """Run a job's pending chunks on the chosen executor with a progress bar; returns chunks committed."""
    with (
        make_executor(options.executor, options.workers, options.ray_address) as executor,
        _progress_bar(run.job, label, options.progress) as bar,
    ):
        return _run(store, run, executor, model, bar)


def _run(store: Store, run: ChunkRun[OutputT], executor: Executor, model: Model, bar: tqdm) -> int:
    """Run the chunks, committing each one's results with its done mark; returns how many this
    run committed. Any failure marks the job failed (with the reason) and propagates."""
    committed = 0
    try:
        with store.transaction() as session:
            set_status(session, run.job, "running")
        outputs: Iterator[tuple[int, OutputT]] = executor.map_unordered(run.function, run.tasks)
        for index, output in outputs:
            if output.weights_hash != model.weights_hash:
                raise ModelError(
                    f"worker {output.worker} loaded {model.name!r} with weights {output.weights_hash}, "
                    f"not {model.weights_hash}: every worker must have the same model files"
                )
            chunk = run.chunks[index]
            with store.transaction() as session:
                if claim_finished_chunk(session, chunk, output.worker, output.seconds):
                    run.write(session, chunk, output)
                    committed += 1
            bar.update(len(chunk.pair_ids))
    except BaseException as exc:
        with suppress(SQLAlchemyError), store.transaction() as session:
            set_status(session, run.job, "failed", str(exc) or type(exc).__name__)
        raise
    return committed


def _progress_bar(job: Job, description: str, enabled: bool) -> tqdm:
    """Pairs done over the whole job: resumed work counts as done, the ETA is from this run's rate."""
    return tqdm(total=job.total_items, initial=job.done_items, desc=description, unit="pair", disable=not enabled)


# --- scores -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreReport:
    """What ``compute_scores`` did and found."""

    dataset: str
    model: str
    pairs: int
    chunks_pending: int
    chunks_run: int
    scored: bool
    fold_accuracies: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.fold_accuracies))

    @property
    def accuracy_std(self) -> float:
        return float(np.std(self.fold_accuracies))


def score_dataset(session: Session, dataset: Dataset, model: Model, cscore_bins: int) -> np.ndarray:
    """The final step: fold thresholds, decisions and out-of-fold C-Scores for every pair of the
    dataset, written in the caller's transaction. Returns the fold accuracies."""
    table = distance_table(session, dataset, model)
    if len(table.pair_ids) != dataset.pair_count:
        raise XfvError(f"only {len(table.pair_ids)} of {dataset.pair_count} pairs have distances; rerun the command")
    thresholds = fold_thresholds(table.distances, table.same, table.folds)
    accuracies = fold_accuracies(table.distances, table.same, table.folds, thresholds)
    out_of_fold = out_of_fold_confidence(
        lambda: CScoreCalibrator(bins=cscore_bins), table.distances, table.same, table.folds, thresholds
    )
    per_pair = pair_thresholds(thresholds, table.folds)
    folds = [
        FoldScore(int(fold), int(np.sum(table.folds == fold)), float(t), float(a), calibrator.to_dict())
        for fold, t, a, calibrator in zip(
            out_of_fold.fold_ids, thresholds, accuracies, out_of_fold.calibrators, strict=True
        )
    ]
    write_scores(session, dataset, model, table, per_pair, table.distances <= per_pair, out_of_fold.confidence, folds)
    return accuracies


def compute_scores(store: Store, dataset_name: str, model_name: str, options: ComputeOptions) -> ScoreReport:
    """Distances of every pair of a dataset (chunked, resumable), then thresholds and C-Scores."""
    face_model = get_model(model_name)
    cscore = {"bins": options.cscore_bins}
    with store.transaction() as session:
        dataset = find_dataset(session, dataset_name)
        model = register_model(session, face_model.spec)
        files = dataset_pair_files(session, dataset)
        plan = [
            [f.pair_id for f in files[i : i + options.chunk_size]] for i in range(0, len(files), options.chunk_size)
        ]
        key = job_key("scores", dataset=dataset.id, model=model.id)
        params = {"chunk_size": options.chunk_size, "input_mode": dataset.input_mode, "cscore": cscore}
        job, chunks, by_id = _open_job(session, key, "scores", dataset, model, params, plan, files)
    chunks_run = 0
    if chunks:
        run = ChunkRun(
            job=job,
            chunks=chunks,
            tasks=[_distance_task(dataset, model_name, [by_id[i] for i in c.pair_ids]) for c in chunks],
            function=run_distance_task,
            write=lambda s, chunk, out: add_distances(s, dataset, model, chunk.pair_ids, out.distances),
        )
        chunks_run = _run_chunks(store, run, model, options, f"{dataset.name} x {model.name}")
    needs_scoring = bool(chunks) or job.status != "done" or job.params.get("cscore") != cscore
    if needs_scoring:
        accuracies = _score_job(store, job, dataset, model, cscore)
    else:
        with store.transaction() as session:
            accuracies = np.array([f.accuracy for f in fold_results(session, dataset, model)])
    return ScoreReport(dataset.name, model.name, dataset.pair_count, len(chunks), chunks_run, needs_scoring, accuracies)


def _score_job(store: Store, job: Job, dataset: Dataset, model: Model, cscore: dict[str, Any]) -> np.ndarray:
    """Run the scoring step and close the job in one transaction; a failure marks the job failed."""
    with store.transaction() as session:
        set_status(session, job, "finishing")
    try:
        with store.transaction() as session:
            accuracies = score_dataset(session, dataset, model, cscore["bins"])
            set_params(session, job, {**job.params, "cscore": cscore})
            set_status(session, job, "done")
    except BaseException as exc:
        with suppress(SQLAlchemyError), store.transaction() as session:
            set_status(session, job, "failed", str(exc) or type(exc).__name__)
        raise
    return accuracies


def _distance_task(dataset: Dataset, model_name: str, pairs: list[PairFiles]) -> DistanceTask:
    return DistanceTask(
        _model_argument(model_name), dataset.input_mode, dataset.root, tuple((p.path1, p.path2) for p in pairs)
    )


# --- X-Maps -------------------------------------------------------------------------------------


def select_pairs(selection: str, files: Sequence[PairFiles], correct: dict[int, bool | None]) -> list[int]:
    """Pair ids chosen by ``selection``: comma-separated terms, united: ``all``, a position ``N``
    or range ``A-B`` (0-based positions in the protocol file, inclusive), ``fold=K``, ``genuine``,
    ``impostor``, and (after scoring) ``wrong`` / ``right`` decisions of the model."""
    chosen: set[int] = set()
    positions = {f.position: f.pair_id for f in files}
    for term in (t.strip() for t in selection.split(",")):
        chosen |= _select_term(term, files, positions, correct)
    order = {f.pair_id: f.position for f in files}
    return sorted(chosen, key=order.__getitem__)


def _select_term(
    term: str, files: Sequence[PairFiles], positions: dict[int, int], correct: dict[int, bool | None]
) -> set[int]:
    if term == "all":
        return set(positions.values())
    if term in ("genuine", "impostor"):
        return {f.pair_id for f in files if f.same == (term == "genuine")}
    if term in ("wrong", "right"):
        if not correct or any(v is None for v in correct.values()):
            raise XfvError(f"pair selection {term!r} needs scored results: run `xfv compute` without --xmaps first")
        return {pair_id for pair_id, ok in correct.items() if ok == (term == "right")}
    if term.startswith("fold="):
        fold = term.removeprefix("fold=")
        if not fold.isdigit():
            raise XfvError(f"pair selection {term!r}: the fold must be a number")
        return {f.pair_id for f in files if f.fold == int(fold)}
    bounds = term.split("-")
    if 1 <= len(bounds) <= 2 and all(b.isdigit() for b in bounds):
        first, last = int(bounds[0]), int(bounds[-1])
        if first > last or last not in positions:
            raise XfvError(f"pair selection {term!r} is outside the dataset's positions 0-{len(positions) - 1}")
        return {positions[p] for p in range(first, last + 1)}
    raise XfvError(
        f"cannot read pair selection term {term!r}: use all, N, A-B, fold=K, genuine, impostor, wrong or right"
    )


@dataclass(frozen=True)
class XMapReport:
    """What ``compute_xmaps`` did."""

    dataset: str
    model: str
    selected_pairs: int
    pairs_computed: int
    chunks_run: int


def compute_xmaps(
    store: Store,
    dataset_name: str,
    model_name: str,
    selection: str,
    settings: OcclusionSettings,
    methods: Sequence[int] | None,
    options: ComputeOptions,
) -> XMapReport:
    """X-Maps of the selected pairs for ``methods`` (None: every registered method), chunked and
    resumable; only the methods a pair lacks are computed."""
    methods = tuple(sorted(check_methods(methods)))
    face_model = get_model(model_name)
    with store.transaction() as session:
        dataset = find_dataset(session, dataset_name)
        model = register_model(session, face_model.spec)
        setting = occlusion_setting(session, settings)
        files = dataset_pair_files(session, dataset)
        selected = select_pairs(selection, files, pair_correctness(session, dataset, model))
        missing = missing_xmap_methods(session, model, setting.key, selected, methods)
        todo = list(missing)
        size = options.xmap_chunk_size
        plan = [todo[i : i + size] for i in range(0, len(todo), size)]
        key = job_key("xmaps", dataset=dataset.id, model=model.id, setting=setting.key, methods=methods, pairs=selected)
        params = {"selection": selection, "methods": list(methods), "setting": setting.key, "chunk_size": size}
        job, chunks, by_id = _open_job(session, key, "xmaps", dataset, model, params, plan, files)
    chunks_run = 0
    if chunks:
        run = ChunkRun(
            job=job,
            chunks=chunks,
            tasks=[
                XMapTask(
                    _model_argument(model_name),
                    dataset.input_mode,
                    dataset.root,
                    tuple((i, by_id[i].path1, by_id[i].path2, missing[i]) for i in c.pair_ids if i in missing),
                    settings,
                )
                for c in chunks
            ],
            function=run_xmap_task,
            write=lambda s, chunk, out: add_xmaps(s, model, setting, out.records),
        )
        chunks_run = _run_chunks(store, run, model, options, f"X-Maps {dataset.name} x {model.name}")
    with store.transaction() as session:
        set_status(session, job, "done")
    return XMapReport(dataset.name, model.name, len(selected), sum(len(c.pair_ids) for c in chunks), chunks_run)
