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
    starts, _ = detect_calls(calls_audio, DetectorConfig(band_hz=(200.0, 1500.0)))
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


def test_floor_and_runs_match_the_whole_array_computation(rng):
    from napari_gerbil.signal.detect import HISTOGRAM_BIN_DB, median_db, runs_above

    energy = rng.normal(-60.0, 5.0, 10_001).astype(np.float32)
    assert abs(median_db(energy, chunk=997) - np.median(energy)) <= HISTOGRAM_BIN_DB
    on = energy > -55.0
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts, stops = runs_above(energy, -55.0, chunk=101)  # runs cross chunk borders
    np.testing.assert_array_equal(starts, np.flatnonzero(edges == 1))
    np.testing.assert_array_equal(stops, np.flatnonzero(edges == -1))
    all_on = runs_above(np.zeros(5), -1.0, chunk=2)
    assert list(all_on[0]) == [0] and list(all_on[1]) == [5]


def test_long_recordings_keep_band_energies_in_a_temporary_file(calls_audio, monkeypatch):
    import napari_gerbil.signal.detect as detect

    in_memory = detect_calls(calls_audio)
    monkeypatch.setattr(detect, "IN_MEMORY_FRAMES", 100)
    energy, _ = detect.band_energy_db(calls_audio, DetectorConfig())
    assert isinstance(energy, np.memmap) and energy.size > 100
    on_disk = detect_calls(calls_audio)
    np.testing.assert_array_equal(in_memory[0], on_disk[0])
    np.testing.assert_array_equal(in_memory[1], on_disk[1])


@pytest.mark.parametrize("field", ["threshold_db", "min_duration_s", "max_gap_s", "chunk_s"])
def test_detector_refuses_non_finite_numbers(field):

    with pytest.raises(InvalidInputError, match=field):
        DetectorConfig(**{field: float("nan")}).check(250000.0)


def test_default_band_finds_low_gerbil_calls_but_not_hum(array_source, make_chirp, rng):
    """Many gerbil calls sit below 15 kHz: the default band starts at 2 kHz (issue 20)."""
    n = int(RATE_HZ)
    audio = (
        0.01 * rng.standard_normal((n, 4))
        + 0.05 * np.sin(2 * np.pi * 50 * np.arange(n) / RATE_HZ)[:, None]
    )  # mains hum all along
    low_calls = ((0.1, 0.03), (0.6, 0.04))  # 3-8 kHz calls
    for start_s, dur_s in low_calls:
        s = int(start_s * RATE_HZ)
        call = 0.1 * make_chirp(dur_s, 3000, 8000)
        audio[s : s + call.size] += call[:, None]
    t = np.arange(int(0.06 * RATE_HZ)) / RATE_HZ  # a handling thump at 0.35 s
    s = int(0.35 * RATE_HZ)
    audio[s : s + t.size] += (0.5 * np.sin(2 * np.pi * 300 * t) * np.exp(-t / 0.01))[:, None]
    starts, _ = detect_calls(array_source(audio))
    assert len(starts) == 2
    np.testing.assert_allclose(starts / RATE_HZ, [0.1, 0.6], atol=0.015)
