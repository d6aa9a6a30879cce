"""Ultrasonic calls made audible: slowed down or heterodyned, as a mono buffer to play.

Rodent calls sit at 20-100 kHz, above human hearing. Two classic ways to listen:

- **slowed down** (time expansion): play the samples ``factor`` times slower, which
  divides every frequency by ``factor`` (40 kHz at x10 is heard at 4 kHz) and stretches
  the call ``factor`` times;
- **heterodyne** (bat detector): multiply by a carrier at ``carrier_hz`` and keep the
  difference frequency below ``audible_hz`` (40 kHz with a 37 kHz carrier is heard at
  3 kHz), in real time.

No Qt and no audio device here: :func:`audible_buffer` returns the samples and the rate
to hand to an audio library (the review window uses ``sounddevice``).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
from scipy.signal import butter, resample_poly, sosfiltfilt

from napari_gerbil.errors import InvalidInputError

#: Sample rate of the returned buffer (every sound card plays it).
OUTPUT_RATE_HZ = 48000
#: Slow-down factors offered in the review window.
SLOWDOWN_FACTORS = (10, 20)
#: Fade in / out of each buffer, to avoid clicks.
FADE_S = 0.005
#: Peak amplitude of the returned buffer.
PEAK = 0.8


@dataclasses.dataclass(frozen=True)
class AudibleBuffer:
    """Mono float32 samples in [-1, 1] at ``sample_rate_hz``, ready to play."""

    samples: np.ndarray
    sample_rate_hz: int
    mode: str
    description: str

    @property
    def duration_s(self) -> float:
        """Length of the buffer when played."""
        return len(self.samples) / self.sample_rate_hz


def _mono(audio: np.ndarray, channel: int | None) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[0] < 2:
        raise InvalidInputError(
            None, "audio", "(n_samples >= 2, n_channels) samples", f"shape {audio.shape}"
        )
    if not np.isfinite(audio).all():
        raise InvalidInputError(None, "audio", "finite samples", "NaN or inf")
    if channel is None:
        return audio.mean(axis=1)
    if not 0 <= channel < audio.shape[1]:
        raise InvalidInputError(None, "channel", f"0..{audio.shape[1] - 1}", str(channel))
    return audio[:, channel]


def _resample(x: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    ratio = Fraction(to_hz / from_hz).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def _finish(x: np.ndarray, rate_hz: int) -> np.ndarray:
    x = x - x.mean()
    n_fade = min(len(x) // 2, int(FADE_S * rate_hz))
    if n_fade > 0:
        ramp = np.linspace(0.0, 1.0, n_fade)
        x[:n_fade] *= ramp
        x[-n_fade:] *= ramp[::-1]
    peak = np.max(np.abs(x)) if len(x) else 0.0
    if peak > 0:
        x = x * (PEAK / peak)
    return x.astype(np.float32)


def peak_frequency_hz(mono: np.ndarray, sample_rate_hz: float, low_hz: float = 15000.0) -> float:
    """Frequency of the strongest spectral component above ``low_hz``."""
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    freqs = np.fft.rfftfreq(len(mono), 1.0 / sample_rate_hz)
    band = freqs >= low_hz
    if not band.any():
        return float(freqs[np.argmax(spectrum)])
    return float(freqs[band][np.argmax(spectrum[band])])


def audible_buffer(
    audio: np.ndarray,
    sample_rate_hz: float,
    mode: str = "slow",
    *,
    factor: int = 10,
    carrier_hz: float | None = None,
    audible_hz: float = 12000.0,
    channel: int | None = None,
) -> AudibleBuffer:
    """The audible version of one call.

    Parameters
    ----------
    audio
        (n_samples, n_channels) or (n_samples,) samples of the call.
    sample_rate_hz
        Rate of ``audio``.
    mode
        ``"slow"`` (time expansion by ``factor``) or ``"heterodyne"``.
    factor
        Slow-down factor (``"slow"``): frequencies divided and duration multiplied by it.
    carrier_hz
        Heterodyne carrier; default 3 kHz below the call's peak frequency.
    audible_hz
        Heterodyne: difference frequencies kept (low-pass).
    channel
        Microphone to play; None: the mean of all.

    Returns
    -------
    AudibleBuffer
        Mono float32 at :data:`OUTPUT_RATE_HZ`, peak :data:`PEAK`, faded in and out.
    """
    if not sample_rate_hz > 0:
        raise InvalidInputError(None, "sample_rate_hz", "> 0", repr(sample_rate_hz))
    mono = _mono(audio, channel)
    if mode == "slow":
        if int(factor) < 1:
            raise InvalidInputError(None, "factor", "an integer >= 1", repr(factor))
        # the same samples played factor times slower: rate / factor, then resampled
        played_hz = sample_rate_hz / int(factor)
        out = _resample(mono, played_hz, OUTPUT_RATE_HZ)
        text = f"slowed x{int(factor)}"
    elif mode == "heterodyne":
        carrier = (
            peak_frequency_hz(mono, sample_rate_hz) - 3000.0 if carrier_hz is None else carrier_hz
        )
        if not 0 < carrier < sample_rate_hz / 2:
            raise InvalidInputError(
                None, "carrier_hz", f"in (0, {sample_rate_hz / 2:g}) Hz", f"{carrier:g}"
            )
        t = np.arange(len(mono)) / sample_rate_hz
        mixed = mono * np.cos(2 * np.pi * carrier * t)
        cutoff = min(audible_hz, OUTPUT_RATE_HZ / 2 * 0.9)
        sos = butter(6, cutoff, btype="low", fs=sample_rate_hz, output="sos")
        low = sosfiltfilt(sos, mixed) if len(mixed) > 60 else mixed
        out = _resample(low, sample_rate_hz, OUTPUT_RATE_HZ)
        text = f"heterodyned with a {carrier / 1000:.1f} kHz carrier"
    else:
        raise InvalidInputError(None, "mode", "'slow' or 'heterodyne'", repr(mode))
    return AudibleBuffer(_finish(out, OUTPUT_RATE_HZ), OUTPUT_RATE_HZ, mode, text)
