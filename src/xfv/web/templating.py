"""Jinja2 templates of the pages and the small formatting filters they use."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi.templating import Jinja2Templates

from xfv import __version__

DASH = "–"


def number(value: float | None, digits: int = 3) -> str:
    """A float with ``digits`` decimals, or a dash for "not computed"."""
    return DASH if value is None else f"{value:.{digits}f}"


def percent(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{100 * value:.{digits}f} %"


def thousands(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def static_url(name: str) -> str:
    """A static file's URL, versioned so browsers refetch after an upgrade."""
    return f"/static/{name}?v={__version__}"


templates = Jinja2Templates(directory=Path(str(resources.files("xfv.web") / "templates")))
templates.env.filters.update(number=number, percent=percent, thousands=thousands)
templates.env.globals.update(static=static_url, version=__version__)
