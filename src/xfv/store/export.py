"""Export of a results table: one row per pair of a dataset with one model's result, CSV or Parquet."""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Any

from xfv.errors import XfvError
from xfv.store.catalog import find_dataset, find_model
from xfv.store.engine import Store
from xfv.store.pair_table import PairRow, result_rows

FORMATS = ("csv", "parquet")

#: Output columns in order, with their Parquet types.
COLUMNS: dict[str, str] = {
    "dataset": "string",
    "model": "string",
    "position": "int64",
    "fold": "int64",
    "same": "bool",
    "image1": "string",
    "identity1": "string",
    "quality1": "float64",
    "image2": "string",
    "identity2": "string",
    "quality2": "float64",
    "distance": "float64",
    "threshold": "float64",
    "predicted_same": "bool",
    "correct": "bool",
    "cscore": "float64",
}


def _record(dataset: str, model: str, row: PairRow) -> dict[str, Any]:
    values = asdict(row)
    return {
        "dataset": dataset,
        "model": model,
        "image1": values.pop("image1_path"),
        "image2": values.pop("image2_path"),
        **{name: values[name] for name in COLUMNS if name in values},
    }


def export_results(store: Store, dataset_name: str, model_name: str, fmt: str, out: Path) -> int:
    """Write the results of ``model_name`` on ``dataset_name`` to ``out``; returns the row count.
    The file appears complete or not at all (written beside it, then renamed)."""
    if fmt not in FORMATS:
        raise XfvError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    with store.transaction() as session:
        dataset = find_dataset(session, dataset_name)
        model = find_model(session, model_name)
        rows = result_rows(session, dataset, model)
    if not any(row.distance is not None for row in rows):
        raise XfvError(f"no results of {model.name!r} on {dataset.name!r} yet: run `xfv compute` first")
    records = [_record(dataset.name, model.name, row) for row in rows]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    (_write_csv if fmt == "csv" else _write_parquet)(records, partial)
    partial.replace(out)
    return len(records)


def _write_csv(records: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(records)


def _write_parquet(records: list[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise XfvError("Parquet export needs pyarrow: pip install 'xfv[parquet]'") from None
    schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in COLUMNS.items()])
    table = pa.Table.from_pylist(records, schema=schema)
    pq.write_table(table, path)
