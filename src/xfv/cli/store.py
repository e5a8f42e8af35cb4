"""``xfv ingest``, ``xfv compute`` and ``xfv export``: benchmark datasets in the store."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from xfv.cli.core import add_methods_option, add_protocol_option, int_list
from xfv.config import get_settings
from xfv.errors import XfvError
from xfv.faces import INPUT_MODES
from xfv.method.occlusion import FILLS, SHAPES, OcclusionSettings
from xfv.method.xmaps import check_methods
from xfv.models import ALL_MODELS, compared_model_names
from xfv.pipeline.compute import (
    DEFAULT_CHUNK_PAIRS,
    DEFAULT_XMAP_CHUNK_PAIRS,
    ComputeOptions,
    compute_scores,
    compute_xmaps,
)
from xfv.pipeline.download import LFW_ARCHIVE, LFW_PAIRS, RemoteFile, download_lfw
from xfv.pipeline.executors import EXECUTORS
from xfv.store import Store, open_store
from xfv.store.export import FORMATS, export_results
from xfv.store.ingest import ingest


def _add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL of the store (default: $XFV_DATABASE_URL or XFV_HOME/xfv.sqlite)"
    )


def _store(args: argparse.Namespace) -> Store:
    return open_store(args.database_url)


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser("ingest", help="read a benchmark's protocol and images into the store")
    add_protocol_option(ingest)
    ingest.add_argument(
        "--root", type=Path, required=True, help="the dataset's folder (the download target with --download)"
    )
    ingest.add_argument(
        "--name",
        help="name of the dataset in the store (default: its own: the protocol's, or xqlfw-synth for a generated set)",
    )
    ingest.add_argument(
        "--input-mode", choices=INPUT_MODES, help="how faces are found (default: the one the dataset's images need)"
    )
    download = ingest.add_argument_group("download (LFW only)")
    download.add_argument(
        "--download", action="store_true", help="fetch the official LFW archive and pairs.txt into --root first"
    )
    download.add_argument("--archive-url", help="URL of lfw-deepfunneled.tgz (a mirror)")
    download.add_argument("--archive-checksum", help="ALGO:HEX of the archive, or 'none' (default: the official md5)")
    download.add_argument("--pairs-url", help="URL of pairs.txt (a mirror)")
    download.add_argument("--pairs-checksum", help="ALGO:HEX of pairs.txt, or 'none' (default: the official md5)")
    _add_database_option(ingest)
    ingest.add_argument("--quiet", action="store_true", help="no progress bars")
    ingest.set_defaults(func=run_ingest)

    compute = subparsers.add_parser(
        "compute", help="distances, fold thresholds, C-Scores (and X-Maps) of a stored dataset"
    )
    compute.add_argument("--dataset", required=True, help="name of an ingested dataset")
    compute.add_argument(
        "--model",
        help="model name or .json/.onnx path, several comma-separated (computed in turn), or `all`: every model "
        "`xfv models` lists (default: $XFV_MODEL or dlib)",
    )
    compute.add_argument("--xmaps", action="store_true", help="also compute X-Maps of the selected pairs")
    compute.add_argument(
        "--pairs",
        default="all",
        help="pairs to explain, comma-separated: all, N, A-B (0-based), fold=K, genuine, impostor, wrong, right",
    )
    add_methods_option(compute)
    compute.add_argument(
        "--patch-sizes", type=int_list, default=(7, 14, 28), help="occlusion patch sizes (default: 7,14,28)"
    )
    compute.add_argument("--stride", type=int, default=5, help="occlusion stride (default: 5)")
    compute.add_argument("--fill", choices=FILLS, default="black")
    compute.add_argument("--shape", choices=SHAPES, default="rect")
    compute.add_argument("--executor", choices=EXECUTORS, default="local")
    compute.add_argument(
        "--workers", type=int, help="parallel workers (local default 1; ray default: the cluster's CPUs)"
    )
    compute.add_argument(
        "--ray-address", help="Ray cluster to use, e.g. ray://HEAD:10001 or auto (default: a local one)"
    )
    compute.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK_PAIRS, help="pairs per distance chunk (default: %(default)s)"
    )
    compute.add_argument(
        "--xmap-chunk-size",
        type=int,
        default=DEFAULT_XMAP_CHUNK_PAIRS,
        help="pairs per X-Map chunk (default: %(default)s)",
    )
    compute.add_argument(
        "--cscore-bins", type=int, default=400, help="C-Score histogram bins (default: the paper's %(default)s)"
    )
    _add_database_option(compute)
    compute.add_argument("--quiet", action="store_true", help="no progress bars")
    compute.set_defaults(func=run_compute)

    export = subparsers.add_parser("export", help="one model's results on a dataset as CSV or Parquet")
    export.add_argument("--dataset", required=True)
    export.add_argument("--model", help="model name (default: $XFV_MODEL or dlib)")
    export.add_argument("--format", choices=FORMATS, help="default: from the --out suffix")
    export.add_argument("--out", type=Path, required=True)
    _add_database_option(export)
    export.set_defaults(func=run_export)


def _remote(default: RemoteFile, url: str | None, checksum: str | None) -> RemoteFile:
    """The official file, or a mirror's URL and/or another checksum ('none': do not verify)."""
    remote = replace(default, url=url) if url else default
    if checksum:
        remote = replace(remote, checksum=None if checksum.lower() == "none" else checksum)
    return remote


