"""docs/ARCHITECTURE.md names every top-level module and folder of src/xfv, and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_architecture_table_matches_the_package() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    documented = set(re.findall(r"^\| `([\w.]+/?)` \|", text, flags=re.MULTILINE))
    package = ROOT / "src" / "xfv"
    present = {
        f"{path.name}/" if path.is_dir() else path.name
        for path in package.iterdir()
        if path.name != "__pycache__" and (path.is_dir() or path.suffix == ".py")
    }
    assert documented == present
