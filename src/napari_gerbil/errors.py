"""Exceptions raised by napari-gerbil.

Every malformed input a user can hit raises :class:`InvalidInputError`, whose message
names the file, the field, what was expected and what was found.
"""

from __future__ import annotations

import os


def _one_line(text: object, limit: int = 400) -> str:
    """``text`` on one line (a message is printed as one line), at most ``limit`` chars."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class GerbilError(Exception):
    """Base class of all napari-gerbil errors."""


class InvalidInputError(GerbilError, ValueError):
    """A file, array or argument does not have the expected content.

    Parameters
    ----------
    source
        The file (path) or object the problem was found in.
    field
        The dataset, attribute, column or argument at fault (e.g. ``"/length_idx"``).
    expected
        What a valid value looks like.
    found
        What was actually there.
    hint
        Optional advice on how to fix it.
    """

    def __init__(
        self,
        source: str | os.PathLike | None,
        field: str,
        expected: str,
        found: str,
        hint: str | None = None,
    ) -> None:
        self.source = None if source is None else str(source)
        self.field = _one_line(field)
        self.expected = _one_line(expected)
        self.found = _one_line(found)
        self.hint = None if hint is None else _one_line(hint)
        where = f"{self.source}: " if self.source else ""
        msg = f"{where}field '{self.field}': expected {self.expected}, found {self.found}"
        if self.hint:
            msg += f". {self.hint}"
        super().__init__(msg)


class IncompatibleModelError(InvalidInputError):
    """A model cannot be applied to data (channels, sample rate or arena differ)."""
