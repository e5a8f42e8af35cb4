"""Jinja2 templates of the pages and the small formatting filters they use."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from xfv import __version__
from xfv.method.xmaps import XMAP_METHODS

DASH = "–"


def number(value: float | None, digits: int = 3) -> str:
    """A float with ``digits`` decimals, or a dash for "not computed"."""
    return DASH if value is None else f"{value:.{digits}f}"


def percent(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{100 * value:.{digits}f} %"


def thousands(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def decision(same: bool | None) -> Markup:
    """A "same" / "different" badge (a label or a prediction)."""
    if same is None:
        return Markup(f'<span class="badge muted">{DASH}</span>')
    return Markup('<span class="badge same">same</span>' if same else '<span class="badge different">different</span>')


def correct_mark(correct: bool | None) -> Markup:
    if correct is None:
        return Markup(f'<span class="muted">{DASH}</span>')
    return Markup(
        '<span class="mark ok" title="correct">✓</span>' if correct else '<span class="mark bad" title="wrong">✗</span>'
    )


def cscore_pill(value: float | None) -> Markup:
    """The C-Score as a bar from 0.5 (empty, red) to 1 (full, green) with its value."""
    if value is None:
        return Markup(f'<span class="muted">{DASH}</span>')
    fill = max(0.0, min(1.0, (value - 0.5) * 2))
    return Markup(
        f'<span class="cscore" style="--c: {fill:.3f}" title="C-Score {value:.4f}"><span class="cscore-fill"></span>'
        f'<span class="cscore-value">{value:.3f}</span></span>'
    )


def quality_bar(value: float) -> Markup:
    """An image-quality score in [0, 1] as a small bar."""
    return Markup(
        f'<span class="quality" title="image quality {value:.3f}">'
        f'<span class="quality-fill" style="width: {100 * value:.1f}%"></span>'
        f'<span class="quality-value">{value:.2f}</span></span>'
    )


def static_url(name: str) -> str:
    """A static file's URL, versioned so browsers refetch after an upgrade."""
    return f"/static/{name}?v={__version__}"


templates = Jinja2Templates(directory=Path(str(resources.files("xfv.web") / "templates")))
templates.env.filters.update(
    number=number,
    percent=percent,
    thousands=thousands,
    decision=decision,
    correct_mark=correct_mark,
    cscore_pill=cscore_pill,
    quality_bar=quality_bar,
)
templates.env.globals.update(static=static_url, version=__version__, xmap_methods=XMAP_METHODS)
