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


def lfw_slice(lfw_root: Path, folder: Path, per_class: int) -> Path:
    """A dataset root with the first ``per_class`` genuine and impostor pairs of every LFW fold;
    the images folder is a link to the real one."""
    lines = (lfw_root / "pairs.txt").read_text().splitlines()
    folds, all_per_class = (int(v) for v in lines[0].split())
    kept = [f"{folds}\t{per_class}"]
    for fold in range(folds):
        start = 1 + fold * 2 * all_per_class
        kept += lines[start : start + per_class] + lines[start + all_per_class : start + all_per_class + per_class]
    folder.mkdir()
    (folder / "pairs.txt").write_text("\n".join(kept) + "\n")
    (folder / "images_deepfunneled").symlink_to(lfw_root / "images_deepfunneled")
    return folder
