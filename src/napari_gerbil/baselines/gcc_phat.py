"""GCC-PHAT: pairwise TDOAs with sub-sample peaks, then least-squares multilateration."""

from __future__ import annotations

import numpy as np

from napari_gerbil.baselines.geometry import FloorGrid, mic_pairs

#: Cell size of the coarse grid search that starts the Gauss-Newton refinement.
INIT_GRID_MM = 5.0
#: Gauss-Newton iterations of the multilateration.
N_ITERATIONS = 10


def peak_tdoas_s(
    xc: np.ndarray,
    mic_positions_mm: np.ndarray,
    c_m_s: float,
    lag_step_s: float,
    half_window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """TDOA of each pair at its correlation peak, refined by a 3-point parabola.

    Only physically possible lags (|tau| <= mic separation / c) are searched.

    Returns
    -------
    tdoa_s
        (B, P) time differences ``t_i - t_j``.
    peak
        (B, P) correlation value at the peak.
    """
    pairs = mic_pairs(mic_positions_mm.shape[0])
    sep_m = np.linalg.norm(mic_positions_mm[pairs[:, 0]] - mic_positions_mm[pairs[:, 1]], axis=1)
    limit = np.minimum(np.ceil(sep_m / 1000.0 / c_m_s / lag_step_s) + 1, half_window)
    lags = np.arange(xc.shape[-1]) - half_window
    allowed = np.abs(lags)[None, :] <= limit[:, None]  # (P, L)
    masked = np.where(allowed[None], xc, -np.inf)
    k = np.argmax(masked, axis=-1)  # (B, P)
    k_lo = np.clip(k - 1, 0, xc.shape[-1] - 1)
    k_hi = np.clip(k + 1, 0, xc.shape[-1] - 1)
    y0 = np.take_along_axis(xc, k_lo[..., None], -1)[..., 0]
    y1 = np.take_along_axis(xc, k[..., None], -1)[..., 0]
    y2 = np.take_along_axis(xc, k_hi[..., None], -1)[..., 0]
    denom = y0 - 2 * y1 + y2
    shift = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    return (k - half_window + shift) * lag_step_s, y1


def multilaterate_mm(
    tdoa: np.ndarray,
    mic_positions_mm: np.ndarray,
    grid: FloorGrid,
    c_m_s: float,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares source position on the plane ``z = grid.z_mm`` from pairwise TDOAs.

    Minimizes ``sum_p w_p (|r - m_i| - |r - m_j| - c * tdoa_p)^2`` over r = (x, y):
    a coarse grid search (``INIT_GRID_MM``) gives the start, Gauss-Newton refines it;
    the result is kept inside the arena.

    Returns
    -------
    points_mm
        (B, 2) positions.
    rms_residual_mm
        (B,) root-mean-square range-difference residual.
    """
    pairs = mic_pairs(mic_positions_mm.shape[0])
    target_mm = tdoa * c_m_s * 1000.0  # (B, P)
    w = np.ones_like(target_mm) if weights is None else weights
    half = np.asarray(grid.extent_mm) / 2
    coarse = FloorGrid.from_arena(grid.extent_mm, min(INIT_GRID_MM, float(half.min())), grid.z_mm)
    pts = coarse.points_mm()
    dist = np.linalg.norm(pts[:, None, :] - mic_positions_mm[None], axis=-1)
    ddiff = dist[:, pairs[:, 0]] - dist[:, pairs[:, 1]]  # (G, P)
    cost = (w[:, None, :] * (ddiff[None] - target_mm[:, None, :]) ** 2).sum(-1)  # (B, G)
    r = pts[np.argmin(cost, axis=1), :2].copy()
    mics_xy = mic_positions_mm[:, :2]
    dz2 = (grid.z_mm - mic_positions_mm[:, 2]) ** 2
    sqrt_w = np.sqrt(w)
    for _ in range(N_ITERATIONS):
        delta = r[:, None, :] - mics_xy[None]  # (B, C, 2)
        d = np.sqrt((delta**2).sum(-1) + dz2[None])  # (B, C)
        unit = delta / np.maximum(d, 1e-9)[..., None]
        resid = (d[:, pairs[:, 0]] - d[:, pairs[:, 1]] - target_mm) * sqrt_w  # (B, P)
        jac = (unit[:, pairs[:, 0]] - unit[:, pairs[:, 1]]) * sqrt_w[..., None]  # (B, P, 2)
        jtj = jac.transpose(0, 2, 1) @ jac + 1e-6 * np.eye(2)
        jtr = (jac.transpose(0, 2, 1) @ resid[..., None])[..., 0]
        r = r - np.linalg.solve(jtj, jtr[..., None])[..., 0]
        r = np.clip(r, -half, half)
    delta = r[:, None, :] - mics_xy[None]
    d = np.sqrt((delta**2).sum(-1) + dz2[None])
    resid = d[:, pairs[:, 0]] - d[:, pairs[:, 1]] - target_mm
    return r, np.sqrt((resid**2).mean(axis=1))
