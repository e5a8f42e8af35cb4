"""Cosine distances, d = 1 - cos(f1, f2) in [0, 2] (paper equation 1)."""

from __future__ import annotations

import numpy as np


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return embeddings / np.where(norms > 0, norms, 1.0)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine distance between matching rows of ``a`` and ``b`` (or two vectors)."""
    return 1.0 - np.sum(normalise(a) * normalise(b), axis=-1)


def cosine_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All cosine distances between the rows of ``a`` (n, d) and ``b`` (m, d): one matrix product."""
    return 1.0 - normalise(a) @ normalise(b).T
