"""``napari-gerbil demo``: open the review window on a session with the demo ensemble."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from napari_gerbil.cli._args import int_range


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="open napari on a session (default: the synthetic sample) and localize calls",
        description=(
            "Open napari with a session (default: a small synthetic session built on first "
            "use) and the demo ensemble (built on first use), localize the first calls and "
            "show the review widgets. With --screenshot, save the window once the first "
            "95%% confidence set is drawn, then exit. Needs a display (use xvfb-run)."
        ),
    )
    p.add_argument("--session", type=Path, default=None, help="session file (*.gerbil.h5)")
    p.add_argument("--model", type=Path, default=None, help="ensemble directory")
    p.add_argument("--screenshot", type=Path, default=None, help="save a PNG and exit")
    p.add_argument(
        "--calls", type=int_range(1, 100_000), default=12, help="calls to localize (default 12)"
    )
    p.set_defaults(func=_demo_command)


def check_demo_arguments(args: argparse.Namespace) -> None:
    """Check the files and the display before Qt starts (Qt aborts the process)."""
    from napari_gerbil.errors import InvalidInputError
    from napari_gerbil.io.inputs import check_input_file
    from napari_gerbil.io.outputs import check_output_path
    from napari_gerbil.io.session import is_session_file

    if args.session is not None:
        check_input_file(args.session, "--session", "session file")
        if not is_session_file(args.session):
            raise InvalidInputError(
                args.session, "napari_gerbil_format", "a session file (*.gerbil.h5)", "another file"
            )
    if args.model is not None:
        from napari_gerbil.model.ensemble import read_manifest

        if not Path(args.model).is_dir():
            raise InvalidInputError(args.model, "--model", "a model directory", "not a folder")
        read_manifest(args.model)
    if args.screenshot is not None:
        check_output_path(args.screenshot, overwrite=True, field="--screenshot")
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal", "vnc"))
    )
    if headless:
        raise InvalidInputError(
            None,
            "display",
            "a display (DISPLAY or WAYLAND_DISPLAY set)",
            "none",
            hint="Run it under a virtual display: xvfb-run napari-gerbil demo ...",
        )


def _demo_command(args: argparse.Namespace) -> int:
    check_demo_arguments(args)
    from napari_gerbil._napari._demo import run_demo

    return run_demo(args.session, args.model, args.screenshot, n_calls=args.calls)
