"""Systematic image occlusion (paper Algorithm 1): which patches to draw and how to draw them.

Patch sizes, positions and stride are defined on a 112x112 reference face, as in the paper, and
scaled to the model's input size s (scale = s / 112; positions and sizes rounded half up), so the
number of occlusions N does not depend on the model: 441 + 400 + 289 = 1130 for the defaults.

Positions follow the authors' reference code, ``range(0, 112 - p, stride)`` on each axis (the
paper's formula floor((112 - p) / stride)^2 differs slightly). Our patches are exactly p x p
pixels; the reference draws an inclusive OpenCV rectangle, i.e. (p + 1) x (p + 1) pixels.

A patch is a small "stamp" (its mask, 1 = occluded, soft at the edges if edge blur is on) placed
at one origin per occlusion. Occluded images are built lazily, a range at a time, and maps are
accumulated from the stamps, so no (N, s, s) array is ever needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from xfv.errors import XfvError

#: Side of the face the paper's patch sizes and stride refer to.
REFERENCE_SIZE = 112
#: Pixel value of each solid fill; "noise" draws uniform noise per occlusion instead.
FILL_VALUES = {"black": 0, "gray": 128, "white": 255}
FILLS = (*FILL_VALUES, "noise")
SHAPES = ("rect", "circle")


def round_half_up(value: float | np.ndarray) -> np.ndarray:
    """Round .5 away from zero for positive values (Python's round() rounds half to even)."""
    return np.floor(np.asarray(value, dtype=np.float64) + 0.5).astype(np.int64)


def _odd(value: int) -> int:
    """The smallest odd integer >= value (OpenCV's Gaussian kernels must be odd)."""
    return value if value % 2 else value + 1


@dataclass(frozen=True)
class OcclusionSettings:
    """How faces are occluded; sizes in pixels of the 112x112 reference face.

    ``edge_blur_sigma`` > 0 blurs the patch edges with a Gaussian of that sigma (paper 4.4 uses
    kernel = sigma in {7, 14, 56}); ``edge_blur_kernel`` 0 lets OpenCV derive the kernel from
    sigma, an even kernel is rounded up to odd. ``noise_seed`` seeds the "noise" fill.
    """

    patch_sizes: tuple[int, ...] = (7, 14, 28)
    stride: int = 5
    fill: str = "black"
    shape: str = "rect"
    edge_blur_sigma: float = 0.0
    edge_blur_kernel: int = 0
    noise_seed: int = 0
    reference_size: int = REFERENCE_SIZE

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_sizes", tuple(int(p) for p in self.patch_sizes))
        self._validate()

    def _validate(self) -> None:
        if not self.patch_sizes:
            raise XfvError("occlusion needs at least one patch size")
        if len(set(self.patch_sizes)) != len(self.patch_sizes):
            raise XfvError(f"patch sizes must be distinct, got {list(self.patch_sizes)}")
        for size in self.patch_sizes:
            if not 1 <= size < self.reference_size:
                raise XfvError(
                    f"patch size {size} does not fit the {self.reference_size}x{self.reference_size} reference "
                    f"face: use 1 to {self.reference_size - 1}"
                )
        if self.stride < 1:
            raise XfvError(f"stride must be a positive number of pixels, got {self.stride}")
        if self.fill not in FILLS:
            raise XfvError(f"unknown occlusion fill {self.fill!r}: use one of {', '.join(FILLS)}")
        if self.shape not in SHAPES:
            raise XfvError(f"unknown patch shape {self.shape!r}: use one of {', '.join(SHAPES)}")
        if self.edge_blur_sigma < 0 or self.edge_blur_kernel < 0:
            raise XfvError("edge blur sigma and kernel must not be negative")
        if self.edge_blur_kernel and not self.edge_blur_sigma:
            raise XfvError("an edge blur kernel needs an edge blur sigma > 0")

    def positions(self, patch_size: int) -> range:
        """Top-left coordinates of patches along one axis, on the reference face."""
        return range(0, self.reference_size - patch_size, self.stride)

    @property
    def count(self) -> int:
        """N, the number of occluded images per face over all patch sizes."""
        return sum(len(self.positions(p)) ** 2 for p in self.patch_sizes)

    def cache_key(self) -> str:
        """A stable string naming everything that changes the occluded images."""
        sizes = "-".join(str(p) for p in self.patch_sizes)
        key = f"occ1:ref{self.reference_size}:p{sizes}:s{self.stride}:{self.fill}:{self.shape}"
        if self.edge_blur_sigma:
            key += f":blur{self.edge_blur_sigma:g}k{self.edge_blur_kernel}"
        if self.fill == "noise":
            key += f":seed{self.noise_seed}"
        return key


@dataclass(frozen=True, eq=False)
class PatchGrid:
    """All occlusions of one patch size at one input size: a stamp and its origins.

    ``origins`` (n, 2) are the (y, x) pixels where the stamp's top-left corner goes; the stamp
    extends ``margin`` pixels beyond the patch on each side when edges are blurred.
    """

    patch_size: int
    size_px: int
    input_size: int
    origins: np.ndarray
    stamp: np.ndarray
    margin: int

    def __len__(self) -> int:
        return len(self.origins)

    def _window(self, index: int) -> tuple[slice, slice, slice, slice]:
        """Image rows/cols the stamp of occlusion ``index`` covers, and the matching stamp rows/cols."""
        y, x = self.origins[index]
        height, width = self.stamp.shape
        y0, x0 = max(y, 0), max(x, 0)
        y1, x1 = min(y + height, self.input_size), min(x + width, self.input_size)
        return slice(y0, y1), slice(x0, x1), slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)

    def box(self, index: int) -> tuple[int, int, int, int]:
        """Rows and columns (y0, y1, x0, x1, ends exclusive) of the image occlusion ``index`` can change."""
        rows, cols, _, _ = self._window(index)
        return rows.start, rows.stop, cols.start, cols.stop

    def mask(self, index: int) -> np.ndarray:
        """The (s, s) float32 mask M_i of occlusion ``index`` (1 = occluded)."""
        out = np.zeros((self.input_size, self.input_size), dtype=np.float32)
        rows, cols, stamp_rows, stamp_cols = self._window(index)
        out[rows, cols] = self.stamp[stamp_rows, stamp_cols]
        return out

    def accumulate(self, weights: np.ndarray) -> np.ndarray:
        """sum_i weights[i] * M_i as an (s, s) float64 map."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(self),):
            raise ValueError(f"expected {len(self)} weights, got shape {weights.shape}")
        out = np.zeros((self.input_size, self.input_size), dtype=np.float64)
        stamp = self.stamp.astype(np.float64)
        for index, weight in enumerate(weights):
            rows, cols, stamp_rows, stamp_cols = self._window(index)
            out[rows, cols] += weight * stamp[stamp_rows, stamp_cols]
        return out

    @cached_property
    def coverage(self) -> np.ndarray:
        """sum_i M_i: how much each pixel is occluded over all occlusions of this size."""
        return self.accumulate(np.ones(len(self)))

    def occlude(self, face: np.ndarray, index: int, out: np.ndarray, fill: np.ndarray | int) -> None:
        """Write ``face`` with occlusion ``index`` applied into ``out`` (fill: a value or a stamp-sized image)."""
        rows, cols, stamp_rows, stamp_cols = self._window(index)
        mask = self.stamp[stamp_rows, stamp_cols, None]
        patch = fill if isinstance(fill, int) else np.asarray(fill)[stamp_rows, stamp_cols]
        region = face[rows, cols].astype(np.float32)
        out[:] = face
        out[rows, cols] = np.rint(region * (1.0 - mask) + patch * mask).astype(np.uint8)


def _stamp(settings: OcclusionSettings, size_px: int, scale: float) -> tuple[np.ndarray, int]:
    """The patch mask (1 = occluded), padded and blurred when edges are blurred; and its margin."""
    if settings.shape == "rect":
        patch = np.ones((size_px, size_px), dtype=np.float32)
    else:
        centres = np.arange(size_px) + 0.5 - size_px / 2
        patch = (centres[:, None] ** 2 + centres[None, :] ** 2 <= (size_px / 2) ** 2).astype(np.float32)
    if not settings.edge_blur_sigma:
        return patch, 0
    sigma = settings.edge_blur_sigma * scale
    kernel = _odd(int(round_half_up(settings.edge_blur_kernel * scale))) if settings.edge_blur_kernel else 0
    # OpenCV's own kernel for float images when none is given: round(sigma * 8 + 1) | 1.
    margin = (kernel or (int(round_half_up(sigma * 8 + 1)) | 1)) // 2
    padded = cv2.copyMakeBorder(patch, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0)
    blurred = cv2.GaussianBlur(padded, (kernel, kernel), sigma, borderType=cv2.BORDER_CONSTANT)
    return blurred.astype(np.float32), margin


class OcclusionPlan:
    """The N occlusions of ``settings`` at a model's input size, in a fixed global order.

    Occlusions are numbered patch size by patch size (in ``settings.patch_sizes`` order), row by
    row within a size; ``segments`` gives each size's range of indices.
    """

    def __init__(self, settings: OcclusionSettings, input_size: int) -> None:
        if input_size < 1:
            raise XfvError(f"input size must be positive, got {input_size}")
        self.settings = settings
        self.input_size = input_size
        self.scale = input_size / settings.reference_size
        self.grids = tuple(self._grid(p) for p in settings.patch_sizes)
        starts = np.cumsum([0, *(len(grid) for grid in self.grids)])
        self.segments: dict[int, range] = {
            grid.patch_size: range(int(start), int(stop)) for grid, start, stop in zip(self.grids, starts, starts[1:])
        }

    def _grid(self, patch_size: int) -> PatchGrid:
        size_px = max(1, int(round_half_up(patch_size * self.scale)))
        stamp, margin = _stamp(self.settings, size_px, self.scale)
        axis = round_half_up(np.asarray(self.settings.positions(patch_size)) * self.scale) - margin
        ys, xs = np.meshgrid(axis, axis, indexing="ij")
        origins = np.stack([ys.ravel(), xs.ravel()], axis=1)
        return PatchGrid(patch_size, size_px, self.input_size, origins, stamp, margin)

    def __len__(self) -> int:
        return self.segments[self.grids[-1].patch_size].stop

    def grid(self, patch_size: int) -> PatchGrid:
        """The grid of one patch size (as given in the settings, reference pixels)."""
        return self.grids[self.settings.patch_sizes.index(patch_size)]

    def _locate(self, index: int) -> tuple[PatchGrid, int]:
        for grid in self.grids:
            segment = self.segments[grid.patch_size]
            if index in segment:
                return grid, index - segment.start
        raise IndexError(f"occlusion index {index} out of range 0..{len(self) - 1}")

    def _fill(self, grid: PatchGrid, index: int) -> np.ndarray | int:
        """The fill of occlusion ``index``: a constant, or stamp-sized noise seeded by (seed, index)."""
        if self.settings.fill != "noise":
            return FILL_VALUES[self.settings.fill]
        rng = np.random.default_rng((self.settings.noise_seed, index))
        return rng.integers(0, 256, (*grid.stamp.shape, 3)).astype(np.float32)

    def occluded(self, face: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Occluded copies of ``face`` for global indices ``start``..``stop - 1``, uint8 (n, s, s, 3)."""
        face = self._check_face(face)
        out = np.empty((stop - start, *face.shape), dtype=np.uint8)
        for offset, index in enumerate(range(start, stop)):
            grid, local = self._locate(index)
            grid.occlude(face, local, out[offset], self._fill(grid, index))
        return out

    def batches(self, face: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
        """All N occluded copies of ``face``, ``batch_size`` at a time, in global order."""
        for start in range(0, len(self), batch_size):
            yield self.occluded(face, start, min(start + batch_size, len(self)))

    def boxes(self, start: int, stop: int) -> np.ndarray:
        """(n, 4) int64 rows y0, y1, x0, x1 of the pixels occlusions ``start``..``stop - 1`` can change."""
        return np.array([grid.box(local) for grid, local in map(self._locate, range(start, stop))], dtype=np.int64)

    def masks(self, start: int, stop: int) -> np.ndarray:
        """Masks M_i (n, s, s) float32 for global indices ``start``..``stop - 1`` (for inspection and tests)."""
        out = np.empty((stop - start, self.input_size, self.input_size), dtype=np.float32)
        for offset, index in enumerate(range(start, stop)):
            grid, local = self._locate(index)
            out[offset] = grid.mask(local)
        return out

    def _check_face(self, face: np.ndarray) -> np.ndarray:
        face = np.asarray(face)
        size = self.input_size
        if face.shape != (size, size, 3) or face.dtype != np.uint8:
            raise XfvError(
                f"occlusion needs a uint8 RGB face of shape ({size}, {size}, 3), got {face.dtype} {face.shape}"
            )
        return face


__all__ = [
    "FILLS",
    "FILL_VALUES",
    "REFERENCE_SIZE",
    "SHAPES",
    "OcclusionPlan",
    "OcclusionSettings",
    "PatchGrid",
    "round_half_up",
]
