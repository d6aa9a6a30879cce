"""Geometry shared by the classical baselines: speed of sound, floor grid, TDOA tables."""

from __future__ import annotations

import dataclasses
import itertools
from collections import OrderedDict

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.physics import DEFAULT_TEMPERATURE_C, speed_of_sound_m_s  # noqa: F401 (shared)


def check_arena_dims(arena_dims_mm) -> np.ndarray:
    """Validate arena dimensions (length, width[, height]) in mm; return them as floats."""
    dims = np.asarray(arena_dims_mm, dtype=float).ravel()
    if dims.size not in (2, 3) or not np.all(np.isfinite(dims)) or np.any(dims <= 0):
        raise InvalidInputError(
            None, "arena_dims_mm", "2 or 3 positive lengths in mm", repr(arena_dims_mm)
        )
    return dims


def check_mic_positions(mic_positions_mm, n_channels: int | None = None) -> np.ndarray:
    """Validate microphone positions, shape (n_mics, 3) mm in the arena frame."""
    mics = np.asarray(mic_positions_mm, dtype=float)
    if mics.ndim != 2 or mics.shape[1] != 3 or mics.shape[0] < 2:
        raise InvalidInputError(
            None, "mic_positions_mm", "an array of shape (n_mics >= 2, 3)", f"shape {mics.shape}"
        )
    if not np.all(np.isfinite(mics)):
        raise InvalidInputError(None, "mic_positions_mm", "finite values", "NaN or inf")
    if n_channels is not None and mics.shape[0] != n_channels:
        raise InvalidInputError(
            None,
            "mic_positions_mm",
            f"one position per audio channel ({n_channels})",
            f"{mics.shape[0]} positions",
        )
    return mics


def mic_pairs(n_mics: int) -> np.ndarray:
    """All unordered microphone pairs (i < j), shape (n_pairs, 2)."""
    return np.array(list(itertools.combinations(range(n_mics), 2)), dtype=np.intp)


@dataclasses.dataclass(frozen=True)
class FloorGrid:
    """Cell centres of a regular grid over the arena floor at a fixed height.

    Attributes
    ----------
    x_mm, y_mm
        Cell-centre coordinates, shapes (nx,) and (ny,), arena frame.
    z_mm
        Height of the grid (the assumed source height).
    resolution_mm
        Requested cell size.
    extent_mm
        (length, width) covered by the grid, centred on the origin.
    """

    x_mm: np.ndarray
    y_mm: np.ndarray
    z_mm: float
    resolution_mm: float
    extent_mm: tuple[float, float]

    @classmethod
    def from_arena(cls, arena_dims_mm, resolution_mm: float = 1.0, z_mm: float = 0.0) -> FloorGrid:
        """Grid covering ``[-L/2, L/2] x [-W/2, W/2]`` with cells of ``resolution_mm``."""
        dims = check_arena_dims(arena_dims_mm)
        res = float(resolution_mm)
        if not np.isfinite(res) or res <= 0 or res > min(dims[:2]):
            raise InvalidInputError(
                None,
                "resolution_mm",
                f"a positive cell size below the arena width ({min(dims[:2])} mm)",
                repr(resolution_mm),
            )
        axes = []
        for length in dims[:2]:
            n = max(1, int(round(length / res)))
            step = length / n
            axes.append(-length / 2 + step * (np.arange(n) + 0.5))
        return cls(
            x_mm=axes[0],
            y_mm=axes[1],
            z_mm=float(z_mm),
            resolution_mm=res,
            extent_mm=(float(dims[0]), float(dims[1])),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx): maps are stored row = y, column = x."""
        return (self.y_mm.size, self.x_mm.size)

    @property
    def cell_area_mm2(self) -> float:
        """Area of one cell."""
        return self.extent_mm[0] * self.extent_mm[1] / (self.x_mm.size * self.y_mm.size)

    def points_mm(self) -> np.ndarray:
        """All cell centres as (ny * nx, 3) in row-major (y, x) order."""
        yy, xx = np.meshgrid(self.y_mm, self.x_mm, indexing="ij")
        zz = np.full(xx.size, self.z_mm)
        return np.stack([xx.ravel(), yy.ravel(), zz], axis=1)

    def key(self) -> tuple:
        """Hashable identity of the grid (for caches)."""
        return (self.x_mm.tobytes(), self.y_mm.tobytes(), self.z_mm)


def tdoa_s(points_mm: np.ndarray, mic_positions_mm: np.ndarray, c_m_s: float) -> np.ndarray:
    """Time difference of arrival ``(|p - m_i| - |p - m_j|) / c`` per pair, (n_points, n_pairs).

    Positive when the sound reaches mic ``i`` after mic ``j``.
    """
    pairs = mic_pairs(mic_positions_mm.shape[0])
    dist_m = np.linalg.norm(points_mm[:, None, :] - mic_positions_mm[None], axis=-1) / 1000.0
    return (dist_m[:, pairs[:, 0]] - dist_m[:, pairs[:, 1]]) / c_m_s


def max_tdoa_s(mic_positions_mm: np.ndarray, c_m_s: float) -> float:
    """Largest physically possible |TDOA| over all pairs (the longest mic separation / c)."""
    pairs = mic_pairs(mic_positions_mm.shape[0])
    d = np.linalg.norm(mic_positions_mm[pairs[:, 0]] - mic_positions_mm[pairs[:, 1]], axis=1)
    return float(d.max()) / 1000.0 / c_m_s


_LAG_TABLES: OrderedDict = OrderedDict()
_LAG_TABLE_CACHE_SIZE = 8


def lag_index_table(
    grid: FloorGrid,
    mic_positions_mm: np.ndarray,
    c_m_s: float,
    lag_step_s: float,
    half_window: int,
) -> np.ndarray:
    """Index of each grid point's TDOA into a lag window, shape (n_pairs, n_points) int32.

    The window holds lags ``(k - half_window) * lag_step_s`` for ``k = 0 .. 2*half_window``;
    each TDOA is rounded to the nearest lag (error <= lag_step_s / 2). Tables are cached,
    so the grid's lookup is computed once per geometry.
    """
    key = (grid.key(), mic_positions_mm.tobytes(), c_m_s, lag_step_s, half_window)
    table = _LAG_TABLES.get(key)
    if table is not None:
        _LAG_TABLES.move_to_end(key)
        return table
    tau = tdoa_s(grid.points_mm(), mic_positions_mm, c_m_s).T  # (n_pairs, n_points)
    idx = np.rint(tau / lag_step_s).astype(np.int64) + half_window
    table = np.clip(idx, 0, 2 * half_window).astype(np.int32)
    _LAG_TABLES[key] = table
    while len(_LAG_TABLES) > _LAG_TABLE_CACHE_SIZE:
        _LAG_TABLES.popitem(last=False)
    return table
