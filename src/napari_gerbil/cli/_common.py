"""Helpers shared by the commands: the cage, the progress bar, the model (`demo`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` (no progress bar)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _entry(name: str) -> str:
    """``folder ./NAME`` or ``file ./NAME``: what a local name is (for messages)."""
    return f"{'folder' if os.path.isdir(name) else 'file'} ./{name}"


def resolve_cage(name_or_path: str) -> ArenaGeometry:
    """The geometry of the cage named by ``--cage``: a built-in name or a cage file."""
    from napari_gerbil.io.cage import load_cage

    return load_cage(name_or_path).arena()


def resolve_model_dir(model: str | os.PathLike, quiet: bool = False) -> Path:
    """The model directory named by ``--model``; ``demo`` builds the demo ensemble once.

    ``demo`` while the current folder holds an entry named ``demo`` is ambiguous and
    refused: ``--model ./demo`` takes the folder, ``--model builtin:demo`` the demo.
    """
    if str(model) == "demo" and os.path.lexists("demo"):
        raise InvalidInputError(
            None, "--model", "one model",
            f"'demo' names both the built-in demo ensemble and the local {_entry('demo')}",
            hint="Pass --model ./demo for the local one, or --model builtin:demo for the "
            "built-in demo ensemble.",
        )  # fmt: skip
    if str(model) in ("demo", "builtin:demo"):
        from napari_gerbil.model.manifest import is_model_dir
        from napari_gerbil.progress import TqdmProgress
        from napari_gerbil.training.demo import demo_model_dir, ensure_demo_ensemble

        if is_model_dir(demo_model_dir()):
            return demo_model_dir()
        with TqdmProgress("building the demo ensemble (once)", disable=quiet) as bar:
            return ensure_demo_ensemble(progress=bar)
    return Path(model)
