"""One entry point for the classical localizers: :func:`localize`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from napari_gerbil.baselines.correlation import check_band, cross_correlations
from napari_gerbil.baselines.gcc_phat import multilaterate_mm, peak_tdoas_s
from napari_gerbil.baselines.geometry import (
    DEFAULT_TEMPERATURE_C,
    FloorGrid,
    check_arena_dims,
    check_mic_positions,
    max_tdoa_s,
    mic_pairs,
    speed_of_sound_m_s,
)
from napari_gerbil.baselines.srp import localize_srp
from napari_gerbil.errors import InvalidInputError

#: Method name -> (uses the grid SRP, PHAT weighting, jackknife).
METHODS = {
    "muse": ("srp", False, False),
    "muse_jackknife": ("srp", False, True),
    "srp_phat": ("srp", True, False),
    "gcc_phat": ("tdoa", True, False),
}

#: Grid points x calls held in memory at once (bounds the working set to ~100 MB).
_POINTS_PER_CHUNK = 4_000_000


@dataclasses.dataclass
class BaselineResult:
    """What a classical localizer returns for a batch of B calls.

    Attributes
    ----------
    method
        Canonical method name (a key of :data:`METHODS`).
    point_mm
        (B, 2) estimated source positions (x, y), arena frame.
    score
        (B,) confidence score of the estimate: peak steered power per pair for the
        SRP methods (in [-1, 1] for MUSE), mean GCC-PHAT peak value for ``gcc_phat``.
    grid
        The floor grid searched (SRP) or bounding the search (``gcc_phat``).
    bands_hz
        (B, 2) frequency band used per call.
    speed_of_sound_m_s
        Speed of sound used.
    power_maps
        (B, ny, nx) min-max normalized steered power, only with ``keep_maps=True``
        (SRP methods). This is MUSE's "confidence": it is not a probability.
    jackknife_points_mm
        (B, n_mics, 2) leave-one-microphone-out estimates (``muse_jackknife``).
    jackknife_cov_mm2
        (B, 2, 2) jackknife covariance of the estimate (``muse_jackknife``).
    tdoa_s
        (B, n_pairs) GCC-PHAT time differences ``t_i - t_j`` (``gcc_phat``).
    residual_mm
        (B,) RMS range-difference residual of the multilateration (``gcc_phat``).
    """

    method: str
    point_mm: np.ndarray
    score: np.ndarray
    grid: FloorGrid
    bands_hz: np.ndarray
    speed_of_sound_m_s: float
    power_maps: np.ndarray | None = None
    jackknife_points_mm: np.ndarray | None = None
    jackknife_cov_mm2: np.ndarray | None = None
    tdoa_s: np.ndarray | None = None
    residual_mm: np.ndarray | None = None


def canonical_method(method: str) -> str:
    """Normalize a method name (``gcc-phat`` -> ``gcc_phat``); raise if unknown."""
    name = str(method).strip().lower().replace("-", "_")
    if name not in METHODS:
        raise InvalidInputError(None, "method", f"one of {sorted(METHODS)}", repr(method))
    return name


def _check_audio(audio) -> tuple[list[np.ndarray] | np.ndarray, int, int]:
    """Return (calls, n_calls, n_channels); calls is (B, T, C) or a list of (T_i, C)."""
    calls: list[np.ndarray] | np.ndarray
    if isinstance(audio, np.ndarray) and audio.ndim == 3:
        calls = audio
    elif isinstance(audio, np.ndarray) and audio.ndim == 2:
        calls = audio[None]
    elif isinstance(audio, Sequence) and not isinstance(audio, np.ndarray) and len(audio) > 0:
        calls = [np.asarray(a) for a in audio]
        if any(a.ndim != 2 for a in calls) or len({a.shape[1] for a in calls}) != 1:
            raise InvalidInputError(
                None, "audio", "calls shaped (n_samples, n_channels) with equal channels", "other"
            )
    else:
        shape = getattr(audio, "shape", type(audio).__name__)
        raise InvalidInputError(None, "audio", "an array (B, T, C) or a list of (T, C)", shape)
    n_channels = calls[0].shape[-1]
    if min(c.shape[0] for c in calls) < 16:
        raise InvalidInputError(None, "audio", "calls of at least 16 samples", "a shorter call")
    return calls, len(calls), n_channels


def _chunk(calls, start: int, stop: int) -> np.ndarray:
    """Calls start..stop as a float32 (b, T, C) array, zero-padded to the longest."""
    if isinstance(calls, np.ndarray):
        block = np.asarray(calls[start:stop], dtype=np.float32)
    else:
        part = calls[start:stop]
        n = max(a.shape[0] for a in part)
        block = np.zeros((len(part), n, part[0].shape[1]), dtype=np.float32)
        for k, a in enumerate(part):
            block[k, : a.shape[0]] = a
    if not np.all(np.isfinite(block)):
        raise InvalidInputError(None, "audio", "finite samples", "NaN or inf")
    return block


def localize(
    method: str,
    audio,
    mic_positions_mm,
    sample_rate_hz: float,
    arena_dims_mm,
    *,
    band_hz="auto",
    temperature_c: float = DEFAULT_TEMPERATURE_C,
    speed_of_sound: float | None = None,
    source_height_mm: float = 0.0,
    resolution_mm: float = 1.0,
    upsample: int = 8,
    keep_maps: bool = False,
) -> BaselineResult:
    """Localize calls with a classical method.

    Parameters
    ----------
    method
        ``"muse"`` (reduced steered response power, no PHAT), ``"muse_jackknife"``
        (mean of the leave-one-mic-out MUSE peaks), ``"srp_phat"`` (steered power of
        PHAT-weighted correlations) or ``"gcc_phat"`` (GCC-PHAT TDOAs + least-squares
        multilateration). Hyphens are accepted (``"gcc-phat"``).
    audio
        (B, T, C) float array, one (T, C) call, or a list of (T_i, C) calls.
    mic_positions_mm
        (C, 3) microphone positions, arena frame.
    sample_rate_hz
        Sampling rate.
    arena_dims_mm
        (length, width[, height]); the search covers the floor.
    band_hz
        ``"auto"`` (per call: where the spectrum is within 20 dB of its peak, >= 1 kHz)
        or ``(f_lo_hz, f_hi_hz)``.
    temperature_c
        Air temperature for ``331.3 * sqrt(1 + T / 273.16)`` m/s.
    speed_of_sound
        Speed of sound in m/s; overrides ``temperature_c``.
    source_height_mm
        Height of the plane searched (the assumed source height).
    resolution_mm
        Grid cell size (1 mm default).
    upsample
        Lag interpolation factor (zero-padding of the cross-power spectrum).
    keep_maps
        Return the normalized power maps (SRP methods; B * ny * nx floats).
    """
    name = canonical_method(method)
    kind, phat, jackknife = METHODS[name]
    calls, n_calls, n_channels = _check_audio(audio)
    mics = check_mic_positions(mic_positions_mm, n_channels)
    fs = float(sample_rate_hz)
    if not np.isfinite(fs) or fs <= 0:
        raise InvalidInputError(None, "sample_rate_hz", "a positive rate", repr(sample_rate_hz))
    band = check_band(band_hz, fs)
    c = speed_of_sound_m_s(temperature_c) if speed_of_sound is None else float(speed_of_sound)
    if not np.isfinite(c) or c <= 0:
        raise InvalidInputError(None, "speed_of_sound", "a positive speed (m/s)", repr(c))
    if int(upsample) < 1:
        raise InvalidInputError(None, "upsample", "an integer >= 1", repr(upsample))
    grid = FloorGrid.from_arena(check_arena_dims(arena_dims_mm), resolution_mm, source_height_mm)
    pairs = mic_pairs(n_channels)
    max_lag = max_tdoa_s(mics, c)
    n_points = grid.shape[0] * grid.shape[1] if kind == "srp" else 1
    chunk = max(1, min(256, _POINTS_PER_CHUNK // (n_points * (n_channels + 1 if jackknife else 1))))
    parts: dict[str, list] = {}
    for start in range(0, n_calls, chunk):
        block = _chunk(calls, start, min(n_calls, start + chunk))
        xc, lag_step, half, bands = cross_correlations(
            block, pairs, fs, band, max_lag, phat=phat, upsample=int(upsample)
        )
        if kind == "srp":
            out = localize_srp(xc, pairs, mics, grid, c, lag_step, half, jackknife, keep_maps)
            out["score"] = out.pop("peak_power")
        else:
            tdoa, peak = peak_tdoas_s(xc, mics, c, lag_step, half)
            point, resid = multilaterate_mm(tdoa, mics, grid, c)
            out = {"point_mm": point, "score": peak.mean(axis=1), "tdoa_s": tdoa}
            out["residual_mm"] = resid
        out["bands_hz"] = bands
        for key, value in out.items():
            if value is not None:
                parts.setdefault(key, []).append(value)
    merged = {key: np.concatenate(values) for key, values in parts.items()}
    if "jackknife_points_mm" in merged:
        loo = merged["jackknife_points_mm"]
        dev = loo - loo.mean(axis=1, keepdims=True)
        n = loo.shape[1]
        merged["jackknife_cov_mm2"] = (n - 1) / n * np.einsum("bki,bkj->bij", dev, dev)
    return BaselineResult(method=name, grid=grid, speed_of_sound_m_s=c, **merged)