def run_ingest(args: argparse.Namespace) -> int:
    if args.download:
        if args.protocol != "lfw":
            raise XfvError("--download is available for LFW only; fetch other datasets from their authors")
        download_lfw(
            args.root,
            _remote(LFW_ARCHIVE, args.archive_url, args.archive_checksum),
            _remote(LFW_PAIRS, args.pairs_url, args.pairs_checksum),
            progress=not args.quiet,
        )
    store = _store(args)
    report = ingest(store, args.protocol, args.root, args.name, args.input_mode, progress=not args.quiet)
    verb = "ingested" if report.created else "already stored, unchanged:"
    print(
        f"{verb} {report.name} ({report.protocol}, {report.input_mode}): {report.pairs} pairs, "
        f"{report.images} images, {report.identities} identities from {report.root} into {store.description}"
    )
    return 0


def compute_models(value: str | None) -> list[str]:
    """``--model`` of ``xfv compute``: one model, a comma-separated list, or ``all`` (the models
    :func:`~xfv.models.compared_model_names` compares)."""
    names = [name.strip() for name in (value or get_settings().default_model).split(",")]
    if any(not name for name in names):
        raise XfvError(f"--model {value!r}: an empty model name in the list")
    if names == [ALL_MODELS]:
        return compared_model_names()
    if ALL_MODELS in names:
        raise XfvError(f"--model {ALL_MODELS} means every model: do not list others beside it")
    return list(dict.fromkeys(names))


def run_compute(args: argparse.Namespace) -> int:
    methods = check_methods(args.methods) if args.xmaps else ()  # before any work: a bad method costs nothing
    models = compute_models(args.model)
    options = ComputeOptions(
        executor=args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
        chunk_size=args.chunk_size,
        xmap_chunk_size=args.xmap_chunk_size,
        cscore_bins=args.cscore_bins,
        progress=not args.quiet,
    )
    settings = OcclusionSettings(patch_sizes=args.patch_sizes, stride=args.stride, fill=args.fill, shape=args.shape)
    store = _store(args)
    for number, model in enumerate(models, 1):
        if len(models) > 1 and options.progress:
            print(f"model {number} of {len(models)}: {model}", file=sys.stderr)
        report = compute_scores(store, args.dataset, model, options)
        resumed = (
            f", {report.chunks_run} chunk(s) computed now" if report.chunks_pending else ", nothing left to compute"
        )
        print(
            f"{report.dataset} x {report.model}: {report.pairs} pairs, accuracy {report.accuracy:.4f} "
            f"+- {report.accuracy_std:.4f} over {len(report.fold_accuracies)} folds{resumed}"
        )
        if args.xmaps:
            xmaps = compute_xmaps(store, args.dataset, model, args.pairs, settings, methods, options)
            print(
                f"X-Maps {xmaps.dataset} x {xmaps.model}: {xmaps.selected_pairs} pair(s) selected, "
                f"{xmaps.pairs_computed} computed now"
            )
    return 0


def run_export(args: argparse.Namespace) -> int:
    fmt = args.format or args.out.suffix.lstrip(".").lower()
    store = _store(args)
    count = export_results(store, args.dataset, args.model or get_settings().default_model, fmt, args.out)
    print(f"wrote {count} rows to {args.out}")
    return 0
