"""The C-Score of the paper (section 3.1): how likely a thresholded face-verification decision is right.

Genuine and impostor distances are histogrammed over [0, 2]; the genuine share per bin (from
densities, so class priors do not matter) is fitted with the logistic c(d) = L / (1 + exp(-k (d - d0))) + b;
then C = c(d) for a genuine decision and 1 - c(d) for an impostor one, clipped to [0.5, 1].
Defaults follow the paper (400 bins, bin centres, genuine iff d <= t); :meth:`CScoreCalibrator.authors_code`
gives the authors' reference code (2000 bins, left bin edges, genuine iff d < t).

:class:`QualityCScoreCalibrator` (ours, beyond the paper) fits that curve per group of pair quality.
"""

from __future__ import annotations

import warnings
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy.special import expit

from xfv.errors import CalibrationError
from xfv.method.calibration import Calibrator, QualityAwareCalibrator, check_pairs, check_quality

#: Where a bin sits on the distance axis in the fit: its centre (default) or its left edge (authors' code).
X_POSITIONS = ("centre", "left")
#: The cosine-distance range the histograms cover.
DISTANCE_RANGE = (0.0, 2.0)


class Sigmoid(NamedTuple):
    """The four-parameter logistic c(d) = L / (1 + exp(-k (d - d0))) + b; falls with d when L k < 0."""

    L: float
    d0: float
    k: float
    b: float

    def __call__(self, distances: np.ndarray | float) -> np.ndarray:
        return self.L * expit(self.k * (np.asarray(distances, dtype=np.float64) - self.d0)) + self.b


def _sigmoid(d: np.ndarray, L: float, d0: float, k: float, b: float) -> np.ndarray:  # noqa: N803
    return Sigmoid(L, d0, k, b)(d)


@dataclass(frozen=True)
class BinRatios:
    """Histogram of one calibration set: bin edges, the fit's x per bin, class densities, genuine share."""

    edges: np.ndarray
    x: np.ndarray
    genuine_density: np.ndarray
    impostor_density: np.ndarray
    ratio: np.ndarray


def bin_ratios(
    distances: np.ndarray, labels: np.ndarray, threshold: float, bins: int = 400, x_position: str = "centre"
) -> BinRatios:
    """Genuine share per bin, g / (g + i) of the class densities over [0, 2].

    Bins empty of both classes count as 1 left of the bin holding the threshold and 0 from it on.
    """
    if x_position not in X_POSITIONS:
        raise CalibrationError(f"x_position must be one of {X_POSITIONS}, got {x_position!r}")
    if bins < 2:
        raise CalibrationError(f"the C-Score needs at least 2 histogram bins, got {bins}")
    d, same = check_pairs(distances, labels)
    d = np.clip(d, *DISTANCE_RANGE)
    genuine, edges = np.histogram(d[same], bins=bins, range=DISTANCE_RANGE, density=True)
    impostor, _ = np.histogram(d[~same], bins=bins, range=DISTANCE_RANGE, density=True)
    total = genuine + impostor
    low, high = DISTANCE_RANGE
    threshold_bin = int(np.floor((threshold - low) / ((high - low) / bins)))  # as the authors' code rounds
    empty_value = np.where(np.arange(bins) < threshold_bin, 1.0, 0.0)
    ratio = np.divide(genuine, total, out=empty_value, where=total > 0)
    x = edges[:-1] if x_position == "left" else (edges[:-1] + edges[1:]) / 2
    return BinRatios(edges, x, genuine, impostor, ratio)


