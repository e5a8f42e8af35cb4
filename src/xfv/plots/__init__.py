"""Figures, apart from the maths, scikit-learn style: a ``*Display`` computes what it draws once
(``from_...`` class methods), draws on the ``ax`` it is given (or a new figure) and returns itself,
with ``ax_`` and ``figure_`` set. Nothing here writes files; callers save ``display.figure_``."""

from xfv.plots.calibration import CScoreFitDisplay, ReliabilityDisplay, RiskCoverageDisplay
from xfv.plots.xmaps import XMapDisplay

__all__ = ["CScoreFitDisplay", "ReliabilityDisplay", "RiskCoverageDisplay", "XMapDisplay"]
