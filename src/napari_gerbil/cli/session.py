"""``napari-gerbil session create``: a session file from a recording.

The session references the audio (one HDF5 dataset, one multichannel WAV or one WAV
per microphone), optionally the video and the SLEAP poses, and holds the cage geometry.
With poses, give the 4 arena floor corners on the video as ``--corners-px R C R C R C
R C`` (napari row, col pixels, in the order (-x, -y), (+x, -y), (+x, +y), (-x, +y)).
Then add calls (``detect`` / ``import-calls``), ``localize`` them and review.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import UniqueValues, add_overwrite, finite_float, float_range
from napari_gerbil.cli._common import resolve_cage


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``session`` subcommand group."""
    p = subparsers.add_parser(
        "session",
        help="create a session file from a recording",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="session_command", metavar="ACTION", required=True)
    c = sub.add_parser(
        "create", help="create a session file", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    c.add_argument(
        "--audio", type=Path, nargs="+", required=True, action=UniqueValues,
        help="HDF5 audio, one multichannel WAV, or one WAV per microphone",
    )  # fmt: skip
    c.add_argument("--audio-dataset", default="audio", help="HDF5 dataset of the audio")
    c.add_argument(
        "--sample-rate",
        type=float_range(0.0, 1e8, low_open=True),
        default=None,
        help="Hz, if not in the file",
    )
    c.add_argument("--video", type=Path, default=None, help="the video of the session")
    c.add_argument("--poses", type=Path, default=None, help="SLEAP .slp or analysis .h5")
    c.add_argument(
        "--cage", required=True, help="a built-in cage name (`cage list`) or a cage file"
    )
    c.add_argument(
        "--corners-px", type=finite_float, nargs=8, default=None,
        metavar=("R0", "C0", "R1", "C1", "R2", "C2", "R3", "C3"),
        help="the 4 arena floor corners on the video (row col each)",
    )  # fmt: skip
    c.add_argument(
        "--animal-names", nargs="+", default=None, action=UniqueValues, help="one per pose track"
    )
    c.add_argument(
        "--video-offset", type=finite_float, default=0.0, help="audio time of frame 0 (s)"
    )
    c.add_argument("--out", type=Path, required=True, help="session file (*.gerbil.h5)")
    add_overwrite(c)
    c.set_defaults(func=_create)


def _create(args: argparse.Namespace) -> int:
    import numpy as np

    from napari_gerbil.io.outputs import check_output_path
    from napari_gerbil.io.session_create import create_session

    out = check_output_path(
        args.out, overwrite=args.overwrite, inputs=[*args.audio, args.video, args.poses]
    )
    cage = resolve_cage(args.cage)
    corners = None if args.corners_px is None else np.reshape(args.corners_px, (4, 2))
    path = create_session(
        args.audio if len(args.audio) > 1 else args.audio[0],
        args.video,
        args.poses,
        corners,
        out,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
        animal_names=args.animal_names,
        audio_dataset=args.audio_dataset,
        sample_rate_hz=args.sample_rate,
        video_offset_s=args.video_offset,
        overwrite=args.overwrite,
    )
    print(f"session {path}")
    return 0