def fit_sigmoid(
    x: np.ndarray, ratio: np.ndarray, threshold: float, k0: float = -20.0, max_evaluations: int | None = None
) -> Sigmoid:
    """Least-squares fit of the logistic to (x, ratio) with dogbox from p0 = [max(ratio), t, k0, min(ratio)].

    Raises :class:`CalibrationError` if the fit does not converge or gives a curve that does not fall.
    """
    from scipy.optimize import OptimizeWarning, curve_fit  # imported here: half a second, only fits need it

    p0 = [float(np.max(ratio)), float(threshold), float(k0), float(np.min(ratio))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # covariance not estimable: irrelevant here
            params, _ = curve_fit(_sigmoid, x, ratio, p0=p0, method="dogbox", max_nfev=max_evaluations)
    except (RuntimeError, ValueError) as exc:
        raise CalibrationError(f"the C-Score sigmoid fit did not converge: {exc}") from exc
    sigmoid = Sigmoid(*(float(p) for p in params))
    if not np.all(np.isfinite(sigmoid)):
        raise CalibrationError(f"the C-Score sigmoid fit gave non-finite parameters {sigmoid}")
    if sigmoid.L * sigmoid.k >= 0:
        raise CalibrationError(
            f"the fitted C-Score curve does not fall with distance (L={sigmoid.L:.4g}, k={sigmoid.k:.4g}); "
            "are the labels swapped?"
        )
    return sigmoid


class CScoreCalibrator(Calibrator):
    """The paper's C-Score as a calibrator; fitted attributes ``sigmoid_`` (L, d0, k, b) and ``threshold_``.

    Options: ``bins`` over [0, 2] (paper 400, authors' code 2000), ``x_position`` of each bin in the fit
    (``"centre"`` or the authors' ``"left"`` edge), ``k0`` the initial slope, ``strict`` for genuine iff d < t.
    """

    kind = "cscore"

    def __init__(self, *, bins: int = 400, x_position: str = "centre", k0: float = -20.0, strict: bool = False) -> None:
        super().__init__(strict=strict)
        if x_position not in X_POSITIONS:
            raise CalibrationError(f"x_position must be one of {X_POSITIONS}, got {x_position!r}")
        self.bins = int(bins)
        self.x_position = x_position
        self.k0 = float(k0)

    @classmethod
    def authors_code(cls, bins: int = 2000) -> CScoreCalibrator:
        """The settings of the authors' reference code: 2000 bins, left bin edges, k0 = -20, d < t."""
        return cls(bins=bins, x_position="left", k0=-20.0, strict=True)

    def _fit(self, d: np.ndarray, same: np.ndarray, t: float) -> None:
        ratios = bin_ratios(d, same, t, self.bins, self.x_position)
        self.sigmoid_ = fit_sigmoid(ratios.x, ratios.ratio, t, self.k0)

    def predict_confidence(self, distances: np.ndarray | float) -> np.ndarray:
        """C-Score: c(d) for a genuine decision, 1 - c(d) for an impostor one, clipped to [0.5, 1]."""
        self._check_fitted()
        c = self.sigmoid_(distances)
        return np.clip(np.where(self.predict_same(distances), c, 1.0 - c), 0.5, 1.0)

    def predict_proba_same(self, distances: np.ndarray | float) -> np.ndarray:
        """P(genuine) implied by the C-Score: C for a genuine decision, 1 - C for an impostor one."""
        confidence = self.predict_confidence(distances)
        return np.where(self.predict_same(distances), confidence, 1.0 - confidence)

    def get_options(self) -> dict[str, Any]:
        return {**super().get_options(), "bins": self.bins, "x_position": self.x_position, "k0": self.k0}

    def _parameters(self) -> dict[str, Any]:
        return self.sigmoid_._asdict()

    def _set_parameters(self, parameters: dict[str, Any]) -> None:
        self.sigmoid_ = Sigmoid(*(float(parameters[name]) for name in Sigmoid._fields))


class QualityCScoreCalibrator(QualityAwareCalibrator):
    """The C-Score conditioned on pair quality (beyond the paper); fitted ``edges_``, ``sigmoids_``, ``pooled_``.

    The calibration pairs are split into ``groups`` groups by their quality (the lower image quality
    of the pair, say) at its quantiles (``edges_``); each group gets its own histogram (``bins``
    scaled to the group's share of the pairs, so bins hold as many pairs as the plain C-Score's)
    and its own logistic fit at the common threshold. A pair is scored by the curve of the group
    its quality falls in (qualities beyond the calibration range: the end groups). A group with
    too few genuine or impostor pairs, or whose fit fails, uses the fit on all pairs (``pooled_``).
    Decisions are the threshold's, as for the plain C-Score: only the confidence changes.
    """

    kind = "cscore-quality"

    def __init__(
        self, *, groups: int = 3, bins: int = 400, x_position: str = "centre", k0: float = -20.0, strict: bool = False
    ) -> None:
        super().__init__(strict=strict)
        if groups < 1:
            raise CalibrationError(f"the quality-aware C-Score needs at least 1 quality group, got {groups}")
        if x_position not in X_POSITIONS:
            raise CalibrationError(f"x_position must be one of {X_POSITIONS}, got {x_position!r}")
        self.groups = int(groups)
        self.bins = int(bins)
        self.x_position = x_position
        self.k0 = float(k0)

    def _fit_quality(self, d: np.ndarray, same: np.ndarray, t: float, quality: np.ndarray) -> None:
        self.pooled_ = self._fit_curve(d, same, t, self.bins)
        self.edges_ = np.quantile(quality, np.linspace(0.0, 1.0, self.groups + 1)[1:-1])
        group = self.group_of(quality)
        self.sigmoids_ = []
        for index in range(self.groups):
            member = group == index
            n_genuine, n_impostor = int(same[member].sum()), int((~same[member]).sum())
            sigmoid = self.pooled_
            if min(n_genuine, n_impostor) >= self.min_pairs_per_class:
                bins = max(2, round(self.bins * int(member.sum()) / len(d)))
                with suppress(CalibrationError):
                    sigmoid = self._fit_curve(d[member], same[member], t, bins)
            self.sigmoids_.append(sigmoid)

    def _fit_curve(self, d: np.ndarray, same: np.ndarray, t: float, bins: int) -> Sigmoid:
        ratios = bin_ratios(d, same, t, bins, self.x_position)
        return fit_sigmoid(ratios.x, ratios.ratio, t, self.k0)

    def group_of(self, quality: np.ndarray | float) -> np.ndarray:
        """The quality group (0 = lowest) of each quality."""
        return np.searchsorted(self.edges_, np.asarray(quality, dtype=np.float64), side="right")

    def _curve(self, distances: np.ndarray | float, quality: np.ndarray | float | None) -> np.ndarray:
        """c(d) by the curve of each pair's quality group."""
        self._check_fitted()
        d = np.asarray(distances, dtype=np.float64)
        q = check_quality(
            None if quality is None else np.broadcast_to(np.asarray(quality, dtype=np.float64), d.shape), d
        )
        return np.choose(self.group_of(q), [sigmoid(d) for sigmoid in self.sigmoids_])

    def predict_confidence(
        self, distances: np.ndarray | float, quality: np.ndarray | float | None = None
    ) -> np.ndarray:
        """C-Score from the curve of the pair's quality group, clipped to [0.5, 1] as the plain one."""
        c = self._curve(distances, quality)
        return np.clip(np.where(self.predict_same(distances), c, 1.0 - c), 0.5, 1.0)

    def predict_proba_same(
        self, distances: np.ndarray | float, quality: np.ndarray | float | None = None
    ) -> np.ndarray:
        confidence = self.predict_confidence(distances, quality)
        return np.where(self.predict_same(distances), confidence, 1.0 - confidence)

    def get_options(self) -> dict[str, Any]:
        return {
            **super().get_options(),
            "groups": self.groups,
            "bins": self.bins,
            "x_position": self.x_position,
            "k0": self.k0,
        }

    def _parameters(self) -> dict[str, Any]:
        return {
            "edges": [float(edge) for edge in self.edges_],
            "sigmoids": [sigmoid._asdict() for sigmoid in self.sigmoids_],
            "pooled": self.pooled_._asdict(),
        }

    def _set_parameters(self, parameters: dict[str, Any]) -> None:
        def sigmoid(values: dict[str, Any]) -> Sigmoid:
            return Sigmoid(*(float(values[name]) for name in Sigmoid._fields))

        self.edges_ = np.asarray(parameters["edges"], dtype=np.float64)
        self.sigmoids_ = [sigmoid(values) for values in parameters["sigmoids"]]
        self.pooled_ = sigmoid(parameters["pooled"])
        if len(self.sigmoids_) != self.groups or len(self.edges_) != self.groups - 1:
            raise ValueError(f"{self.groups} quality groups need {self.groups} curves and {self.groups - 1} edges")
