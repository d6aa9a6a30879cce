"""Evidence for a call coming from given candidate positions (the tracked animals).

Attribution does not need the call's position, only which of 2-3 known positions it
fits best. :func:`candidate_correlations` reads every microphone pair's band-limited
GCC-PHAT curve at the time difference that points near each candidate predict: a disc
around the tracked position (pose error, the mouth ahead of the node) at a few heights
(the tracks give x, y; the mouth's height is unknown). The best point's mean over pairs,
``steered_response``, is the classical candidate score (:mod:`napari_gerbil.attribute`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_gerbil.baselines.correlation import check_band, cross_correlations
from napari_gerbil.baselines.geometry import (
    DEFAULT_TEMPERATURE_C,
    check_mic_positions,
    max_tdoa_s,
    mic_pairs,
    speed_of_sound_m_s,
    tdoa_s,
)
from napari_gerbil.errors import InvalidInputError

#: Source heights (mm above the floor) searched around every candidate.
CANDIDATE_HEIGHTS_MM = (5.0, 20.0, 35.0, 50.0, 65.0, 80.0, 95.0)
#: Radius (mm) searched around every candidate's tracked position (pose error, the
#: mouth ahead of the tracked node); the grid step is :data:`SEARCH_STEP_MM`.
SEARCH_RADIUS_MM = 15.0
SEARCH_STEP_MM = 5.0
#: Lag interpolation factor (lag step = 1 / (UPSAMPLE * sample rate)).
UPSAMPLE = 4
#: Calls correlated at once (bounds memory).
_CALLS_PER_CHUNK = 32


@dataclasses.dataclass
class CandidateCorrelations:
    """Pairwise correlation evidence of B calls at K candidates each.

    Attributes
    ----------
    steered_response
        (B, K) the largest mean (over pairs) GCC-PHAT at the lags predicted by a point
        near the candidate (within the search radius, at any searched height); NaN for
        a NaN candidate. The classical candidate score.
    best_offset_mm
        (B, K, 3) that best point minus (candidate x, y, 0).
    bands_hz
        (B, 2) band of each call used by the correlations.
    windows
        (B, K, P, L) each pair's GCC-PHAT curve around the lag the candidate's tracked
        position predicts (at the best point's height), when asked for
        (``window_lags``); the learned scorer's evidence of how far off the peak lies.
    """

    steered_response: np.ndarray
    best_offset_mm: np.ndarray
    bands_hz: np.ndarray
    windows: np.ndarray | None = None


def search_offsets_mm(
    radius_mm: float = SEARCH_RADIUS_MM,
    step_mm: float = SEARCH_STEP_MM,
    heights_mm=CANDIDATE_HEIGHTS_MM,
) -> np.ndarray:
    """(n, 3) offsets (dx, dy, z) searched around a candidate: a disc times heights."""
    k = int(np.floor(radius_mm / step_mm)) if step_mm > 0 else 0
    g = np.arange(-k, k + 1) * step_mm
    dx, dy = np.meshgrid(g, g, indexing="ij")
    disc = np.c_[dx.ravel(), dy.ravel()]
    disc = disc[np.hypot(disc[:, 0], disc[:, 1]) <= radius_mm + 1e-9]
    h = np.asarray(heights_mm, dtype=float).reshape(-1)
    return np.c_[np.repeat(disc, len(h), axis=0), np.tile(h, len(disc))]


def candidate_correlations(
    calls,
    mic_positions_mm,
    sample_rate_hz: float,
    candidates_xy_mm,
    *,
    offsets_mm: np.ndarray | None = None,
    upsample: int = UPSAMPLE,
    band_hz="auto",
    temperature_c: float = DEFAULT_TEMPERATURE_C,
    phat: bool = True,
    window_lags: int = 0,
    window_stride: int = 1,
) -> CandidateCorrelations:
    """Steered response of each call at its candidates.

    Parameters
    ----------
    calls
        List of (T_i, C) float arrays (or a (B, T, C) array).
    mic_positions_mm
        (C, 3) microphone positions, arena frame.
    sample_rate_hz
        Sampling rate.
    candidates_xy_mm
        (B, K, 2) candidate floor positions per call; NaN rows give NaN scores.
    offsets_mm
        (n, 3) points searched around each candidate (default
        :func:`search_offsets_mm`).
    upsample
        Lag interpolation factor.
    band_hz
        ``"auto"`` (the call's own band, as MUSE) or ``(f_lo_hz, f_hi_hz)``.
    temperature_c
        Air temperature (speed of sound).
    phat
        PHAT-weighted correlations (else energy-normalized, as MUSE).
    window_lags, window_stride
        Also return each pair's curve ``window_lags`` lag steps (of ``1 / (upsample
        fs)``) either side of the candidate's own lag, every ``window_stride`` steps.
    """
    cand = np.asarray(candidates_xy_mm, dtype=float)
    n_calls = len(calls)
    if cand.ndim != 3 or cand.shape[0] != n_calls or cand.shape[2] != 2:
        raise InvalidInputError(
            None, "candidates_xy_mm", f"shape ({n_calls}, n_candidates, 2)", f"{cand.shape}"
        )
    window = np.arange(-window_lags, window_lags + 1, max(1, window_stride), dtype=float)
    if n_calls == 0:
        empty_windows = None
        if window_lags:
            n_p = len(mic_pairs(np.asarray(mic_positions_mm).shape[0]))
            empty_windows = np.zeros((0, cand.shape[1], n_p, len(window)), np.float32)
        return CandidateCorrelations(
            np.zeros(cand.shape[:2]), np.zeros((*cand.shape[:2], 3)), np.zeros((0, 2)),
            empty_windows,
        )  # fmt: skip
    n_channels = np.asarray(calls[0]).shape[-1]
    mics = check_mic_positions(mic_positions_mm, n_channels)
    fs = float(sample_rate_hz)
    band = check_band(band_hz, fs)
    c = speed_of_sound_m_s(temperature_c)
    pairs = mic_pairs(n_channels)
    probe = search_offsets_mm() if offsets_mm is None else np.asarray(offsets_mm, float)
    n_k, n_o, n_p = cand.shape[1], len(probe), len(pairs)
    lag_step = 1.0 / (upsample * fs)
    ok = np.all(np.isfinite(cand), axis=-1)
    xy = np.where(ok[..., None], cand, 0.0)
    srp = np.full((n_calls, n_k), np.nan)
    best = np.zeros((n_calls, n_k, 3))
    bands = np.zeros((n_calls, 2))
    windows = np.zeros((n_calls, n_k, n_p, len(window)), np.float32) if window_lags else None
    max_lag = max_tdoa_s(mics, c) + 2 * lag_step
    for start in range(0, n_calls, _CALLS_PER_CHUNK):
        stop = min(n_calls, start + _CALLS_PER_CHUNK)
        b = stop - start
        xc, _, half, bands[start:stop] = cross_correlations(
            _padded(calls[start:stop]), pairs, fs, band, max_lag, phat=phat, upsample=upsample
        )
        points = np.concatenate(
            [
                xy[start:stop, :, None, :] + probe[:, :2],
                np.broadcast_to(probe[:, 2:], (b, n_k, n_o, 1)),
            ],
            axis=-1,
        )  # (b, K, O, 3)
        lags = tdoa_s(points.reshape(-1, 3), mics, c).reshape(b, n_k, n_o, n_p) / lag_step
        centre = _sample(xc, lags + half, -1).mean(axis=-1)  # (b, K, O)
        top = centre.argmax(axis=-1)  # (b, K)
        srp[start:stop] = np.take_along_axis(centre, top[..., None], -1)[..., 0]
        best[start:stop] = probe[top]
        if windows is not None:
            own = np.concatenate([xy[start:stop], probe[top][..., 2:]], axis=-1)  # (b, K, 3)
            own_lags = tdoa_s(own.reshape(-1, 3), mics, c).reshape(b, n_k, n_p) / lag_step
            at = own_lags[..., None] + half + window  # (b, K, P, L)
            windows[start:stop] = _sample(xc, at, 2)
    srp[~ok] = np.nan
    if windows is not None:
        windows[~ok] = 0.0
    return CandidateCorrelations(srp, best, bands, windows)


def _sample(xc: np.ndarray, pos: np.ndarray, pair_axis: int) -> np.ndarray:
    """Linear interpolation of ``xc`` (b, P, L) at fractional lag indices ``pos``.

    ``pos`` is (b, ...) with the pair index along ``pair_axis``; the result has its shape.
    """
    pos = np.clip(pos, 0, xc.shape[-1] - 1.000001)
    lo = np.floor(pos).astype(np.intp)
    frac = (pos - lo).astype(np.float32)
    b_idx = np.arange(pos.shape[0]).reshape([-1] + [1] * (pos.ndim - 1))
    p_shape = [1] * pos.ndim
    p_shape[pair_axis] = xc.shape[1]
    p_idx = np.arange(xc.shape[1]).reshape(p_shape)
    left = xc[b_idx, p_idx, lo]
    return left + frac * (xc[b_idx, p_idx, lo + 1] - left)


def _padded(calls) -> np.ndarray:
    """Calls as a float32 (b, T, C) array, zero-padded to the longest; finite only."""
    if isinstance(calls, np.ndarray) and calls.ndim == 3:
        block = np.asarray(calls, dtype=np.float32)
    else:
        n = max(np.asarray(a).shape[0] for a in calls)
        block = np.zeros((len(calls), n, np.asarray(calls[0]).shape[1]), np.float32)
        for k, a in enumerate(calls):
            block[k, : len(a)] = a
    if not np.all(np.isfinite(block)):
        raise InvalidInputError(None, "audio", "finite samples", "NaN or inf")
    return block
