"""The tree ``xfv make-xqlfw-synth`` writes: XQLFW's pair list on LFW images degraded by xfv.

Layout (LFW-shaped, so the images are read as LFW deep-funneled ones)::

    OUT/xqlfw_pairs.txt                the pair list, byte for byte as given
    OUT/images/Name/Name_NNNN.jpg      every image the list names: LFW's file, or a degraded copy
    OUT/manifest.json                  seed, recipe, and each image's degradation (written last)
    OUT/.make-xqlfw-synth.journal      only while a run is unfinished: the images done so far

This is not XQLFW: the official degraded images and their recipe are not published. Results on
it are "XQLFW pairs, synthetic degradation", under the dataset name ``xqlfw-synth``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xfv.errors import DatasetError

DATASET_NAME = "xqlfw-synth"
PAIRS_FILE = "xqlfw_pairs.txt"
IMAGES_FOLDER = "images"
MANIFEST_FILE = "manifest.json"
JOURNAL_FILE = ".make-xqlfw-synth.journal"
FORMAT = "xfv-xqlfw-synth"
FORMAT_VERSION = 1
#: How the faces of the tree are found: its images are LFW deep-funneled images, degraded or not.
INPUT_MODE = "lfw-funneled"


@dataclass(frozen=True)
class TreeHeader:
    """What decides every byte of a tree: the seed, the recipe version and the pair list's SHA-256."""

    seed: int
    recipe: int
    pairs_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "seed": self.seed,
            "recipe": self.recipe,
            "pairs_sha256": self.pairs_sha256,
        }

    @classmethod
    def from_dict(cls, data: Any, source: Path) -> TreeHeader:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DatasetError(f"{source}: not a manifest of `xfv make-xqlfw-synth`")
        if data.get("version") != FORMAT_VERSION:
            raise DatasetError(f"{source}: manifest version {data.get('version')!r}, this xfv reads {FORMAT_VERSION}")
        try:
            return cls(int(data["seed"]), int(data["recipe"]), str(data["pairs_sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{source}: malformed manifest header ({exc!r})") from None

    def describe(self) -> str:
        """The name results on this tree go by."""
        return (
            f"XQLFW pairs, synthetic degradation (xfv recipe {self.recipe}, seed {self.seed}): LFW images "
            "degraded by xfv, not the official XQLFW images"
        )


def is_synthetic_tree(root: Path) -> bool:
    """Whether ``root`` holds a tree of ``xfv make-xqlfw-synth``, finished or not."""
    return (root / MANIFEST_FILE).is_file() or (root / JOURNAL_FILE).is_file()


def read_manifest(root: Path) -> dict[str, Any]:
    """The finished tree's manifest; ``DatasetError`` if the run is unfinished or the file is not one."""
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise DatasetError(
            f"{root}: generation unfinished (no {MANIFEST_FILE}); run `xfv make-xqlfw-synth` again with the same "
            "--out and --seed to finish it"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc})") from None
    TreeHeader.from_dict(data, path)
    return dict(data)
