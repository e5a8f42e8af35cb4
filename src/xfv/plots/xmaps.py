"""The X-Map figure of an explained pair: both faces and, per method, their X-Maps, with a colour bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from xfv.method.xmaps import XMAP_METHODS

if TYPE_CHECKING:
    from xfv.pipeline.explain import Explanation, Style


@dataclass
class XMapDisplay:
    """Columns of pictures, two rows (face 1 above face 2): the faces, then one column per method."""

    columns: list[tuple[str, np.ndarray, np.ndarray]]
    title: str = ""
    colourmap: str = "PiYG"

    @classmethod
    def from_explanation(
        cls, explanation: Explanation, style: Style = "blend", axes: np.ndarray | None = None
    ) -> XMapDisplay:
        """The figure of an :class:`~xfv.pipeline.explain.Explanation`, titled with its decision and C-Score."""
        columns = [("face", explanation.aligned1, explanation.aligned2)]
        for method in sorted(explanation.maps):
            name = f"X-Map method {XMAP_METHODS[method].roman}"
            columns.append((name, explanation.image(method, 1, style), explanation.image(method, 2, style)))
        return cls(columns, explanation.title(), explanation.colourmap).plot(axes)

    def plot(self, axes: np.ndarray | None = None) -> XMapDisplay:
        """Draw on ``axes`` (2 rows x one column per picture column), or on a new figure."""
        if axes is None:
            figure = Figure(figsize=(2.4 * len(self.columns) + 1, 5.2))
            axes = figure.subplots(2, len(self.columns), squeeze=False)
        axes = np.asarray(axes).reshape(2, len(self.columns))
        for column, (name, image1, image2) in enumerate(self.columns):
            for row, image in enumerate((image1, image2)):
                axes[row, column].imshow(image)
                axes[row, column].set_axis_off()
            axes[0, column].set_title(name, fontsize=9)
        figure = axes[0, 0].get_figure()
        colourbar = figure.colorbar(
            ScalarMappable(Normalize(-1, 1), self.colourmap),
            ax=list(axes.ravel()),
            fraction=0.03,
            ticks=[-1, 0, 1],
            label="dissimilar - similar",
        )
        colourbar.ax.tick_params(labelsize=8)
        figure.suptitle(self.title, fontsize=10)
        self.axes_, self.figure_ = axes, figure
        return self


__all__ = ["XMapDisplay"]
