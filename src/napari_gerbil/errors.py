"""Exceptions raised by napari-gerbil.

Every malformed input a user can hit raises :class:`InvalidInputError`, whose message
names the file, the field, what was expected and what was found.
"""

from __future__ import annotations

import os


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
        self.field = field
        self.expected = expected
        self.found = found
        self.hint = hint
        where = f"{self.source}: " if self.source else ""
        msg = f"{where}field '{field}': expected {expected}, found {found}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


class IncompatibleModelError(InvalidInputError):
    """A model cannot be applied to data (channels, sample rate or arena differ)."""
