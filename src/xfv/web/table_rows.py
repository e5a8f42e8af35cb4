"""The explorer's table rows as HTML: each pair's cells rendered once per pair table and list of
compared models, then reused by every page that shows the pair (only the viewer link, which
carries the page's state, is filled in per request).

A row's cells depend only on the pair and its results, which stay the same while the store's
pair table is kept (:class:`~xfv.store.pair_table.PairTables`); so the cells are kept beside that
table (dropped with it) and a page of 200 rows costs 200 string joins instead of 200 template
rows. The filters of :mod:`xfv.web.templating` format the cells, as in the templates.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from markupsafe import Markup, escape

from xfv.store.pair_table import PairPage, PairQuery, PairRow, PairTable
from xfv.store.results import ModelResult
from xfv.web.filters import ExplorerQuery
from xfv.web.templating import correct_mark, cscore_pill, decision, number, quality_bar

#: The columns of each compared model's group: (sort key, heading, tooltip).
RESULT_COLUMNS = (
    ("distance", "Distance", "cosine distance of the embeddings (the fold's threshold on hover)"),
    ("prediction", "Prediction", "same iff distance <= the fold's threshold"),
    ("correct", "Correct", "prediction equals label"),
    ("cscore", "C-Score", "confidence of the prediction, 0.5 to 1"),
)
#: At most this many rows' cells are kept per table (a bound for stores of many pairs).
MAX_KEPT = 200_000

#: Per kept pair table: (pair id, compared models) -> the row's opening class, and its cells
#: before and after the viewer link.
_KEPT: WeakKeyDictionary[PairTable, dict[tuple[int, tuple[str, ...]], tuple[str, str, str]]] = WeakKeyDictionary()


def prepare(table: PairTable) -> None:
    """Render the cells of every pair as the explorer's default view compares models (done when the
    server starts: its first pages then only join strings)."""
    models = tuple(table.query(PairQuery(per_page=1)).models)
    kept = _KEPT.setdefault(table, {})
    for row in table.every_row(PairQuery())[: MAX_KEPT - len(kept)]:
        kept.setdefault((row.pair_id, models), _cells(row, models))


def explorer_rows(table: PairTable, page: PairPage, pair_ids: list[int], q: ExplorerQuery) -> Markup:
    """The ``<tr>`` elements of the page's ``pair_ids`` (from :meth:`PairTable.page_ids`), each
    linking to the viewer with the state of ``q`` and its row index; rows not kept yet are read
    from ``table`` (at once) and kept."""
    kept = _KEPT.setdefault(table, {})
    models = tuple(page.models)
    missing = [pair_id for pair_id in pair_ids if (pair_id, models) not in kept]
    found = {row.pair_id: _cells(row, models) for row in table.rows_of(q.pair_query(), missing)} if missing else {}
    if found and len(kept) < MAX_KEPT:
        kept.update({(pair_id, models): cells for pair_id, cells in found.items()})
    parts = []
    for index, pair_id in enumerate(pair_ids, page.offset):
        cells = kept.get((pair_id, models)) or found[pair_id]
        href = escape(q.viewer_url(pair_id, index))
        parts.append(f'<tr data-pair="{pair_id}" data-href="{href}" class="{cells[0]}">{cells[1]}{href}{cells[2]}')
    return Markup("\n".join(parts))


def _cells(row: PairRow, models: tuple[str, ...]) -> tuple[str, str, str]:
    """A row's class, and its cells before and after the viewer link."""
    names = (escape(row.identity1.replace("_", " ")), escape(row.identity2.replace("_", " ")))
    before = f'<td class="num muted">{row.position}</td><td class="pair-cell"><a href="'
    after = (
        f'" class="thumbs" aria-label="open pair {row.pair_id} in the viewer">'
        f'<img src="/api/images/{row.image1_id}?size=96" width="44" height="44" loading="lazy" alt="">'
        f'<img src="/api/images/{row.image2_id}?size=96" width="44" height="44" loading="lazy" alt=""></a>'
        f'<span class="names"><span>{names[0]}</span><span>{names[1]}</span></span></td>'
        f'<td>{escape(row.dataset)}</td><td class="num">{row.fold}</td><td>{decision(row.same)}</td>'
        f'<td class="num">{quality_bar(row.quality1)}</td><td class="num">{quality_bar(row.quality2)}</td>'
        + "".join(_group(escape(name), row.results.get(name)) for name in models)
        + "</tr>"
    )
    return ("wrong" if row.correct is False else ""), before, after


def _group(name: str, result: ModelResult | None) -> str:
    """One model's cells of a row: distance, prediction, correctness, C-Score."""
    if result is None:
        return f'<td class="muted group-start" colspan="{len(RESULT_COLUMNS)}" data-model="{name}">no result</td>'
    correct = "none" if result.correct is None else str(result.correct).lower()
    return (
        f'<td class="num mono group-start" data-model="{name}" title="threshold {number(result.threshold, 4)}">'
        f"{number(result.distance, 4)}</td>"
        f'<td data-model="{name}">{decision(result.predicted_same)}</td>'
        f'<td class="center" data-model="{name}" data-correct="{correct}">{correct_mark(result.correct)}</td>'
        f'<td class="num" data-model="{name}">{cscore_pill(result.cscore)}</td>'
    )
