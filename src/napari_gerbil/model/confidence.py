"""Highest-density confidence sets of a Gaussian mixture on a grid over the arena.

The p-set is the smallest set of grid cells holding at least ``p`` of the mixture's
mass inside the arena: cells sorted by density, accumulated until the sum reaches
``p``, **including** the cell whose mass crosses ``p`` (dropping it, as vocalocator
does, under-covers). The density is renormalized over the arena (the source is known
to be in it). The set is returned as polygons (contour lines of the density at the
threshold; several disjoint pieces possible), its area (cells x cell area, mm^2) and
a membership test (a point is in the set iff it lies in the arena and the mixture
density there is at least the threshold density).

Grid: the region is the arena clipped to the members' means +- 6 standard
deviations (mass outside < 1e-8); the cell size is the smallest member standard
deviation / ``CELLS_PER_SD``, at most ``resolution_mm`` and at least region /
``MAX_CELLS_PER_AXIS`` (then shrunk a little so whole cells tile the region). The
defaults were chosen with ``scripts/bench_models.py`` (area error vs a 4x finer grid,
and time per call).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import contourpy
import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.mixture import MixturePrediction

#: Largest grid cell, mm.
DEFAULT_RESOLUTION_MM = 2.0
#: Cells per smallest member standard deviation.
CELLS_PER_SD = 3.0
#: Upper bound on cells along each axis.
MAX_CELLS_PER_AXIS = 400
#: Half-width of the grid region around the members, in standard deviations.
REGION_SDS = 6.0


@dataclass
class DensityGrid:
    """A mixture's density on a regular grid of cell centres (one call)."""

    lo_mm: np.ndarray  # (2,) lower corner of the region (x, y)
    hi_mm: np.ndarray  # (2,) upper corner
    log_density: np.ndarray  # (ny, nx) at the cell centres, 1/mm^2, not renormalized
    mass: np.ndarray  # (ny, nx), renormalized to sum 1 over the grid

    @property
    def cell_mm(self) -> np.ndarray:
        """(2,) cell size along x and y."""
        ny, nx = self.log_density.shape
        return (self.hi_mm - self.lo_mm) / np.array([nx, ny])

    @property
    def cell_area_mm2(self) -> float:
        """Area of one grid cell (mm^2)."""
        return float(np.prod(self.cell_mm))

    def centres_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres along x (nx,) and y (ny,)."""
        ny, nx = self.log_density.shape
        cx, cy = self.cell_mm
        return (
            self.lo_mm[0] + cx * (np.arange(nx) + 0.5),
            self.lo_mm[1] + cy * (np.arange(ny) + 0.5),
        )


def _arena_half(arena_dims_mm) -> np.ndarray:
    dims = np.asarray(arena_dims_mm, dtype=float).ravel()
    if dims.size < 2 or np.any(~np.isfinite(dims[:2])) or np.any(dims[:2] <= 0):
        raise InvalidInputError(
            None, "arena_dims_mm", "(length, width[, height]) > 0", repr(dims.tolist())
        )
    return dims[:2] / 2


def density_grid(
    prediction: MixturePrediction,
    arena_dims_mm,
    resolution_mm: float = DEFAULT_RESOLUTION_MM,
) -> DensityGrid:
    """Evaluate the mixture of the single call in ``prediction`` on its grid."""
    if prediction.n_calls != 1:
        raise InvalidInputError(None, "prediction", "one call", f"{prediction.n_calls} calls")
    half = _arena_half(arena_dims_mm)
    means = prediction.means_mm[0]
    chol = prediction.chol_mm[0]
    sd = np.sqrt((chol**2).sum(axis=-1))  # (M, 2): marginal standard deviations
    lo = np.maximum(-half, (means - REGION_SDS * sd).min(axis=0))
    hi = np.minimum(half, (means + REGION_SDS * sd).max(axis=0))
    if np.any(hi - lo <= 0):  # all members outside the arena: use the whole arena
        lo, hi = -half, half
    extent = float((hi - lo).max())
    cell = min(resolution_mm, sd.min() / CELLS_PER_SD)
    cell = max(cell, extent / MAX_CELLS_PER_AXIS)
    nx, ny = np.maximum(1, np.ceil((hi - lo) / cell - 1e-9)).astype(int).tolist()
    grid = DensityGrid(lo, hi, np.empty((ny, nx)), np.empty((ny, nx)))
    gx, gy = np.meshgrid(*grid.centres_mm())
    pts = np.stack([gx.ravel(), gy.ravel()], axis=-1)
    grid.log_density = prediction.log_density(pts)[0].reshape(ny, nx)
    w = np.exp(grid.log_density - grid.log_density.max())
    grid.mass = w / w.sum()
    return grid


def _threshold(grid: DensityGrid, mass: float) -> tuple[float, int]:
    """Log-density threshold of the p-set and its number of cells (crossing cell included)."""
    order = np.argsort(grid.log_density, axis=None)[::-1]
    cum = np.cumsum(grid.mass.ravel()[order])
    k = min(int(np.searchsorted(cum, mass * cum[-1] - 1e-12, side="left")), order.size - 1)
    return float(grid.log_density.ravel()[order[k]]), k + 1


@dataclass
class ConfidenceSet:
    """Highest-density set holding at least ``mass`` of one call's mixture.

    Attributes
    ----------
    mass
        Nominal probability p.
    area_mm2
        Area of the set (number of grid cells x cell area).
    log_threshold
        Log density (1/mm^2) at the set's boundary.
    """

    mass: float
    area_mm2: float
    log_threshold: float
    grid: DensityGrid = field(repr=False)
    prediction: MixturePrediction = field(repr=False)
    arena_dims_mm: np.ndarray = field(repr=False)
    _polygons: list[np.ndarray] | None = field(default=None, repr=False)

    def contains(self, points_mm) -> np.ndarray:
        """Whether each point (K, 2) mm lies in the set: (K,) bool."""
        pts = np.asarray(points_mm, dtype=float).reshape(-1, 2)
        half = _arena_half(self.arena_dims_mm)
        inside = np.all(np.abs(pts) <= half, axis=-1) & np.all(np.isfinite(pts), axis=-1)
        out = np.zeros(len(pts), dtype=bool)
        if inside.any():
            log_d = self.prediction.log_density(pts[inside])[0]
            out[inside] = log_d >= self.log_threshold
        return out

    @property
    def polygons_mm(self) -> list[np.ndarray]:
        """Closed boundary polygons, each (K, 2) (x, y) mm; possibly several pieces."""
        if self._polygons is None:
            self._polygons = _contours(self.grid, self.log_threshold)
        return self._polygons


def _contours(grid: DensityGrid, log_threshold: float) -> list[np.ndarray]:
    """Contour lines of the grid density at the threshold, closed along the grid edges."""
    cx, cy = grid.centres_mm()
    xs = np.concatenate([[grid.lo_mm[0]], cx, [grid.hi_mm[0]]])
    ys = np.concatenate([[grid.lo_mm[1]], cy, [grid.hi_mm[1]]])
    # Pad with a value just below the threshold placed on the region's edge, so that a
    # set cut by an arena wall is closed along the wall.
    z = np.full((len(ys), len(xs)), log_threshold - 1e-9)
    z[1:-1, 1:-1] = np.maximum(grid.log_density, log_threshold - 50.0)
    gen = contourpy.contour_generator(xs, ys, z, line_type=contourpy.LineType.Separate)
    lines = gen.lines(log_threshold)
    return [np.asarray(line, dtype=float) for line in lines if len(line) >= 3]


def confidence_sets(
    prediction: MixturePrediction,
    arena_dims_mm,
    mass: float = 0.95,
    resolution_mm: float = DEFAULT_RESOLUTION_MM,
) -> list[ConfidenceSet]:
    """The ``mass`` highest-density set of every call in ``prediction``."""
    if not 0.0 < mass <= 1.0:
        raise InvalidInputError(None, "mass", "a probability in (0, 1]", repr(mass))
    dims = np.asarray(arena_dims_mm, dtype=float)
    out = []
    for i in range(prediction.n_calls):
        call = prediction[i]
        grid = density_grid(call, dims, resolution_mm)
        log_t, n_cells = _threshold(grid, mass)
        out.append(ConfidenceSet(mass, n_cells * grid.cell_area_mm2, log_t, grid, call, dims))
    return out


def confidence_set(
    means_mm,
    chol_mm,
    arena_dims_mm,
    mass: float = 0.95,
    resolution_mm: float = DEFAULT_RESOLUTION_MM,
) -> ConfidenceSet:
    """The ``mass`` highest-density set of one mixture: means (M, 2), Cholesky (M, 2, 2)."""
    pred = MixturePrediction(np.asarray(means_mm)[None], np.asarray(chol_mm)[None])
    return confidence_sets(pred, arena_dims_mm, mass, resolution_mm)[0]


def hdr_levels(
    prediction: MixturePrediction,
    points_mm,
    arena_dims_mm,
    resolution_mm: float = DEFAULT_RESOLUTION_MM,
) -> np.ndarray:
    """Smallest p whose p-set contains each call's point: (B,) in [0, 1].

    ``points_mm`` is (B, 2). The point lies in the p-set iff its level is <= p, so
    the observed coverage at nominal p is ``mean(levels <= p)``. Points outside the
    arena get level 1.
    """
    pts = np.asarray(points_mm, dtype=float).reshape(-1, 2)
    if len(pts) != prediction.n_calls:
        raise InvalidInputError(
            None, "points_mm", f"({prediction.n_calls}, 2)", str(np.shape(points_mm))
        )
    levels = np.ones(len(pts))
    for i in range(prediction.n_calls):
        call = prediction[i]
        levels[i] = grid_level(density_grid(call, arena_dims_mm, resolution_mm), call, pts[i])
    return levels


def grid_level(grid: DensityGrid, call: MixturePrediction, point_mm) -> float:
    """Smallest p whose p-set (on ``grid`` of the one-call ``call``) holds ``point_mm``."""
    pt = np.asarray(point_mm, dtype=float).reshape(1, 2)
    half = (grid.hi_mm - grid.lo_mm) / 2
    centre = (grid.hi_mm + grid.lo_mm) / 2
    log_p = call.log_density(pt)[0, 0]
    # outside the arena or far outside the grid region: never covered
    if not np.isfinite(log_p) or np.any(np.abs(pt[0] - centre) > half + 1e-9):
        return 1.0
    # Mass of the cells denser than the point (the set just reaching it).
    return min(1.0, float(grid.mass[grid.log_density > log_p].sum()))
