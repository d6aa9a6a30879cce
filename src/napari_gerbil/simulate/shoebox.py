"""The closed-form parts of a shoebox's acoustics.

Its image sources, the renderer's frequency bands and their filters, the diffuse
field's (Eyring) decay.

Used by :class:`~napari_gerbil.simulate.renderer.ImageSourceRenderer`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: Centres (Hz) of the renderer's frequency bands (hats in log frequency between them).
RENDER_BANDS_HZ = (
    500.0,
    1000.0,
    2000.0,
    4000.0,
    8000.0,
    16000.0,
    24000.0,
    32000.0,
    45000.0,
    62500.0,
)
#: Surface order of reflection counts: x = 0, x = L, y = 0, y = W, floor, ceiling.
SURFACE_ORDER = ("west", "east", "south", "north", "floor", "ceiling")


@functools.lru_cache(maxsize=8)
def image_table(max_order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All image sources of a shoebox up to ``max_order`` reflections.

    Along each axis an image sits at ``2 n L + s`` (parity 0: ``|n|`` hits on each of
    the two walls) or ``2 n L - s`` (parity 1: ``|n - 1|`` hits on the low wall,
    ``|n|`` on the high one). An image is one such choice per axis.

    Returns
    -------
    axis_table
        (n_axis, 2) float ``(n, sign)`` of each 1-D choice, sign +1 or -1 (mirrored).
    axis_index
        (n_images, 3) int row of ``axis_table`` used along x, y and z.
    hits
        (n_images, 6) reflections on each surface of :data:`SURFACE_ORDER`; rows sorted
        by total order (the direct path first).
    """
    n = np.arange(-max_order, max_order + 1)
    rows = []  # (n, parity, hits_low, hits_high)
    for p in (0, 1):
        low = np.abs(n) if p == 0 else np.abs(n - 1)
        rows.append(np.c_[n, np.full_like(n, p), low, np.abs(n)])
    axis = np.concatenate(rows)
    axis = axis[axis[:, 2] + axis[:, 3] <= max_order]
    order_1d = axis[:, 2] + axis[:, 3]
    ix, iy, iz = np.meshgrid(*(np.arange(len(axis)),) * 3, indexing="ij")
    total = order_1d[ix] + order_1d[iy] + order_1d[iz]
    keep = total <= max_order
    sort = np.argsort(total[keep], kind="stable")
    index = np.c_[ix[keep][sort], iy[keep][sort], iz[keep][sort]]
    hits = np.c_[axis[index[:, 0], 2:4], axis[index[:, 1], 2:4], axis[index[:, 2], 2:4]]
    axis_table = np.c_[axis[:, 0], 1.0 - 2.0 * axis[:, 1]].astype(float)
    return axis_table, index, hits


def interp_log(x_hz: np.ndarray, xp_hz: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation in log frequency, flat outside ``xp_hz``."""
    return np.interp(np.log(np.maximum(x_hz, 1.0)), np.log(xp_hz), fp)


def band_filters(freqs_hz: np.ndarray, centres_hz=RENDER_BANDS_HZ) -> np.ndarray:
    """(n_bands, n_freqs) hat filters in log frequency that sum to 1 at every frequency."""
    eye = np.eye(len(centres_hz))
    return np.stack([interp_log(freqs_hz, np.asarray(centres_hz), row) for row in eye])


def highpass_power(freqs_hz: np.ndarray, corner_hz: float, order: int = 4) -> np.ndarray:
    """|H|^2 of a Butterworth high-pass: the zero-phase (forward-backward) response."""
    if corner_hz <= 0:
        return np.ones_like(freqs_hz)
    ratio = np.maximum(freqs_hz, 1e-9) / corner_hz
    return ratio ** (2 * order) / (1.0 + ratio ** (2 * order))


def eyring_rate_per_s(dims_m: np.ndarray, alpha: np.ndarray, speed_m_s: float) -> np.ndarray:
    """(n_bands,) energy decay rate (1/s) of a diffuse field in a shoebox (Eyring).

    ``alpha`` (6, n_bands) absorption of the surfaces of :data:`SURFACE_ORDER`.
    """
    lx, ly, lz = (float(v) for v in dims_m)
    areas = np.array([ly * lz, ly * lz, lx * lz, lx * lz, lx * ly, lx * ly])
    mean_alpha = (areas[:, None] * alpha).sum(axis=0) / areas.sum()
    volume = lx * ly * lz
    return -speed_m_s * areas.sum() / (4.0 * volume) * np.log(np.clip(1.0 - mean_alpha, 1e-12, 1.0))


def fast_fft_size(n: int) -> int:
    """Smallest 2^a * 3^b >= n (fast FFT sizes)."""
    best = 1 << math.ceil(math.log2(n))
    p3 = 1
    while p3 < best:
        size = p3 * (1 << max(0, math.ceil(math.log2(n / p3))))
        best = min(best, size)
        p3 *= 3
    return best
