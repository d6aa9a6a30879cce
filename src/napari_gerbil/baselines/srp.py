"""Steered response power on a floor grid: MUSE (no PHAT) and SRP-PHAT, with jackknife."""

from __future__ import annotations

import numpy as np

from napari_gerbil.baselines.geometry import FloorGrid, lag_index_table


def srp_maps(
    xc: np.ndarray,
    pairs: np.ndarray,
    lag_table: np.ndarray,
    n_mics: int,
    jackknife: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Reduced steered response power (sum over mic pairs, no auto terms) per grid point.

    Parameters
    ----------
    xc
        (B, P, L) pairwise correlations on a lag window.
    pairs
        (P, 2) mic pairs.
    lag_table
        (P, G) index of each grid point's TDOA into the lag window.
    n_mics
        Number of microphones.
    jackknife
        Also return the maps with each microphone left out.

    Returns
    -------
    total
        (B, G) power with all pairs.
    leave_one_out
        (n_mics, B, G) power without the pairs of mic k, or None.
    """
    n_batch = xc.shape[0]
    n_points = lag_table.shape[1]
    total = np.zeros((n_batch, n_points), dtype=np.float32)
    per_mic = np.zeros((n_mics, n_batch, n_points), dtype=np.float32) if jackknife else None
    for p, (i, j) in enumerate(pairs):
        values = np.take(xc[:, p], lag_table[p], axis=1)
        total += values
        if per_mic is not None:
            per_mic[i] += values
            per_mic[j] += values
    if per_mic is None:
        return total, None
    return total, total[None] - per_mic


def refined_peaks_mm(maps: np.ndarray, grid: FloorGrid) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max of each flat map, refined by a 3-point parabola along x and y.

    Parameters
    ----------
    maps
        (..., G) flat maps in the grid's row-major (y, x) order.
    grid
        The grid the maps live on.

    Returns
    -------
    points_mm
        (..., 2) peak positions (x, y).
    peak_values
        (...,) map value at the peak cell.
    """
    ny, nx = grid.shape
    flat = maps.reshape(-1, ny * nx)
    best = np.argmax(flat, axis=1)
    iy, ix = np.divmod(best, nx)
    rows = np.arange(flat.shape[0])
    peak = flat[rows, best]
    offsets = []
    for index, n, stride in ((ix, nx, 1), (iy, ny, nx)):
        ok = (index > 0) & (index < n - 1)
        lo = flat[rows, np.where(ok, best - stride, best)]
        hi = flat[rows, np.where(ok, best + stride, best)]
        denom = lo - 2 * peak + hi
        shift = np.where(ok & (denom < 0), 0.5 * (lo - hi) / np.where(denom < 0, denom, -1), 0.0)
        offsets.append(np.clip(shift, -0.5, 0.5))
    step_x = grid.x_mm[1] - grid.x_mm[0] if nx > 1 else 0.0
    step_y = grid.y_mm[1] - grid.y_mm[0] if ny > 1 else 0.0
    x = grid.x_mm[ix] + offsets[0] * step_x
    y = grid.y_mm[iy] + offsets[1] * step_y
    shape = maps.shape[:-1]
    return np.stack([x, y], axis=-1).reshape(*shape, 2), peak.reshape(shape)


def localize_srp(
    xc: np.ndarray,
    pairs: np.ndarray,
    mic_positions_mm: np.ndarray,
    grid: FloorGrid,
    c_m_s: float,
    lag_step_s: float,
    half_window: int,
    jackknife: bool,
    keep_maps: bool,
) -> dict:
    """Locate each call at the maximum of its steered response power map.

    With ``jackknife`` the estimate is the mean of the leave-one-microphone-out peaks
    (their spread is returned too). Maps, when kept, are min-max normalized to [0, 1].
    """
    table = lag_index_table(grid, mic_positions_mm, c_m_s, lag_step_s, half_window)
    total, loo = srp_maps(xc, pairs, table, mic_positions_mm.shape[0], jackknife)
    point, peak = refined_peaks_mm(total, grid)
    out = {"point_mm": point, "peak_power": peak / len(pairs), "jackknife_points_mm": None}
    if loo is not None:
        loo_points, _ = refined_peaks_mm(loo, grid)  # (n_mics, B, 2)
        loo_points = np.swapaxes(loo_points, 0, 1)  # (B, n_mics, 2)
        out["jackknife_points_mm"] = loo_points
        out["point_mm"] = loo_points.mean(axis=1)
    if keep_maps:
        lo = total.min(axis=1, keepdims=True)
        hi = total.max(axis=1, keepdims=True)
        maps = (total - lo) / np.where(hi > lo, hi - lo, 1.0)
        out["power_maps"] = maps.reshape(total.shape[0], *grid.shape)
    return out
