"""docs/ARCHITECTURE.md names every module and folder of src/xfv, and nothing that is gone; the
layers keep to their parts: only store/ queries the database, method/ writes no files and draws
nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "xfv"
ROW = re.compile(r"^\| `([\w./]+)` \| (.*) \|$", flags=re.MULTILINE)


def _rows() -> dict[str, str]:
    return dict(ROW.findall((ROOT / "docs" / "ARCHITECTURE.md").read_text()))


def _entries(folder: Path) -> set[str]:
    """A folder's modules and subfolders as the table writes them (``name.py``, ``name/``)."""
    return {
        f"{path.name}/" if path.is_dir() else path.name
        for path in folder.iterdir()
        if path.name != "__pycache__" and (path.is_dir() or path.suffix == ".py")
    }


def test_architecture_table_matches_the_package() -> None:
    documented = {name for name in _rows() if "/" not in name.rstrip("/")}
    assert documented == _entries(PACKAGE)


def test_each_folder_row_names_its_modules_and_nothing_that_is_gone() -> None:
    top = _entries(PACKAGE)
    for folder, text in _rows().items():
        if not folder.endswith("/"):
            continue
        present = _entries(PACKAGE / folder)
        named = set(re.findall(r"`([\w.]+(?:\.py|/))`", text))
        assert present - {"__init__.py"} <= named, f"{folder} does not name {sorted(present - named)}"
        assert named <= present | top, f"{folder} names {sorted(named - present - top)}, which are not there"


def _sources(*, outside: str | None = None, inside: str | None = None) -> dict[Path, str]:
    folder = PACKAGE / inside if inside else PACKAGE
    files = sorted(folder.rglob("*.py"))
    if outside:
        files = [path for path in files if not path.is_relative_to(PACKAGE / outside)]
    return {path.relative_to(PACKAGE): path.read_text() for path in files}


def test_only_the_store_queries_the_database() -> None:
    sql = re.compile(
        r"^from sqlalchemy(\.sql\w*)? import|^import sqlalchemy|"
        r"\bsession\.(execute|scalars?|get|get_one|add|add_all|delete|flush|query|merge)\(",
        flags=re.MULTILINE,
    )
    offenders = {
        str(path): found.group(0) for path, text in _sources(outside="store").items() if (found := sql.search(text))
    }
    assert not offenders, f"SQL outside xfv.store: {offenders}"


def test_the_maths_write_no_files_and_draw_nothing() -> None:
    # colour maps are numbers (matplotlib's tables); figures are pyplot's, Figure's and Axes'
    io = re.compile(
        r"\bopen\(|\.write_(text|bytes)\(|savefig|np\.save|\.mkdir\(|\.save\(|pyplot|matplotlib\.(figure|axes)|PIL"
    )
    offenders = {
        str(path): found.group(0) for path, text in _sources(inside="method").items() if (found := io.search(text))
    }
    assert not offenders, f"file writing or drawing in xfv.method: {offenders}"


def test_the_package_ships_its_type_marker() -> None:
    data = re.search(r"^xfv = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)
    assert data is not None and '"py.typed"' in data.group(1) and (PACKAGE / "py.typed").is_file()
