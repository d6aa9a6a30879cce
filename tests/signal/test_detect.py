"""Band-energy call detection."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.progress import Cancelled, CancelToken, Progress
from napari_gerbil.signal.detect import DetectorConfig, detect_calls

RATE_HZ = 125000.0


def test_detects_planted_calls_and_ignores_out_of_band_hum(calls_audio, planted_calls):
    starts, stops = detect_calls(calls_audio)
    assert starts.size == len(planted_calls)
    for (start_s, dur_s), s, e in zip(planted_calls, starts, stops, strict=True):
        # the Hann-tapered chirp is audible over its middle part: bounds within 30%
        assert abs(s / RATE_HZ - start_s) < 0.3 * dur_s + 0.002
        assert abs(e / RATE_HZ - (start_s + dur_s)) < 0.3 * dur_s + 0.002
    assert np.all(stops > starts)


def test_chunking_does_not_change_the_result(calls_audio):
    whole = detect_calls(calls_audio, DetectorConfig(chunk_s=10.0))
    fractions = []
    calls_audio.reads.clear()
    chunked = detect_calls(calls_audio, DetectorConfig(chunk_s=0.037), progress=fractions.append)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])
    assert len(fractions) > 20 and fractions[-1].fraction == pytest.approx(1.0)
    assert all(isinstance(p, Progress) for p in fractions)
    assert max(stop - start for start, stop in calls_audio.reads) < 0.05 * RATE_HZ


def test_cancel_stops_detection_between_chunks(calls_audio):
    token = CancelToken()
    calls_audio.reads.clear()

    def cancel_after_three(record: Progress) -> None:
        if len(calls_audio.reads) == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        detect_calls(calls_audio, DetectorConfig(chunk_s=0.037), cancel_after_three, token)
    assert len(calls_audio.reads) == 3  # no chunk read after the cancel


def test_parameters_matter(calls_audio):
    # a band that excludes the calls but includes the hum finds only the hum
    starts, _ = detect_calls(calls_audio, DetectorConfig(band_hz=(1000.0, 5000.0)))
    assert starts.size == 1 and abs(starts[0] / RATE_HZ - 0.5) < 0.005
    # a long minimum duration keeps only the 45 ms call
    starts, _ = detect_calls(calls_audio, DetectorConfig(min_duration_s=0.025))
    assert starts.size == 1 and abs(starts[0] / RATE_HZ - 0.35) < 0.02
    # a huge gap tolerance merges everything into one detection
    starts, _ = detect_calls(calls_audio, DetectorConfig(max_gap_s=1.0))
    assert starts.size == 1


def test_bad_config(calls_audio):
    with pytest.raises(InvalidInputError, match="band_hz"):
        detect_calls(calls_audio, DetectorConfig(band_hz=(20000.0, 90000.0)))
    with pytest.raises(InvalidInputError, match="nfft"):
        detect_calls(calls_audio, DetectorConfig(nfft=100))
