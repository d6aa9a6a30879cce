"""Spectrogram of a visible window."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.signal.spectrogram import spectrogram_window

RATE_HZ = 125000.0


@pytest.fixture
def tone_source(rng, array_source):
    """2 s: channel 1 carries a 30 kHz tone from 1.0 to 1.2 s; others noise only."""
    n = int(2 * RATE_HZ)
    audio = 0.001 * rng.standard_normal((n, 3))
    t = np.arange(int(0.2 * RATE_HZ)) / RATE_HZ
    s = int(1.0 * RATE_HZ)
    audio[s : s + t.size, 1] += np.sin(2 * np.pi * 30000 * t)
    return array_source(audio)


def test_tone_appears_at_its_frequency_and_time(tone_source):
    spec = spectrogram_window(tone_source, 0.9, 1.3, channel=1, nfft=512)
    assert spec.power_db.shape == (spec.freqs_hz.size, spec.times_s.size)
    assert spec.start_s == pytest.approx(0.9) and spec.stop_s == pytest.approx(1.3)
    during = (spec.times_s > 1.02) & (spec.times_s < 1.18)
    outside = spec.times_s < 0.98
    peak_row = np.argmax(spec.power_db[:, during].mean(axis=1))
    assert abs(spec.freqs_hz[peak_row] - 30000) <= RATE_HZ / 512
    assert spec.power_db[peak_row, during].mean() > spec.power_db[peak_row, outside].mean() + 40
    # channel 0 has no tone, the mean of all channels has it
    quiet = spectrogram_window(tone_source, 0.9, 1.3, channel=0)
    mean = spectrogram_window(tone_source, 0.9, 1.3, channel=None)
    assert quiet.power_db[peak_row, during].mean() < mean.power_db[peak_row, during].mean() - 30


def test_only_the_window_is_read_and_columns_are_bounded(tone_source):
    spec = spectrogram_window(tone_source, 0.5, 1.9, max_columns=200)
    assert spec.times_s.size <= 200
    assert tone_source.reads == [(int(0.5 * RATE_HZ), int(np.ceil(1.9 * RATE_HZ)))]
    assert np.all(np.diff(spec.times_s) > 0)
    assert spec.times_s[0] >= 0.5 and spec.times_s[-1] <= 1.9


def test_window_is_clipped_to_the_recording(tone_source):
    spec = spectrogram_window(tone_source, -1.0, 0.2)
    assert spec.start_s == 0.0 and spec.times_s[0] > 0
    tail = spectrogram_window(tone_source, 1.99999, 3.0)
    assert tail.power_db.shape[1] == 0  # fewer samples than one FFT


def test_bad_arguments(tone_source):
    with pytest.raises(InvalidInputError, match="channel"):
        spectrogram_window(tone_source, 0, 1, channel=3)
    with pytest.raises(InvalidInputError, match="nfft"):
        spectrogram_window(tone_source, 0, 1, nfft=500)
    with pytest.raises(InvalidInputError, match="stop_s"):
        spectrogram_window(tone_source, 1, 1)
