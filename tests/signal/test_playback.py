"""The audible buffer of a call: slowed down or heterodyned (no audio device needed)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.signal.playback import OUTPUT_RATE_HZ, PEAK, audible_buffer

RATE_HZ = 125000.0


def _tone(freq_hz: float, duration_s: float = 0.02, n_channels: int = 4) -> np.ndarray:
    t = np.arange(int(duration_s * RATE_HZ)) / RATE_HZ
    return np.repeat((0.1 * np.sin(2 * np.pi * freq_hz * t))[:, None], n_channels, axis=1)


def _peak_hz(buffer) -> float:
    x = buffer.samples.astype(float)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / buffer.sample_rate_hz)[np.argmax(spectrum)])


@pytest.mark.parametrize("factor", [10, 20])
def test_slowed_down_call_is_longer_and_lower_by_the_factor(factor):
    buffer = audible_buffer(_tone(40000.0), RATE_HZ, "slow", factor=factor)
    assert buffer.sample_rate_hz == OUTPUT_RATE_HZ
    assert buffer.samples.dtype == np.float32 and buffer.samples.ndim == 1
    assert buffer.duration_s == pytest.approx(0.02 * factor, rel=0.01)
    assert _peak_hz(buffer) == pytest.approx(40000.0 / factor, rel=0.03)
    assert np.max(np.abs(buffer.samples)) == pytest.approx(PEAK, rel=1e-3)
    assert abs(buffer.samples[0]) < 1e-3 and abs(buffer.samples[-1]) < 1e-3  # faded
    assert f"x{factor}" in buffer.description


def test_heterodyne_keeps_the_duration_and_shifts_to_the_difference_frequency():
    buffer = audible_buffer(_tone(40000.0, 0.05), RATE_HZ, "heterodyne", carrier_hz=37000.0)
    assert buffer.duration_s == pytest.approx(0.05, rel=0.01)
    assert _peak_hz(buffer) == pytest.approx(3000.0, abs=100.0)
    # default carrier: 3 kHz below the call's peak, so the call is heard near 3 kHz
    default = audible_buffer(_tone(52000.0, 0.05), RATE_HZ, "heterodyne")
    assert _peak_hz(default) == pytest.approx(3000.0, abs=150.0)
    assert "52.0 kHz" not in default.description and "49.0 kHz" in default.description


def test_one_channel_can_be_played_and_bad_input_is_named():
    audio = _tone(40000.0)
    audio[:, 2] = 0.0
    silent = audible_buffer(audio, RATE_HZ, "slow", channel=2)
    assert np.all(silent.samples == 0.0)
    with pytest.raises(InvalidInputError, match="mode"):
        audible_buffer(audio, RATE_HZ, "faster")
    with pytest.raises(InvalidInputError, match="channel"):
        audible_buffer(audio, RATE_HZ, channel=9)
    bad = audio.copy()
    bad[3, 0] = np.nan
    with pytest.raises(InvalidInputError, match="finite"):
        audible_buffer(bad, RATE_HZ)
