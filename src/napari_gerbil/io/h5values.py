"""Checked conversions of values read from HDF5 attributes and datasets.

HDF5 lets any attribute hold any type: a sample rate may arrive as text, bytes, an
empty array or NaN. These helpers turn such values into the expected Python type or
raise :class:`~napari_gerbil.errors.InvalidInputError` naming the file and field.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from napari_gerbil.errors import GerbilError, InvalidInputError


def short(value: Any, limit: int = 80) -> str:
    """A one-line ``repr`` of ``value``, at most ``limit`` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(
    source: str | os.PathLike | None,
    field: str,
    value: Any,
    *,
    integer: bool = False,
    positive: bool = False,
    nonnegative: bool = False,
    finite: bool = True,
) -> float | int:
    """One number (a scalar or a 1-element array), checked.

    Parameters
    ----------
    integer
        Require an integral value (returned as ``int``).
    positive, nonnegative
        Require > 0 / >= 0.
    finite
        Refuse NaN and inf (NaN is allowed with ``finite=False``).
    """
    kind = "an integer" if integer else "a number"
    if positive:
        kind += " > 0"
    elif nonnegative:
        kind += " >= 0"
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub" or arr.size != 1:
        raise InvalidInputError(source, field, kind, short(value))
    v = arr.reshape(-1)[0]
    if arr.dtype.kind in "iub":
        v = int(v)
    else:
        v = float(v)
        if finite and not np.isfinite(v):
            raise InvalidInputError(source, field, f"{kind}, finite", short(value))
        if integer:
            if not (np.isfinite(v) and v == int(v)):
                raise InvalidInputError(source, field, kind, short(value))
            v = int(v)
    if isinstance(v, float) and np.isnan(v):
        return v
    if (positive and not v > 0) or (nonnegative and not v >= 0):
        raise InvalidInputError(source, field, kind, short(value))
    if integer and abs(v) >= 2**62:
        raise InvalidInputError(source, field, f"{kind} below 2**62", short(value))
    return v


def text(source: str | os.PathLike | None, field: str, value: Any) -> str:
    """A string (bytes decoded as UTF-8, undecodable bytes replaced); arrays refused."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.ndim == 0 and arr.dtype.kind in "SUO":
        return text(source, field, arr.item())
    raise InvalidInputError(source, field, "a string", short(value))


def strings(source: str | os.PathLike | None, field: str, value: Any) -> list[str]:
    """A 1-D array of strings as a list of str."""
    arr = np.asarray(value)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "SUO"):
        raise InvalidInputError(
            source, field, "a 1-D array of strings", f"shape {arr.shape}, dtype {arr.dtype}"
        )
    return [text(source, field, v) for v in arr.tolist()]


@contextlib.contextmanager
def hdf5_errors(source: str | os.PathLike | None) -> Iterator[None]:
    """Turn the errors of a damaged HDF5 file into one naming the file.

    h5py's OSError, RuntimeError and KeyError raised while reading become
    :class:`InvalidInputError`.
    """
    try:
        yield
    except GerbilError:
        raise
    except (OSError, RuntimeError, KeyError) as exc:
        raise InvalidInputError(
            source,
            "<file>",
            "an intact, readable HDF5 file",
            f"a damaged file ({type(exc).__name__}: {short(str(exc), 160)})",
        ) from None
