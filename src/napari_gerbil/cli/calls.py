"""``napari-gerbil detect`` and ``import-calls``: add calls to a session file.

``detect`` finds calls by band energy over the whole recording, read in chunks;
``import-calls`` reads a CSV/TSV table of start/stop seconds (DAS, USVSEG, Raven).
Calls overlapping one already in the session are skipped, so both can be run again.
The session file is updated atomically; an interrupted run changes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import finite_float, float_range
from napari_gerbil.cli._common import add_quiet

#: Longest gap or shortest call a user may ask for, in ms (a minute).
MAX_MS = 60_000.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``detect`` and ``import-calls`` subcommands."""
    d = subparsers.add_parser(
        "detect", help="detect calls in a session's audio", description=__doc__
    )
    d.add_argument("session", type=Path, help="session file (*.gerbil.h5), updated in place")
    d.add_argument(
        "--band-khz", type=float_range(0.0, 10_000.0), nargs=2, default=None,
        metavar=("LOW", "HIGH"), help="band of the calls (default: the detector's)",
    )  # fmt: skip
    d.add_argument("--threshold-db", type=finite_float, default=12.0, help="above the noise floor")
    d.add_argument("--min-duration-ms", type=float_range(0.0, MAX_MS), default=4.0)
    d.add_argument(
        "--max-gap-ms", type=float_range(0.0, MAX_MS), default=10.0, help="merge closer detections"
    )
    add_quiet(d)
    d.set_defaults(func=_detect)
    i = subparsers.add_parser(
        "import-calls", help="add the calls of a segments table to a session", description=__doc__
    )
    i.add_argument("session", type=Path, help="session file (*.gerbil.h5), updated in place")
    i.add_argument("table", type=Path, help="CSV/TSV with start and stop columns (seconds)")
    i.set_defaults(func=_import)


def _detect(args: argparse.Namespace) -> int:
    from napari_gerbil.pipeline import detect_session
    from napari_gerbil.progress import TqdmProgress
    from napari_gerbil.signal.detect import DetectorConfig

    band = DetectorConfig().band_hz if args.band_khz is None else args.band_khz
    config = DetectorConfig(
        band_hz=band if args.band_khz is None else (band[0] * 1000.0, band[1] * 1000.0),
        threshold_db=args.threshold_db,
        min_duration_s=args.min_duration_ms / 1000.0,
        max_gap_s=args.max_gap_ms / 1000.0,
    )
    with TqdmProgress("detect", disable=args.quiet) as bar:
        added = detect_session(args.session, config, progress=bar)
    print(f"added {added} calls to {args.session}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from napari_gerbil.pipeline import import_calls

    result = import_calls(args.session, args.table)
    print(
        f"added {result.n_added} calls to {args.session} "
        f"({result.n_duplicates} duplicate rows of {args.table} dropped)"
    )
    return 0
