"""Band-limited, upsampled pairwise cross-correlations (the engine of MUSE and GCC-PHAT)."""

from __future__ import annotations

import numpy as np
import scipy.fft

from napari_gerbil.errors import InvalidInputError

#: Lowest frequency ever used (removes DC drift and handling noise).
MIN_BAND_HZ = 1000.0
#: Level below the spectral peak (dB) that still counts as "in the call band".
AUTO_BAND_DB = 20.0
#: Width of the moving average that smooths the spectrum before the band is estimated.
AUTO_BAND_SMOOTH_HZ = 1000.0


def check_band(band_hz, sample_rate_hz: float) -> tuple[float, float] | None:
    """Validate ``band_hz``: ``"auto"``/None (estimated per call) or ``(f_lo, f_hi)`` in Hz."""
    if band_hz is None or (isinstance(band_hz, str) and band_hz == "auto"):
        return None
    try:
        f_lo, f_hi = (float(f) for f in band_hz)
    except (TypeError, ValueError):
        raise InvalidInputError(
            None, "band_hz", "'auto' or a pair (f_lo_hz, f_hi_hz)", repr(band_hz)
        ) from None
    nyquist = sample_rate_hz / 2
    if not (0 <= f_lo < f_hi <= nyquist):
        raise InvalidInputError(
            None, "band_hz", f"0 <= f_lo < f_hi <= Nyquist ({nyquist:g} Hz)", repr(band_hz)
        )
    return f_lo, f_hi


def estimate_band_hz(power_spectrum: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """Call band per call: where the smoothed spectrum is within 20 dB of its peak.

    Parameters
    ----------
    power_spectrum
        (B, F) mean power spectrum over channels.
    freqs_hz
        (F,) bin frequencies.

    Returns
    -------
    (B, 2) array of (f_lo, f_hi) in Hz, with ``f_lo >= MIN_BAND_HZ``.
    """
    df = freqs_hz[1] - freqs_hz[0]
    width = max(1, int(round(AUTO_BAND_SMOOTH_HZ / df)))
    kernel = np.ones(width, dtype=np.float32) / width
    usable = freqs_hz >= MIN_BAND_HZ
    spec = np.where(usable, power_spectrum, 0.0)
    smooth = _moving_average(spec, kernel)
    peak = smooth.max(axis=1, keepdims=True)
    inside = (smooth >= peak * 10 ** (-AUTO_BAND_DB / 10)) & usable & (peak > 0)
    any_inside = inside.any(axis=1)
    lo = np.where(any_inside, freqs_hz[np.argmax(inside, axis=1)], MIN_BAND_HZ)
    hi_idx = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    hi = np.where(any_inside, freqs_hz[hi_idx], freqs_hz[-1])
    hi = np.maximum(hi, lo + 2 * df)
    return np.stack([lo, hi], axis=1)


def _moving_average(spec: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-length moving average along the last axis."""
    from scipy.ndimage import convolve1d

    return convolve1d(spec, kernel, axis=1, mode="constant")


def cross_correlations(
    audio: np.ndarray,
    pairs: np.ndarray,
    sample_rate_hz: float,
    band_hz: tuple[float, float] | None,
    max_lag_s: float,
    phat: bool,
    upsample: int = 8,
) -> tuple[np.ndarray, float, int, np.ndarray]:
    """Pairwise cross-correlations of band-limited signals around zero lag.

    The cross-power spectrum ``X_i conj(X_j)`` is zeroed outside the band, optionally
    PHAT-weighted (divided by its magnitude), zero-padded ``upsample`` times and
    inverse-transformed, which interpolates the correlation to ``1 / (upsample * fs)``.
    Without PHAT each pair is normalized by ``sqrt(E_i E_j)`` (band energies), so every
    pair's correlation is a coefficient in [-1, 1] and pairs weigh equally.

    Parameters
    ----------
    audio
        (B, T, C) float signals.
    pairs
        (P, 2) microphone index pairs.
    sample_rate_hz
        Sampling rate.
    band_hz
        ``(f_lo, f_hi)`` or None to estimate the call band per call.
    max_lag_s
        Largest lag needed (the longest mic separation / c).
    phat
        Apply the phase transform.
    upsample
        Interpolation factor of the lag axis.

    Returns
    -------
    xc
        (B, P, 2 * half_window + 1) float32; index ``k`` is lag ``(k - half_window) * lag_step_s``,
        where the correlation of pair (i, j) peaks at ``t_i - t_j`` (arrival time at i minus j).
    lag_step_s
        Lag spacing, ``1 / (upsample * sample_rate_hz)``.
    half_window
        Number of lags on each side of zero.
    bands_hz
        (B, 2) band used for each call.
    """
    n_batch, n_samples, _ = audio.shape
    max_lag_samples = int(np.ceil(max_lag_s * sample_rate_hz)) + 2
    nfft = scipy.fft.next_fast_len(n_samples + max_lag_samples, real=True)
    signals = np.ascontiguousarray(np.swapaxes(audio, 1, 2), dtype=np.float32)
    spectra = scipy.fft.rfft(signals, n=nfft, axis=-1, workers=-1)  # (B, C, F)
    freqs = scipy.fft.rfftfreq(nfft, 1.0 / sample_rate_hz)
    power = (spectra.real**2 + spectra.imag**2).astype(np.float32)
    if band_hz is None:
        bands = estimate_band_hz(power.mean(axis=1), freqs)
    else:
        bands = np.tile(np.asarray(band_hz, dtype=float), (n_batch, 1))
    mask = (freqs[None] >= np.maximum(bands[:, :1], MIN_BAND_HZ)) & (freqs[None] <= bands[:, 1:])
    mask = mask.astype(np.float32)[:, None, :]  # (B, 1, F)
    cross = spectra[:, pairs[:, 0]] * np.conj(spectra[:, pairs[:, 1]])  # (B, P, F)
    if phat:
        cross /= np.abs(cross) + np.float32(1e-12) * np.abs(cross).max(axis=-1, keepdims=True)
        cross *= mask
    else:
        cross *= mask
        energy = (power * mask).sum(axis=-1)  # (B, C)
        norm = np.sqrt(energy[:, pairs[:, 0]] * energy[:, pairs[:, 1]])
        cross /= np.where(norm > 0, norm, 1.0)[..., None]
    n_up = upsample * nfft
    xc_full = scipy.fft.irfft(cross, n=n_up, axis=-1, workers=-1)
    # irfft divides by n_up; scale so that a perfect match correlates to ~1 (2 * sum / n_up).
    scale = np.float32(n_up / 2.0)
    half = upsample * max_lag_samples
    xc = np.concatenate([xc_full[..., n_up - half :], xc_full[..., : half + 1]], axis=-1)
    xc *= scale
    if phat:
        xc /= np.maximum(mask.sum(axis=-1, keepdims=True), 1.0)
    return xc.astype(np.float32, copy=False), 1.0 / (upsample * sample_rate_hz), half, bands
