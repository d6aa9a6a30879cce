"""Fixtures of the signal tests: in-memory audio with known calls."""

from __future__ import annotations

import numpy as np
import pytest

RATE_HZ = 125000.0


class ArraySource:
    """Minimal in-memory audio source that records which samples were read."""

    def __init__(self, audio: np.ndarray, sample_rate_hz: float = RATE_HZ) -> None:
        self.audio = np.asarray(audio, np.float32)
        self.sample_rate_hz = sample_rate_hz
        self.n_samples, self.n_channels = self.audio.shape
        self.reads: list[tuple[int, int]] = []

    def read(self, start: int, stop: int) -> np.ndarray:
        self.reads.append((start, stop))
        return self.audio[start:stop]


def chirp(duration_s: float, f0_hz: float, f1_hz: float, rate_hz: float = RATE_HZ):
    t = np.arange(int(duration_s * rate_hz)) / rate_hz
    phase = 2 * np.pi * (f0_hz * t + (f1_hz - f0_hz) * t**2 / (2 * duration_s))
    return np.sin(phase) * np.hanning(t.size)


#: (start_s, duration_s) of the calls planted in ``calls_audio``.
CALLS = ((0.10, 0.020), (0.35, 0.045), (0.62, 0.012), (0.80, 0.030))


@pytest.fixture
def array_source():
    """Factory: ``array_source(audio, rate_hz)`` -> in-memory source."""
    return ArraySource


@pytest.fixture
def make_chirp():
    """``make_chirp(duration_s, f0_hz, f1_hz)``: a Hann-tapered linear chirp."""
    return chirp


@pytest.fixture
def planted_calls():
    """(start_s, duration_s) of the calls planted in ``calls_audio``."""
    return CALLS


@pytest.fixture
def calls_audio(rng):
    """1 s, 4 channels of noise with four 25-45 kHz chirps and a loud 600 Hz hum burst."""
    n = int(RATE_HZ)
    audio = 0.01 * rng.standard_normal((n, 4))
    for start_s, dur_s in CALLS:
        s = int(start_s * RATE_HZ)
        call = 0.2 * chirp(dur_s, 25000, 45000)
        audio[s : s + call.size] += call[:, None] * np.array([1.0, 0.7, 0.5, 0.8])
    t = np.arange(int(0.05 * RATE_HZ)) / RATE_HZ
    s = int(0.5 * RATE_HZ)
    audio[s : s + t.size] += 0.5 * np.sin(2 * np.pi * 600 * t)[:, None]  # below the band
    return ArraySource(audio)
