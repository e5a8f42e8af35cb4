"""Shared fixtures: an isolated XFV_HOME per test session, and the real data in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.pg", "tests.synthetic", "tests.web_fixtures", "tests.tfjs_fixtures"]

SHARED = Path(__file__).resolve().parents[2] / "shared"
LFW_ROOT = SHARED / "data" / "lfw"
LFW_IMAGES = LFW_ROOT / "images_deepfunneled"


@pytest.fixture(scope="session", autouse=True)
def xfv_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own data and cache folders (nothing touches ~/.xfv)."""
    home = tmp_path_factory.mktemp("xfv-home")
    os.environ["XFV_HOME"] = str(home)
    os.environ.pop("XFV_CACHE_DIR", None)
    os.environ.pop("XFV_DATABASE_URL", None)
    return home


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """The real LFW (deep-funneled) folder, or a skip saying where it was looked for."""
    if not (LFW_ROOT / "pairs.txt").is_file():
        pytest.skip(f"real LFW data not found at {LFW_ROOT} (expected ../shared/data/lfw beside the repository)")
    return LFW_ROOT


def lfw_image(name: str, number: int) -> Path:
    """Path of one LFW image, e.g. ``lfw_image("Aaron_Eckhart", 1)``."""
    return LFW_IMAGES / name / f"{name}_{number:04d}.jpg"


def first_of_each_fold(pairs_file: Path, per_class: int) -> list[str]:
    """The header and the first ``per_class`` genuine and impostor lines of each fold of a 10 x 300 pairs file."""
    lines = pairs_file.read_text().splitlines()
    kept = [f"10\t{per_class}"]
    for fold in range(10):
        block = lines[1 + 600 * fold : 1 + 600 * (fold + 1)]
        kept += block[:per_class] + block[300 : 300 + per_class]
    return kept


def lfw_slice(lfw_root: Path, folder: Path, per_class: int) -> Path:
    """A dataset root with a slice of LFW's pairs.txt (:func:`first_of_each_fold`); the images
    folder is a link to the real one."""
    folder.mkdir()
    (folder / "pairs.txt").write_text("\n".join(first_of_each_fold(lfw_root / "pairs.txt", per_class)) + "\n")
    (folder / "images_deepfunneled").symlink_to(lfw_root / "images_deepfunneled")
    return folder
