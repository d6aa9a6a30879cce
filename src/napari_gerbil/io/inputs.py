"""Input path rule shared by every command (docs/safety.md).

:func:`check_input_file`: an input is an existing regular file (a FIFO or a device
would block a reader forever; a folder is not a file). Below every reader (audio,
sessions, datasets) and below :mod:`napari_gerbil.io.outputs`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from napari_gerbil.errors import InvalidInputError


def file_kind(mode: int) -> str:
    """What a ``stat`` mode is, for messages: ``"a FIFO (named pipe)"``, ``"a file"``, ..."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a file"
    return "a special file"


def check_input_file(path: str | os.PathLike, field: str = "<file>", what: str = "file") -> Path:
    """Return ``path`` if it is an existing regular file; raise InvalidInputError otherwise.

    Parameters
    ----------
    path
        The input.
    field
        The option or dataset naming it (for the message).
    what
        What the file should be, e.g. ``"VCL dataset"``.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InvalidInputError(path, field, f"an existing {what}", "no such file") from None
    except OSError as exc:
        raise InvalidInputError(
            path, field, f"a readable {what}", f"unreadable ({exc.strerror})"
        ) from None
    if not stat.S_ISREG(mode):
        raise InvalidInputError(path, field, f"a regular {what}", file_kind(mode))
    return path
