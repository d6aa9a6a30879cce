"""Pure-delay test signals for checking localizer geometry (not an acoustic simulator).

Use :mod:`napari_gerbil.simulate` for realistic, reverberant calls; this module only
delays one chirp by the exact (fractional) propagation time to each microphone.
"""

from __future__ import annotations

import numpy as np


def delayed_chirps(
    sources_mm: np.ndarray,
    mic_positions_mm: np.ndarray,
    sample_rate_hz: float,
    speed_of_sound_m_s: float,
    n_samples: int = 8192,
    band_hz: tuple[float, float] = (20_000.0, 60_000.0),
    snr_db: float | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Linear chirps from each source, delayed (and 1/r attenuated) to each microphone.

    Parameters
    ----------
    sources_mm
        (B, 3) source positions.
    mic_positions_mm
        (C, 3) microphone positions.
    sample_rate_hz, speed_of_sound_m_s
        Sampling rate and propagation speed.
    n_samples
        Length of each call.
    band_hz
        Start and end frequency of the chirp.
    snr_db
        Add white noise at this signal-to-noise ratio (per channel), or none.
    rng
        Random generator for the noise.

    Returns
    -------
    (B, n_samples, C) float32 audio.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    t = np.arange(n_samples) / sample_rate_hz
    dur = 0.5 * n_samples / sample_rate_hz
    f0, f1 = band_hz
    on = t < dur
    chirp = np.where(on, np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur))), 0.0)
    chirp *= np.where(on, np.sin(np.pi * np.clip(t / dur, 0, 1)) ** 2, 0.0)
    nfft = 2 * n_samples
    spectrum = np.fft.rfft(chirp, n=nfft)
    freqs = np.fft.rfftfreq(nfft, 1.0 / sample_rate_hz)
    dist_m = np.linalg.norm(sources_mm[:, None, :] - mic_positions_mm[None], axis=-1) / 1000.0
    delay_s = dist_m / speed_of_sound_m_s + 0.1 * dur  # (B, C), offset keeps it causal
    shifted = spectrum[None, None] * np.exp(-2j * np.pi * freqs * delay_s[..., None])
    audio = np.fft.irfft(shifted, n=nfft)[..., :n_samples] / dist_m[..., None]
    audio = np.swapaxes(audio, 1, 2)
    if snr_db is not None:
        power = (audio**2).mean(axis=1, keepdims=True)
        audio = audio + rng.normal(size=audio.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return audio.astype(np.float32)
