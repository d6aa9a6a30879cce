"""Helpers shared by the session commands: the cage, the progress bar."""

from __future__ import annotations

import argparse

from napari_gerbil.io.arena import ArenaGeometry


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` (no progress bar)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve_cage(name_or_path: str) -> ArenaGeometry:
    """The geometry of the cage named by ``--cage``: a built-in name or a cage file."""
    from napari_gerbil.io.cage import load_cage

    return load_cage(name_or_path).arena()
