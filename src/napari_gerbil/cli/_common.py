"""Helpers shared by the session commands: output checks, the cage, the progress bar."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry


def check_output(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None],
    overwrite: bool,
    flag: str = "--out",
) -> Path:
    """Refuse an output that is one of the inputs, or exists without ``--overwrite``.

    A session file with reviewed calls is never replaced, ``--overwrite`` or not.
    Called before any work, so a refused command costs nothing. Returns ``out``.
    """
    out = Path(out)
    for path in inputs:
        if path is not None and Path(path).absolute().resolve() == out.absolute().resolve():
            raise InvalidInputError(
                out, flag, "a file other than the command's inputs", f"the input {path}"
            )
    if out.exists() and not overwrite:
        raise InvalidInputError(
            out, flag, "a path that does not exist yet", "an existing file",
            hint="Pass --overwrite to replace it.",
        )  # fmt: skip
    if out.exists() and _holds_user_reviews(out):
        raise InvalidInputError(
            out, flag, "a file that holds no reviewed calls", "a session with user reviews",
            hint="Choose another output; user work is never overwritten.",
        )  # fmt: skip
    return out


def _holds_user_reviews(path: Path) -> bool:
    """Whether ``path`` is a session file in which a person reviewed calls."""
    from napari_gerbil.io.session import NOT_REVIEWED, is_session_file, load_session

    if not is_session_file(path):
        return False
    try:
        return bool((load_session(path).user.animal != NOT_REVIEWED).any())
    except InvalidInputError:
        return True  # unreadable: treat as precious


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` (no progress bar)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve_cage(name_or_path: str) -> ArenaGeometry:
    """The geometry of the cage named by ``--cage``: a built-in name or a cage file."""
    from napari_gerbil.io.cage import load_cage

    return load_cage(name_or_path).arena()
