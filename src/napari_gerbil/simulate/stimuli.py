"""Call-like stimuli: the paper's five gerbil call types plus white noise, at three volumes.

Every draw randomizes duration (10-100 ms), frequencies (within 0.5-60 kHz), harmonic
content and amplitude envelope. A class name is ``<type>_<volume>``, e.g. ``dfm_high``;
the 18 names are :data:`STIMULUS_CLASSES`. Waveforms have unit RMS times the volume
gain, so the three volumes of a type differ by :data:`VOLUME_DB`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_gerbil.errors import InvalidInputError

#: Call types and the band (Hz) every draw of that type stays inside.
TYPE_BANDS_HZ = {
    "dfm": (8000.0, 60000.0),  # down-FM sweep
    "ufm": (10000.0, 60000.0),  # up-FM sweep
    "soft_chirp": (1500.0, 30000.0),  # short, low, few harmonics
    "stack": (500.0, 60000.0),  # harmonic stack
    "noisy": (2000.0, 60000.0),  # noisy broadband call (band-limited noise burst)
    "white_noise": (500.0, 60000.0),
}
#: Gain of each volume level in dB re the loudest.
VOLUME_DB = {"low": -20.0, "mid": -10.0, "high": 0.0}
#: The 18 class names, type-major.
STIMULUS_CLASSES = tuple(f"{t}_{v}" for t in TYPE_BANDS_HZ for v in VOLUME_DB)
#: Classes that sound like calls (no white noise).
CALL_CLASSES = tuple(c for c in STIMULUS_CLASSES if not c.startswith("white_noise"))


@dataclasses.dataclass
class Stimulus:
    """One drawn stimulus.

    Attributes
    ----------
    waveform
        (n_samples,) float32.
    stimulus_class
        One of :data:`STIMULUS_CLASSES`.
    band_hz
        (low, high) band holding this draw's energy (inside the type's band).
    """

    waveform: np.ndarray
    stimulus_class: str
    band_hz: tuple[float, float]


def split_class(stimulus_class: str) -> tuple[str, str]:
    """``"soft_chirp_low"`` -> ``("soft_chirp", "low")``; raises on unknown names."""
    if stimulus_class not in STIMULUS_CLASSES:
        raise InvalidInputError(
            None, "stimulus_class", f"one of {list(STIMULUS_CLASSES)}", repr(stimulus_class)
        )
    kind, volume = stimulus_class.rsplit("_", 1)
    return kind, volume


def _envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random envelope: raised-cosine attack/decay plus slow amplitude modulation."""
    t = np.linspace(0.0, 1.0, n)
    attack = rng.uniform(0.05, 0.3)
    decay = rng.uniform(0.1, 0.5)
    env = np.ones(n)
    a = t < attack
    env[a] = 0.5 - 0.5 * np.cos(np.pi * t[a] / attack)
    d = t > 1.0 - decay
    env[d] = 0.5 - 0.5 * np.cos(np.pi * (1.0 - t[d]) / decay)
    depth = rng.uniform(0.0, 0.4)
    env *= 1.0 - depth * (
        0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3.0) * t + rng.uniform(0, 6.3))
    )
    return env


