"""Import call segments from CSV tables (DAS, USVSEG, DeepSqueak/Raven style)."""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from napari_gerbil.errors import InvalidInputError

#: Accepted (start, stop) column names in seconds, compared case-insensitively.
START_COLUMNS = ("start_seconds", "start_s", "start", "onset", "begin time (s)", "begin_time")
STOP_COLUMNS = ("stop_seconds", "stop_s", "stop", "end", "offset", "end time (s)", "end_time")


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


#: Sample indices are int64; times beyond this would wrap around.
MAX_SAMPLE = 2**62


#: Raven's selection number: one selection is listed once per view (spectrogram, waveform).
SELECTION_COLUMNS = ("selection",)


@dataclasses.dataclass
class Segments:
    """Calls of a segments table, duplicates removed.

    Attributes
    ----------
    start_samples, stop_samples
        (n_calls,) int64, sorted by start.
    n_duplicates
        Rows dropped: a Raven selection listed again in another view, or a row
        repeating another's start and stop exactly.
    """

    start_samples: np.ndarray
    stop_samples: np.ndarray
    n_duplicates: int


def read_segments_csv(
    path: str | os.PathLike, sample_rate_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Call start/stop samples of a CSV or TSV table, duplicates removed.

    :func:`read_segments` without the count of dropped rows.
    """
    segments = read_segments(path, sample_rate_hz)
    return segments.start_samples, segments.stop_samples


def read_segments(path: str | os.PathLike, sample_rate_hz: float) -> Segments:
    """Read call start/stop times (seconds) from a CSV or TSV table.

    Recognised columns: start ``start_seconds``/``start``/``onset``/``Begin Time (s)``
    and stop ``stop_seconds``/``stop``/``end``/``offset``/``End Time (s)``. A Raven
    table's ``Selection`` appears once per view: only its first row counts. Rows
    repeating a call exactly (same start and stop sample) count once.
    """
    from napari_gerbil.io.inputs import check_input_file

    path = check_input_file(path, "<file>", "CSV file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            path, "<file>", "a UTF-8 text table", f"undecodable bytes at offset {exc.start}"
        ) from None
    except OSError as exc:
        raise InvalidInputError(path, "<file>", "a readable CSV file", str(exc)) from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InvalidInputError(path, "<header>", "a header row", "an empty file")
    delimiter = "\t" if lines[0].count("\t") > lines[0].count(",") else ","
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = rows[0]
    i_start, i_stop = _column(header, START_COLUMNS), _column(header, STOP_COLUMNS)
    if i_start is None or i_stop is None:
        raise InvalidInputError(
            path,
            "<header>",
            f"start column {START_COLUMNS} and stop column {STOP_COLUMNS}",
            repr(header),
        )
    i_selection = _column(header, SELECTION_COLUMNS)
    seen_selections: set[str] = set()
    n_views = 0
    starts, stops = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if i_selection is not None and i_selection < len(row):
            selection = row[i_selection].strip()
            if selection in seen_selections:
                n_views += 1
                continue
            seen_selections.add(selection)
        try:
            start_s, stop_s = float(row[i_start]), float(row[i_stop])
        except (ValueError, IndexError):
            raise InvalidInputError(
                path, f"line {line_no}", "numeric start and stop seconds", repr(row)
            ) from None
        if not (np.isfinite(start_s) and np.isfinite(stop_s) and 0 <= start_s < stop_s):
            raise InvalidInputError(
                path, f"line {line_no}", "0 <= start < stop (seconds)", f"{start_s}, {stop_s}"
            )
        if stop_s * sample_rate_hz >= MAX_SAMPLE:
            raise InvalidInputError(
                path,
                f"line {line_no}",
                f"times below {MAX_SAMPLE / sample_rate_hz:.3g} s (sample index fits 63 bits)",
                f"{stop_s} s",
            )
        starts.append(start_s)
        stops.append(stop_s)
    start_samples = np.round(np.asarray(starts) * sample_rate_hz).astype(np.int64)
    stop_samples = np.round(np.asarray(stops) * sample_rate_hz).astype(np.int64)
    short = stop_samples <= start_samples
    if short.any():
        i = int(np.argmax(short))
        raise InvalidInputError(
            path,
            f"line {i + 2}",
            f"calls at least one sample long at {sample_rate_hz:g} Hz",
            f"{starts[i]} .. {stops[i]} s",
        )
    pairs = np.stack([start_samples, stop_samples], axis=1).reshape(-1, 2)
    unique = np.unique(pairs, axis=0)  # sorted by start, then stop
    n_repeated = len(pairs) - len(unique)
    return Segments(unique[:, 0].copy(), unique[:, 1].copy(), n_views + n_repeated)
