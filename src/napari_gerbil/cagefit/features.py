"""What a fit compares between recorded and rendered calls.

None of these features needs the exact source waveform:

- :func:`measure_tdoas_s`: the direct path's time difference between every microphone
  pair (GCC-PHAT, refined to 1/32 sample): the geometry and the speed of sound.
- :func:`spectral_ratios` / :func:`response_ratios`: each microphone's level re the
  others in 1 kHz bands, of recorded calls and of rendered responses (distances,
  patterns, gains and the reflections' ripple).
- :func:`decay_curves`: per call and microphone, the energy decay after the call's
  offset and its slope (absorption; the fit's independent check).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

#: Band (Hz) the time differences are measured in.
TDOA_BAND_HZ = (15000.0, 60000.0)
#: Calls with less of their energy in :data:`TDOA_BAND_HZ` give no time differences
#: (tonal and low calls: their cross-correlation has many equal peaks).
MIN_TDOA_BAND_SHARE = 0.5
#: Band (Hz) of the decay curves and of the noise estimate.
FEATURE_BAND_HZ = (4000.0, 60000.0)
#: Energy envelope block (samples at 125 kHz: 0.256 ms).
BLOCK_SAMPLES = 32
#: Blocks after the offset whose energy forms the decay feature (0 .. 4 ms).
DECAY_BLOCKS = 16
#: Blocks before the offset the decay is referred to.
REFERENCE_BLOCKS = 4
#: The offset: the last block within this many dB of the call's loudest block.
OFFSET_DB = 20.0
#: Window (ms after the offset) of the decay-rate fit: the source has stopped, the room rings.
SLOPE_WINDOW_MS = (0.75, 3.0)


def mic_pairs(n_mics: int) -> np.ndarray:
    """(n_pairs, 2) microphone index pairs i < j."""
    return np.array([(i, j) for i in range(n_mics) for j in range(i + 1, n_mics)])


def measure_tdoas_s(
    audio: list[np.ndarray], fs_hz: float, expected_s: np.ndarray, half_window_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Direct-path time difference ``t_i - t_j`` of every pair of every call.

    A cage's echoes arrive within a fraction of a millisecond of the direct sound (a
    microphone 20 mm from a wall hears its mirror image 0.1 ms later), so the whole
    physical lag range holds cross-terms as high as the direct one. The search is
    therefore limited to ``expected_s +- half_window_s``: where the cage's geometry puts
    the direct path, give or take how far it may be off.

    Parameters
    ----------
    audio
        One (n_samples, n_mics) recording per call.
    fs_hz
        Sampling rate.
    expected_s
        (n_calls, n_pairs) expected time differences (centre of the search).
    half_window_s
        Half-width of the searched range.

    Returns
    -------
    tdoa_s
        (n_calls, n_pairs) time differences.
    peak
        (n_calls, n_pairs) height of the GCC-PHAT peak (0 .. 1; low = unreliable).
    """
    n_mics = audio[0].shape[1]
    pairs = mic_pairs(n_mics)
    tdoa = np.full((len(audio), len(pairs)), np.nan)
    peak = np.zeros((len(audio), len(pairs)))
    fine = np.arange(-16, 17) / 16.0  # +-1 sample around the integer peak, 1/16 steps
    for c, x in enumerate(audio):
        n = 1 << int(np.ceil(np.log2(2 * len(x))))
        spec = np.fft.rfft(np.asarray(x, np.float64), n=n, axis=0)
        freqs = np.fft.rfftfreq(n, 1.0 / fs_hz)
        band = (freqs >= TDOA_BAND_HZ[0]) & (freqs <= TDOA_BAND_HZ[1])
        power = (np.abs(spec) ** 2).sum(axis=1)
        if power[band].sum() < MIN_TDOA_BAND_SHARE * power.sum():
            continue
        for p, (i, j) in enumerate(pairs):
            cross = spec[:, i] * np.conj(spec[:, j])
            mag = np.abs(cross)
            use = band & (mag > 1e-3 * mag[band].max()) if band.any() else band
            weights = np.where(use, cross / np.maximum(mag, 1e-30), 0.0)
            r = np.fft.irfft(weights, n=n) / max(int(use.sum()), 1)
            centre = int(round(expected_s[c, p] * fs_hz))
            half = int(np.ceil(half_window_s * fs_hz))
            lags = np.arange(centre - half, centre + half + 1)
            k = int(lags[np.argmax(r[lags % n])])
            # refine: the cross-correlation at fractional lags from its spectrum
            tau = k + fine
            phase = np.exp(2j * np.pi * np.outer(tau, freqs[use]) / fs_hz)
            values = (phase * weights[use]).real.sum(axis=1) / max(int(use.sum()), 1)
            best = int(np.argmax(values))
            if 0 < best < len(fine) - 1:
                a, b, d = values[best - 1 : best + 2]
                denom = a - 2 * b + d
                shift = 0.5 * (a - d) / denom / 16.0 if denom < 0 else 0.0
            else:
                shift = 0.0
            tdoa[c, p] = (tau[best] + shift) / fs_hz
            peak[c, p] = values[best]
    return tdoa, peak


def _bandpass(x: np.ndarray, fs_hz: float) -> np.ndarray:
    sos = butter(4, FEATURE_BAND_HZ, "bandpass", fs=fs_hz, output="sos")
    return sosfiltfilt(sos, np.asarray(x, np.float64), axis=0)


