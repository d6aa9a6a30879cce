"""Importing segments tables."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.signal.segments import read_segments_csv


@pytest.mark.parametrize(
    "text",
    [
        "name,start_seconds,stop_seconds\ncall,0.5,0.52\ncall,0.1,0.15\n",  # DAS
        "#,start,end,duration,maxfreq\n1,0.5,0.52,0.02,40\n2,0.1,0.15,0.05,35\n",  # USVSEG
        "Selection\tBegin Time (s)\tEnd Time (s)\n1\t0.5\t0.52\n2\t0.1\t0.15\n",  # Raven
    ],
    ids=["das", "usvseg", "raven"],
)
def test_reads_common_layouts_sorted(tmp_path, text):
    path = tmp_path / "segments.csv"
    path.write_text(text)
    starts, stops = read_segments_csv(path, 125000.0)
    np.testing.assert_array_equal(starts, [12500, 62500])
    np.testing.assert_array_equal(stops, [18750, 65000])


def test_errors_name_the_problem(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInputError, match="start column"):
        read_segments_csv(path, 125000.0)
    path.write_text("start,stop\n0.1,0.2\n0.3,x\n")
    with pytest.raises(InvalidInputError, match="line 3"):
        read_segments_csv(path, 125000.0)
    path.write_text("start,stop\n0.3,0.2\n")
    with pytest.raises(InvalidInputError, match="start < stop"):
        read_segments_csv(path, 125000.0)
    with pytest.raises(InvalidInputError, match="no such file"):
        read_segments_csv(tmp_path / "missing.csv", 125000.0)


def test_raven_views_and_repeated_rows_count_once(tmp_path):
    from napari_gerbil.signal.segments import read_segments

    raven = tmp_path / "raven.txt"
    raven.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\n"
        "1\tSpectrogram 1\t1\t0.5\t0.52\n"
        "1\tWaveform 1\t1\t0.5\t0.52\n"
        "2\tSpectrogram 1\t1\t0.1\t0.15\n"
        "2\tWaveform 1\t1\t0.1\t0.15\n"
    )
    segments = read_segments(raven, 125000.0)
    np.testing.assert_array_equal(segments.start_samples, [12500, 62500])
    assert segments.n_duplicates == 2
    table = tmp_path / "calls.csv"
    table.write_text("start,stop\n0.1,0.15\n0.5,0.52\n0.1,0.15\n0.1,0.16\n0.1,0.15\n")
    segments = read_segments(table, 125000.0)
    np.testing.assert_array_equal(segments.start_samples, [12500, 12500, 62500])
    np.testing.assert_array_equal(segments.stop_samples, [18750, 20000, 65000])
    assert segments.n_duplicates == 2