def _sweep(f_start: float, f_end: float, n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Instantaneous frequency (Hz) of a sweep, linear or exponential, with slight bow."""
    t = np.linspace(0.0, 1.0, n)
    linear = rng.random() < 0.5
    f = f_start + (f_end - f_start) * t if linear else f_start * (f_end / f_start) ** t
    bow = rng.uniform(-0.1, 0.1) * (f_end - f_start) * 4 * t * (1 - t)
    return np.clip(f + bow, min(f_start, f_end), max(f_start, f_end))


def _tone(freq_hz: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    return np.sin(2 * np.pi * np.cumsum(freq_hz) / fs + rng.uniform(0, 2 * np.pi))


class StimulusGenerator:
    """Draws random stimuli of any class.

    Parameters
    ----------
    sample_rate_hz
        Sampling rate of the waveforms (>= 125 kHz recommended; bands reach 60 kHz).
    """

    def __init__(self, sample_rate_hz: float = 125000.0) -> None:
        if sample_rate_hz < 2 * 60000.0:
            raise InvalidInputError(
                None, "sample_rate_hz", ">= 120000 Hz (stimuli reach 60 kHz)", str(sample_rate_hz)
            )
        self.sample_rate_hz = float(sample_rate_hz)

    def sample(
        self, stimulus_class: str, rng: np.random.Generator, variability: float = 1.0
    ) -> Stimulus:
        """Draw one stimulus of ``stimulus_class``.

        Parameters
        ----------
        variability
            Scales the random spread of the levels (1 = the defaults; the ``animal``
            scenario uses more: real calls vary in loudness).
        """
        kind, volume = split_class(stimulus_class)
        fs = self.sample_rate_hz
        lo_type, hi_type = TYPE_BANDS_HZ[kind]
        duration_s = rng.uniform(0.010, 0.100)
        if kind == "soft_chirp":
            duration_s = rng.uniform(0.010, 0.040)
        n = int(round(duration_s * fs))
        if kind == "dfm":
            f0 = rng.uniform(20000.0, 55000.0)
            f1 = f0 * rng.uniform(0.4, 0.75)
            x, band = _tone(_sweep(f0, f1, n, fs, rng), fs, rng), (f1, f0)
        elif kind == "ufm":
            f0 = rng.uniform(12000.0, 30000.0)
            f1 = min(f0 * rng.uniform(1.3, 1.9), 55000.0)
            x, band = _tone(_sweep(f0, f1, n, fs, rng), fs, rng), (f0, f1)
        elif kind in ("soft_chirp", "stack"):
            if kind == "soft_chirp":
                f0, n_harm, tilt = rng.uniform(3000.0, 7000.0), int(rng.integers(1, 4)), 0.5
            else:
                f0, n_harm, tilt = rng.uniform(600.0, 3000.0), int(rng.integers(5, 16)), 0.8
            fm = _sweep(f0, f0 * rng.uniform(0.85, 1.15), n, fs, rng)
            n_harm = max(1, min(n_harm, int(hi_type / (fm.max() * 1.05))))
            phase = 2 * np.pi * np.cumsum(fm) / fs
            x = sum(  # type: ignore[assignment]
                tilt ** (k - 1) * np.sin(k * phase + rng.uniform(0, 6.3))
                for k in range(1, n_harm + 1)
            )
            band = (fm.min(), fm.max() * n_harm)
        elif kind == "noisy":
            centre = rng.uniform(10000.0, 40000.0)
            half = rng.uniform(3000.0, 12000.0)
            band = (max(centre - half, lo_type), min(centre + half, hi_type))
            x = self._band_noise(n, band, rng)
        else:  # white noise over the whole band
            band = (lo_type, hi_type)
            x = self._band_noise(n, band, rng)
        x = x * _envelope(n, rng)
        x = x / max(np.sqrt(np.mean(x**2)), 1e-12)
        level_db = VOLUME_DB[volume] + rng.normal(0.0, 1.0 * variability)
        x = (x * 10.0 ** (level_db / 20.0)).astype(np.float32)
        band = (max(float(band[0]), lo_type), min(float(band[1]), hi_type))
        return Stimulus(x, stimulus_class, band)

    def _band_noise(
        self, n: int, band_hz: tuple[float, float], rng: np.random.Generator
    ) -> np.ndarray:
        """Gaussian noise whose spectrum is flat inside ``band_hz`` and zero outside."""
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1.0 / self.sample_rate_hz)
        spec[(freqs < band_hz[0]) | (freqs > band_hz[1])] = 0.0
        return np.fft.irfft(spec, n)

    def sample_any(
        self,
        rng: np.random.Generator,
        classes: tuple[str, ...] = CALL_CLASSES,
        variability: float = 1.0,
    ) -> Stimulus:
        """Draw a stimulus of a class chosen uniformly from ``classes``."""
        return self.sample(classes[int(rng.integers(len(classes)))], rng, variability)