def _block_energy(y: np.ndarray) -> np.ndarray:
    """(n_blocks, n_mics) energy per block of :data:`BLOCK_SAMPLES`."""
    n = len(y) // BLOCK_SAMPLES * BLOCK_SAMPLES
    return (y[:n] ** 2).reshape(-1, BLOCK_SAMPLES, y.shape[1]).sum(axis=1)


def noise_power(audio: list[np.ndarray], fs_hz: float) -> np.ndarray:
    """(n_mics,) noise power per sample in the feature band: the quietest blocks' level."""
    blocks = np.concatenate([_block_energy(_bandpass(x, fs_hz)) for x in audio])
    return np.percentile(blocks, 2.0, axis=0) / BLOCK_SAMPLES


def decay_curves(audio: list[np.ndarray], fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Each call's energy decay after its offset, per microphone.

    Returns
    -------
    decay_db
        (n_calls, n_mics, DECAY_BLOCKS) energy per block after the offset, dB re the
        :data:`REFERENCE_BLOCKS` blocks before it (NaN where the call is too short).
    slope_db_per_ms
        (n_calls, n_mics) its slope over :data:`SLOPE_WINDOW_MS`, where the source has
        stopped and the room rings (NaN where unmeasured).
    """
    n_mics = audio[0].shape[1]
    decay = np.full((len(audio), n_mics, DECAY_BLOCKS), np.nan)
    slope = np.full((len(audio), n_mics), np.nan)
    block_ms = BLOCK_SAMPLES / fs_hz * 1e3
    slope_blocks = np.arange(*np.round(np.asarray(SLOPE_WINDOW_MS) / block_ms).astype(int))
    for c, x in enumerate(audio):
        e = _block_energy(_bandpass(x, fs_hz))  # (n_blocks, M)
        total = e.sum(axis=1)
        offset = int(np.flatnonzero(total >= total.max() * 10 ** (-OFFSET_DB / 10))[-1]) + 1
        if offset < REFERENCE_BLOCKS:
            continue
        ref = e[offset - REFERENCE_BLOCKS : offset].mean(axis=0)
        after = e[offset : offset + DECAY_BLOCKS]
        decay[c, :, : len(after)] = (
            10 * np.log10(np.maximum(after, 1e-30) / np.maximum(ref, 1e-30)).T
        )
        if np.isfinite(decay[c][:, slope_blocks]).all():
            slope[c] = np.polyfit(slope_blocks * block_ms, decay[c][:, slope_blocks].T, 1)[0]
    return decay, slope


#: Frequency bands (Hz) of the spectral level ratios: 1 kHz wide, fine enough to resolve
#: the ripple that the floor, ceiling and near-wall reflections put on each microphone's
#: spectrum (spacing c / path difference: 2 to 17 kHz here).
RATIO_BAND_EDGES_HZ = tuple(float(f) for f in np.arange(15000.0, 60001.0, 1000.0))
#: A band counts where every microphone's energy is this many times the noise's.
RATIO_MIN_SNR = 10.0


def band_matrix(n_fft: int, fs_hz: float) -> np.ndarray:
    """(n_bands, n_fft // 2 + 1) 0/1 rows summing rfft bins into :data:`RATIO_BAND_EDGES_HZ`."""
    f = np.fft.rfftfreq(n_fft, 1.0 / fs_hz)
    edges = np.asarray(RATIO_BAND_EDGES_HZ)
    return ((f[None, :] >= edges[:-1, None]) & (f[None, :] < edges[1:, None])).astype(float)


def spectral_ratios(audio: list[np.ndarray], fs_hz: float, noise_var: np.ndarray) -> np.ndarray:
    """(n_calls, n_bands, n_mics) each microphone's band level re the mean over microphones (dB).

    The source's spectrum cancels in the ratio (every microphone hears the same call), so
    what is left is the room: distances, patterns, gains and the reflections' ripple.
    Noise energy is subtracted; bands where a microphone is within
    :data:`RATIO_MIN_SNR` of the noise are NaN.
    """
    n_bands = len(RATIO_BAND_EDGES_HZ) - 1
    out = np.full((len(audio), n_bands, audio[0].shape[1]), np.nan)
    for c, x in enumerate(audio):
        n = 1 << int(np.ceil(np.log2(len(x))))
        bands = band_matrix(n, fs_hz)
        energy = bands @ (np.abs(np.fft.rfft(np.asarray(x, np.float64), n=n, axis=0)) ** 2)
        noise = len(x) * noise_var[None, :] * bands.sum(axis=1)[:, None]
        ok = (energy > RATIO_MIN_SNR * noise).all(axis=1)
        level = 10 * np.log10(np.maximum(energy - noise, 1e-30))
        out[c, ok] = (level - level.mean(axis=1, keepdims=True))[ok]
    return out


def response_ratios(energy: np.ndarray, fs_hz: float, n_fft: int) -> np.ndarray:
    """(n_sources, n_bands, n_mics) :func:`spectral_ratios` of responses' energy spectra.

    ``energy`` (n_sources, n_fft // 2 + 1, n_mics): expected ``|H(f)|^2`` (see
    :meth:`~napari_gerbil.simulate.renderer.ImageSourceRenderer.expected_energy_spectra`).
    """
    bands = band_matrix(n_fft, fs_hz)
    level = 10 * np.log10(np.maximum(np.einsum("bf,sfm->sbm", bands, energy), 1e-30))
    return level - level.mean(axis=2, keepdims=True)
