"""Calibrators: from a cosine distance to P(genuine) and to the confidence of the decision.

All calibrators share one scikit-learn style interface (:class:`Calibrator`): ``fit`` on labelled
distances with a decision threshold t (genuine iff d <= t), then ``predict_proba_same`` and
``predict_confidence``, and a JSON form so a calibration travels with its model. This module holds
the base class, the baselines (Platt scaling, isotonic regression) and the fold-wise protocol; the
C-Score of the paper is :class:`xfv.method.cscore.CScoreCalibrator`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from scipy.special import expit

from xfv.errors import CalibrationError
from xfv.method.thresholds import best_threshold

#: Format tag and version written into every saved calibrator.
FORMAT = "xfv-calibrator"
FORMAT_VERSION = 1

_C = TypeVar("_C", bound="Calibrator")


def check_pairs(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate labelled distances; returns them as float64 and bool 1-D arrays."""
    d = np.asarray(distances, dtype=np.float64)
    same = np.asarray(labels).astype(bool)
    if d.ndim != 1 or same.shape != d.shape:
        raise CalibrationError(f"distances and labels must be 1-D of one length, got {d.shape} and {same.shape}")
    if not np.all(np.isfinite(d)):
        raise CalibrationError(f"{int(np.sum(~np.isfinite(d)))} distances are not finite numbers")
    return d, same


