"""Spectrogram of one time window of a long recording.

Only the requested window is read and transformed, so the cost of a spectrogram update
does not depend on the length of the recording.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_gerbil.errors import InvalidInputError


@dataclasses.dataclass(frozen=True)
class Spectrogram:
    """Power spectrogram of a window.

    Attributes
    ----------
    power_db : ndarray (n_freqs, n_times)
        Power in dB (10 log10), float32; row 0 is the lowest frequency.
    freqs_hz : ndarray (n_freqs,)
        Frequency of each row.
    times_s : ndarray (n_times,)
        Centre time of each column, in recording seconds.
    start_s, stop_s : float
        The window actually covered (clipped to the recording).
    """

    power_db: np.ndarray
    freqs_hz: np.ndarray
    times_s: np.ndarray
    start_s: float
    stop_s: float


def _mono(audio: np.ndarray, channel: int | None, n_channels: int) -> np.ndarray:
    if channel is None:
        return audio.mean(axis=1)
    if not 0 <= channel < n_channels:
        raise InvalidInputError(
            None, "channel", f"None (mean) or 0..{n_channels - 1}", repr(channel)
        )
    return audio[:, channel]


def spectrogram_window(
    source,
    start_s: float,
    stop_s: float,
    *,
    channel: int | None = None,
    nfft: int = 512,
    max_columns: int = 1500,
) -> Spectrogram:
    """Spectrogram of ``source`` between ``start_s`` and ``stop_s``.

    Parameters
    ----------
    source
        An audio source with ``sample_rate_hz``, ``n_samples``, ``n_channels`` and
        ``read(start_sample, stop_sample) -> (n, n_channels)`` (e.g.
        :class:`napari_gerbil.io.audio.AudioSource`).
    start_s, stop_s
        Window in recording seconds; clipped to the recording.
    channel
        Channel index, or None for the mean of all channels.
    nfft
        FFT length in samples (Hann window).
    max_columns
        Upper bound on the number of time columns: long windows use a larger hop,
        so the cost stays bounded.
    """
    if nfft < 16 or nfft & (nfft - 1):
        raise InvalidInputError(None, "nfft", "a power of two >= 16", repr(nfft))
    if not stop_s > start_s:
        raise InvalidInputError(None, "stop_s", f"> start_s ({start_s})", repr(stop_s))
    rate = float(source.sample_rate_hz)
    start = int(np.clip(np.floor(start_s * rate), 0, source.n_samples))
    stop = int(np.clip(np.ceil(stop_s * rate), 0, source.n_samples))
    freqs_hz = np.fft.rfftfreq(nfft, 1.0 / rate)
    if stop - start < nfft:
        empty = np.zeros((freqs_hz.size, 0), np.float32)
        return Spectrogram(empty, freqs_hz, np.zeros(0), start / rate, stop / rate)
    signal = _mono(np.asarray(source.read(start, stop), np.float32), channel, source.n_channels)
    hop = max(nfft // 4, int(np.ceil((signal.size - nfft) / max(1, max_columns - 1))))
    n_cols = 1 + (signal.size - nfft) // hop
    frames = np.lib.stride_tricks.as_strided(
        signal, shape=(n_cols, nfft), strides=(hop * signal.strides[0], signal.strides[0])
    )
    window = np.hanning(nfft).astype(np.float32)
    spectrum = np.fft.rfft(frames * window, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2) / float((window**2).sum() * rate)
    power_db = (10.0 * np.log10(power + 1e-20)).T.astype(np.float32)
    times_s = (start + nfft / 2 + hop * np.arange(n_cols)) / rate
    return Spectrogram(power_db, freqs_hz, times_s, start / rate, stop / rate)
