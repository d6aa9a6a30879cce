"""The VCL layout's names: format marker and version, and the aliases older files use.

Datasets and attributes are found under any of their names (``/audio`` or
``/vocalizations``, ``sample_rate_hz`` or ``audio_sr`` ...); new files get the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import h5py

T = TypeVar("T")
FORMAT_NAME = "vcl"
FORMAT_VERSION = 1
AUDIO_NAMES = ("audio", "vocalizations")
LENGTH_IDX_NAMES = ("length_idx", "len_idx")
SAMPLE_RATE_ATTRS = ("sample_rate_hz", "sample_rate", "audio_sr", "fs")
ARENA_DIMS_ATTRS = ("arena_dims_mm", "arena_dims")
_STR = h5py.string_dtype("utf-8")


def _decode(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _find(f: h5py.File, names: Sequence[str]) -> h5py.Dataset | None:
    for name in names:
        obj = f.get(name)
        if isinstance(obj, h5py.Dataset):
            return obj
    return None


def _attr(f: h5py.File, names: Sequence[str]) -> Any:
    for name in names:
        if name in f.attrs:
            return f.attrs[name]
    return None


def _known(value: T | None) -> T:
    """``value``, checked by the caller not to be None."""
    assert value is not None
    return value