class Calibrator(ABC):
    """Maps cosine distances to P(genuine) and to the confidence of the thresholded decision.

    ``strict`` selects the decision rule: genuine iff d < t (the authors' code) instead of d <= t.
    Fitted attributes: ``threshold_``, ``model_name_`` and ``fitted_on_`` (what the data was).
    """

    #: Name of the method in saved files and reports; each concrete subclass sets its own.
    kind: ClassVar[str]
    #: Fewer genuine or impostor pairs than this is an error, not a fit.
    min_pairs_per_class: ClassVar[int] = 10
    _registry: ClassVar[dict[str, type[Calibrator]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Calibrator._registry[cls.kind] = cls

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    # --- fitting -------------------------------------------------------------------------------

    def fit(
        self: _C,
        distances: np.ndarray,
        labels: np.ndarray,
        threshold: float | None = None,
        *,
        model_name: str = "",
        data_description: str = "",
    ) -> _C:
        """Fit on labelled distances (labels true = genuine) with decision threshold ``threshold``.

        With ``threshold=None`` the accuracy-maximising threshold on these distances is used.
        """
        d, same, t = self._prepare(distances, labels, threshold)
        self._fit(d, same, t)
        return self._fitted(same, t, model_name, data_description)

    def _prepare(
        self, distances: np.ndarray, labels: np.ndarray, threshold: float | None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Validated distances and labels, and the threshold (the best one on them if None)."""
        d, same = check_pairs(distances, labels)
        self._check_counts(same)
        t = best_threshold(d, same) if threshold is None else float(threshold)
        if not np.isfinite(t):
            raise CalibrationError(f"threshold must be a finite number, got {threshold!r}")
        return d, same, t

    def _fitted(self: _C, same: np.ndarray, t: float, model_name: str, data_description: str) -> _C:
        """Record the threshold and what the calibrator was fitted on."""
        self.threshold_ = t
        self.model_name_ = model_name
        self.fitted_on_ = {
            "description": data_description,
            "n_genuine": int(same.sum()),
            "n_impostor": int((~same).sum()),
        }
        return self

    def _check_counts(self, same: np.ndarray) -> None:
        n_genuine, n_impostor = int(same.sum()), int((~same).sum())
        for name, count in (("genuine", n_genuine), ("impostor", n_impostor)):
            if count == 0:
                raise CalibrationError(f"cannot calibrate {self.kind}: the data has no {name} pairs")
        if min(n_genuine, n_impostor) < self.min_pairs_per_class:
            raise CalibrationError(
                f"too few pairs to calibrate {self.kind}: {n_genuine} genuine and {n_impostor} impostor, "
                f"need at least {self.min_pairs_per_class} of each"
            )

    @abstractmethod
    def _fit(self, d: np.ndarray, same: np.ndarray, t: float) -> None:
        """Fit the method's own parameters on validated data."""

    # --- prediction ----------------------------------------------------------------------------

    def predict_same(self, distances: np.ndarray | float) -> np.ndarray:
        """The decision: true where a pair is predicted genuine."""
        self._check_fitted()
        d = np.asarray(distances, dtype=np.float64)
        return d < self.threshold_ if self.strict else d <= self.threshold_

    @abstractmethod
    def predict_proba_same(self, distances: np.ndarray | float) -> np.ndarray:
        """P(genuine) for each distance."""

    def predict_confidence(self, distances: np.ndarray | float) -> np.ndarray:
        """Probability that the decision is right: P(same) if predicted same, else 1 - P(same)."""
        p = self.predict_proba_same(distances)
        return np.where(self.predict_same(distances), p, 1.0 - p)

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise CalibrationError(f"the {self.kind} calibrator is not fitted; call fit() or from_dict() first")

    # --- persistence ---------------------------------------------------------------------------

    def get_options(self) -> dict[str, Any]:
        """Constructor arguments, so ``type(self)(**get_options())`` is an unfitted copy."""
        return {"strict": self.strict}

    @abstractmethod
    def _parameters(self) -> dict[str, Any]:
        """Fitted parameters as JSON values."""

    @abstractmethod
    def _set_parameters(self, parameters: dict[str, Any]) -> None:
        """Restore fitted parameters written by :meth:`_parameters`."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: method, model, data, threshold, options and parameters."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "model": self.model_name_,
            "fitted_on": dict(self.fitted_on_),
            "threshold": self.threshold_,
            "options": self.get_options(),
            "parameters": self._parameters(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output; the class is chosen by ``kind``."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise CalibrationError(f"not an {FORMAT} version {FORMAT_VERSION} description")
        _import_builtin_kinds()
        klass = Calibrator._registry.get(data.get("kind", ""))
        if klass is None or not issubclass(klass, cls):
            raise CalibrationError(f"cannot load a {data.get('kind')!r} calibrator as {cls.__name__}")
        try:
            calibrator = klass(**data["options"])
            calibrator._set_parameters(data["parameters"])
            calibrator.threshold_ = float(data["threshold"])
            calibrator.model_name_ = str(data["model"])
            calibrator.fitted_on_ = dict(data["fitted_on"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"malformed {klass.kind} calibrator description: {exc!r}") from exc
        return calibrator


def _import_builtin_kinds() -> None:
    """Register the C-Score, which lives in its own module that imports this one."""
    import xfv.method.cscore  # noqa: F401


def check_quality(quality: np.ndarray | None, distances: np.ndarray) -> np.ndarray:
    """Validate per-pair qualities (one finite number per distance); returns them as float64."""
    if quality is None:
        raise CalibrationError("this calibrator needs each pair's quality (quality=...)")
    q = np.asarray(quality, dtype=np.float64)
    if q.shape != np.shape(distances):
        raise CalibrationError(f"need one quality per pair: {q.shape} qualities for {np.shape(distances)} distances")
    if not np.all(np.isfinite(q)):
        raise CalibrationError(f"{int(np.sum(~np.isfinite(q)))} qualities are not finite numbers")
    return q


class QualityAwareCalibrator(Calibrator):
    """A calibrator whose confidence also depends on each pair's quality, a second input of ``fit``
    and of the predictions (e.g. the lower image quality of the pair); decisions stay the threshold's."""

    def fit(
        self: _Q,
        distances: np.ndarray,
        labels: np.ndarray,
        threshold: float | None = None,
        *,
        quality: np.ndarray | None = None,
        model_name: str = "",
        data_description: str = "",
    ) -> _Q:
        """Fit on labelled distances and each pair's ``quality`` with decision threshold ``threshold``."""
        d, same, t = self._prepare(distances, labels, threshold)
        self._fit_quality(d, same, t, check_quality(quality, d))
        return self._fitted(same, t, model_name, data_description)

    def _fit(self, d: np.ndarray, same: np.ndarray, t: float) -> None:
        raise CalibrationError(f"the {self.kind} calibrator needs each pair's quality (quality=...)")

    @abstractmethod
    def _fit_quality(self, d: np.ndarray, same: np.ndarray, t: float, quality: np.ndarray) -> None:
        """Fit the method's own parameters on validated data and qualities."""

    @abstractmethod
    def predict_proba_same(
        self, distances: np.ndarray | float, quality: np.ndarray | float | None = None
    ) -> np.ndarray:
        """P(genuine) for each distance at each pair's quality."""

    def predict_confidence(
        self, distances: np.ndarray | float, quality: np.ndarray | float | None = None
    ) -> np.ndarray:
        p = self.predict_proba_same(distances, quality)
        return np.where(self.predict_same(distances), p, 1.0 - p)


_Q = TypeVar("_Q", bound=QualityAwareCalibrator)


class PlattCalibrator(Calibrator):
    """Platt scaling: P(same) = sigmoid(a + b d), fitted by maximum likelihood on Platt's smoothed targets.

    The smoothed targets (N+ + 1)/(N+ + 2) and 1/(N- + 2) keep the fit finite on separable data.
    """

    kind = "platt"

    def _fit(self, d: np.ndarray, same: np.ndarray, t: float) -> None:
        from scipy.optimize import minimize  # imported here: every `xfv` command loads this module

        n_pos, n_neg = int(same.sum()), int((~same).sum())
        target = np.where(same, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
        mu, sd = float(d.mean()), float(d.std()) or 1.0
        z = (d - mu) / sd

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            s = w[0] + w[1] * z
            residual = expit(s) - target
            return float(np.sum(np.logaddexp(0.0, s) - target * s)), np.array([residual.sum(), residual @ z])

        result = minimize(loss, np.zeros(2), jac=True, method="BFGS")
        if not result.success or not np.all(np.isfinite(result.x)):
            raise CalibrationError(f"Platt scaling did not converge: {result.message}")
        self.slope_ = float(result.x[1] / sd)
        self.intercept_ = float(result.x[0] - result.x[1] * mu / sd)

    def predict_proba_same(self, distances: np.ndarray | float) -> np.ndarray:
        self._check_fitted()
        return expit(self.intercept_ + self.slope_ * np.asarray(distances, dtype=np.float64))

    def _parameters(self) -> dict[str, Any]:
        return {"intercept": self.intercept_, "slope": self.slope_}

    def _set_parameters(self, parameters: dict[str, Any]) -> None:
        self.intercept_ = float(parameters["intercept"])
        self.slope_ = float(parameters["slope"])


class IsotonicCalibrator(Calibrator):
    """Isotonic regression of the genuine label on d, non-increasing in distance, clipped at the ends."""

    kind = "isotonic"

    def _fit(self, d: np.ndarray, same: np.ndarray, t: float) -> None:
        from sklearn.isotonic import IsotonicRegression  # imported here: every `xfv` command loads this module

        model = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit(d, same.astype(np.float64))
        self.x_ = np.asarray(model.X_thresholds_, dtype=np.float64)
        self.y_ = np.asarray(model.y_thresholds_, dtype=np.float64)

    def predict_proba_same(self, distances: np.ndarray | float) -> np.ndarray:
        self._check_fitted()
        return np.interp(np.asarray(distances, dtype=np.float64), self.x_, self.y_)

    def _parameters(self) -> dict[str, Any]:
        return {"x": self.x_.tolist(), "y": self.y_.tolist()}

    def _set_parameters(self, parameters: dict[str, Any]) -> None:
        self.x_ = np.asarray(parameters["x"], dtype=np.float64)
        self.y_ = np.asarray(parameters["y"], dtype=np.float64)
        if self.x_.ndim != 1 or self.x_.shape != self.y_.shape or len(self.x_) == 0:
            raise ValueError("isotonic x and y must be non-empty lists of one length")


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions, one entry per pair, and the calibrator that scored each fold (a
    calibrator fitted on another benchmark scores all pairs as one fold)."""

    proba_same: np.ndarray
    confidence: np.ndarray
    predicted_same: np.ndarray
    fold_ids: np.ndarray
    calibrators: tuple[Calibrator, ...]


def fit_calibrator(
    calibrator: Calibrator,
    distances: np.ndarray,
    labels: np.ndarray,
    threshold: float | None = None,
    quality: np.ndarray | None = None,
    **described: str,
) -> Calibrator:
    """``calibrator.fit``, giving a quality-aware calibrator the pairs' ``quality`` as well."""
    if isinstance(calibrator, QualityAwareCalibrator):
        return calibrator.fit(distances, labels, threshold, quality=quality, **described)
    return calibrator.fit(distances, labels, threshold, **described)


def predict(
    calibrator: Calibrator, distances: np.ndarray, quality: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(genuine), confidence and decision of each pair (quality-aware calibrators get ``quality``)."""
    if isinstance(calibrator, QualityAwareCalibrator):
        proba, confidence = (
            calibrator.predict_proba_same(distances, quality),
            calibrator.predict_confidence(distances, quality),
        )
    else:
        proba, confidence = calibrator.predict_proba_same(distances), calibrator.predict_confidence(distances)
    return proba, confidence, calibrator.predict_same(distances)


def out_of_fold_confidence(
    calibrator_factory: Callable[[], Calibrator],
    distances: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    thresholds: Sequence[float] | np.ndarray | None = None,
    quality: np.ndarray | None = None,
) -> OutOfFold:
    """Score each fold with a calibrator fitted on all other folds, with that fold's threshold.

    ``thresholds`` holds one threshold per fold in the order of ``np.unique(folds)``; with None each
    calibrator uses the best threshold on its own training folds (the usual 10-fold protocol).
    ``quality`` (one per pair) is given to quality-aware calibrators, for fitting and scoring.
    """
    d, same = check_pairs(distances, labels)
    quality = None if quality is None else check_quality(quality, d)
    folds = np.asarray(folds)
    fold_ids = np.unique(folds)
    if folds.shape != d.shape or len(fold_ids) < 2:
        raise CalibrationError(f"need one fold id per pair and at least two folds, got {len(fold_ids)} fold(s)")
    if thresholds is not None and len(thresholds) != len(fold_ids):
        raise CalibrationError(f"need one threshold per fold ({len(fold_ids)}), got {len(thresholds)}")
    proba, confidence, decision = np.empty_like(d), np.empty_like(d), np.empty_like(same)
    calibrators = []
    for index, fold in enumerate(fold_ids):
        test = folds == fold
        threshold = None if thresholds is None else float(thresholds[index])
        train_quality, test_quality = (None, None) if quality is None else (quality[~test], quality[test])
        calibrator = fit_calibrator(calibrator_factory(), d[~test], same[~test], threshold, train_quality)
        proba[test], confidence[test], decision[test] = predict(calibrator, d[test], test_quality)
        calibrators.append(calibrator)
    return OutOfFold(proba, confidence, decision, fold_ids, tuple(calibrators))
