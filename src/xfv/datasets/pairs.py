"""One pair-list type for every benchmark protocol, with fold ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Pair:
    """Two images, their identities, whether they show the same person, and the pair's fold (0-9)."""

    image1: Path
    image2: Path
    identity1: str
    identity2: str
    same: bool
    fold: int


@dataclass
class PairList:
    """The pairs of one dataset read from its root: ``name`` is the dataset's (``lfw``, or
    ``xqlfw-synth`` for XQLFW pairs on xfv's degraded LFW images), ``input_mode`` how its faces are
    found (None: the protocol's usual mode), ``notes`` caveats that reports on it must carry."""

    name: str
    root: Path
    pairs: list[Pair]
    input_mode: str | None = None
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def same(self) -> np.ndarray:
        return np.array([pair.same for pair in self.pairs], dtype=bool)

    @property
    def folds(self) -> np.ndarray:
        return np.array([pair.fold for pair in self.pairs], dtype=np.int64)

    def unique_images(self) -> list[Path]:
        """Every image once, in order of first appearance."""
        seen: dict[Path, None] = {}
        for pair in self.pairs:
            seen.setdefault(pair.image1)
            seen.setdefault(pair.image2)
        return list(seen)

    def subset(self, indices: list[int] | np.ndarray) -> PairList:
        """A pair list holding only the pairs at ``indices`` (folds kept)."""
        return PairList(self.name, self.root, [self.pairs[int(i)] for i in indices], self.input_mode, self.notes)
