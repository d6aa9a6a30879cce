"""``napari-gerbil demo``: open the review window on a session with the demo ensemble."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--calls", type=int, default=12, help="calls to localize (default 12)")
    p.set_defaults(func=_demo_command)


def _demo_command(args: argparse.Namespace) -> int:
    from napari_gerbil._napari._demo import run_demo

    return run_demo(args.session, args.model, args.screenshot, n_calls=args.calls)
