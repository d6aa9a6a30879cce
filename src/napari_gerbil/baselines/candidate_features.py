"""What the learned scorer sees of a call at each candidate (a tracked animal).

The steered response (:mod:`napari_gerbil.baselines.candidates`) uses only the time
differences. A calling animal also leaves its heading in the *levels*: it is loudest
towards the microphones it faces (:mod:`napari_gerbil.simulate.caller`), and reverberant
energy blurs that cue in ways no hand formula weighs well. So each candidate gets a
vector of

- every microphone pair's GCC-PHAT curve around the lag the candidate predicts (how far
  off the peak lies, and how sharp it is), its steered response and best point;
- the call's band;
- each microphone's level, over the whole call and over its first milliseconds (the
  direct sound), relative to the mean over microphones: the recording keeps the levels
  between channels;
- each microphone's distance (log, relative) and bearing relative to the candidate's
  heading (cos, sin), from the pose; zeros and a flag when the heading is unknown.

The learned part (:mod:`napari_gerbil.model.scorer`) turns these into one score per
candidate. The layout depends on the microphone count, so a scorer fits one rig.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_gerbil.baselines.candidates import _padded, candidate_correlations
from napari_gerbil.baselines.geometry import DEFAULT_TEMPERATURE_C, mic_pairs

#: Lag steps (of 1 / (4 fs)) either side of the candidate's lag in each GCC window.
WINDOW_LAGS = 32
#: Step between the window's samples (lag steps).
WINDOW_STRIDE = 2
#: Length (s) of the early part of a call whose level is the direct sound's.
EARLY_S = 0.003
#: Height (mm) of the mouth assumed for distances and bearings.
MOUTH_HEIGHT_MM = 40.0


def feature_size(n_mics: int) -> int:
    """Length of one candidate's feature vector with ``n_mics`` microphones."""
    n_pairs = n_mics * (n_mics - 1) // 2
    window = len(range(-WINDOW_LAGS, WINDOW_LAGS + 1, WINDOW_STRIDE))
    return n_pairs * window + 7 + 5 * n_mics + 1


@dataclasses.dataclass
class CandidateFeatures:
    """Features of B calls at K candidates.

    Attributes
    ----------
    features
        (B, K, F) float32 (zeros for an untracked candidate).
    valid
        (B, K) whether the candidate is tracked.
    steered_response
        (B, K) the classical score (NaN where untracked).
    bands_hz
        (B, 2) each call's band.
    """

    features: np.ndarray
    valid: np.ndarray
    steered_response: np.ndarray
    bands_hz: np.ndarray


def call_levels_db(calls, sample_rate_hz: float, bands_hz: np.ndarray) -> np.ndarray:
    """(B, 2, C) band level of each channel (dB re the mean over channels): whole, early.

    The early part is :data:`EARLY_S` from the call's onset (the first sample whose
    summed envelope reaches a tenth of its peak).
    """
    block = _padded(calls)  # (B, T, C)
    n, length, _ = block.shape
    freqs = np.fft.rfftfreq(length, 1.0 / sample_rate_hz)
    spec = np.fft.rfft(block, axis=1)
    in_band = (freqs[None, :] >= bands_hz[:, :1]) & (freqs[None, :] <= bands_hz[:, 1:])
    filtered = np.fft.irfft(spec * in_band[:, :, None], n=length, axis=1)
    power = filtered**2
    envelope = power.sum(axis=2)
    onset = np.argmax(envelope >= 0.1 * envelope.max(axis=1, keepdims=True), axis=1)
    early = int(round(EARLY_S * sample_rate_hz))
    t = np.arange(length)[None, :]
    mask = (t >= onset[:, None]) & (t < onset[:, None] + early)
    whole_e = power.sum(axis=1)
    early_e = (power * mask[:, :, None]).sum(axis=1)
    out = np.stack([whole_e, early_e], axis=1)  # (B, 2, C)
    db = 10.0 * np.log10(np.maximum(out, 1e-30))
    return (db - db.mean(axis=2, keepdims=True)).astype(np.float32)


def candidate_features(
    calls,
    mic_positions_mm,
    sample_rate_hz: float,
    candidates_xy_mm,
    headings_rad=None,
    *,
    temperature_c: float = DEFAULT_TEMPERATURE_C,
) -> CandidateFeatures:
    """The scorer's features of each call at each of its candidates.

    Parameters
    ----------
    calls
        B arrays (T_i, C) (or a (B, T, C) array).
    mic_positions_mm
        (C, 3) microphones, arena frame.
    sample_rate_hz
        Sampling rate.
    candidates_xy_mm
        (B, K, 2) candidate positions (NaN: untracked).
    headings_rad
        (B, K) direction each candidate faces (NaN or None: unknown).
    temperature_c
        Air temperature.
    """
    cand = np.asarray(candidates_xy_mm, float)
    n, k = cand.shape[:2]
    mics = np.asarray(mic_positions_mm, float)
    n_mics = len(mics)
    cc = candidate_correlations(
        calls, mics, sample_rate_hz, cand, temperature_c=temperature_c,
        window_lags=WINDOW_LAGS, window_stride=WINDOW_STRIDE,
    )  # fmt: skip
    valid = np.all(np.isfinite(cand), axis=-1)
    out = np.zeros((n, k, feature_size(n_mics)), np.float32)
    if n == 0:
        return CandidateFeatures(out, valid, cc.steered_response, cc.bands_hz)
    assert cc.windows is not None
    n_pairs = len(mic_pairs(n_mics))
    col = 0
    width = cc.windows.shape[-1] * n_pairs
    out[..., col : col + width] = cc.windows.reshape(n, k, width)
    col += width
    out[..., col] = np.nan_to_num(cc.steered_response)
    out[..., col + 1 : col + 3] = cc.best_offset_mm[..., :2] / 15.0
    out[..., col + 3] = cc.best_offset_mm[..., 2] / 100.0
    out[..., col + 4 : col + 6] = (cc.bands_hz / 50000.0)[:, None, :]
    out[..., col + 6] = ((cc.bands_hz[:, 1] - cc.bands_hz[:, 0]) / 50000.0)[:, None]
    col += 7
    levels = call_levels_db(calls, sample_rate_hz, cc.bands_hz) / 10.0  # (B, 2, C)
    out[..., col : col + 2 * n_mics] = levels.reshape(n, 1, 2 * n_mics)
    col += 2 * n_mics
    xy = np.where(valid[..., None], cand, 0.0)
    delta = mics[None, None, :, :2] - xy[:, :, None, :]  # (B, K, C, 2)
    dz = mics[None, None, :, 2] - MOUTH_HEIGHT_MM
    log_d = 0.5 * np.log((delta**2).sum(-1) + dz**2)
    out[..., col : col + n_mics] = log_d - log_d.mean(axis=-1, keepdims=True)
    col += n_mics
    heads = np.full((n, k), np.nan) if headings_rad is None else np.asarray(headings_rad, float)
    known = np.isfinite(heads) & valid
    bearing = np.arctan2(delta[..., 1], delta[..., 0]) - np.nan_to_num(heads)[..., None]
    out[..., col : col + n_mics] = np.where(known[..., None], np.cos(bearing), 0.0)
    out[..., col + n_mics : col + 2 * n_mics] = np.where(known[..., None], np.sin(bearing), 0.0)
    col += 2 * n_mics
    out[..., col] = known
    out[~valid] = 0.0
    return CandidateFeatures(out, valid, cc.steered_response, cc.bands_hz)
