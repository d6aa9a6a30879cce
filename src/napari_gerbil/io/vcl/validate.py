"""Validate a VCL dataset in full: structure, metadata, audio values and locations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.h5values import hdf5_errors
from napari_gerbil.io.vcl.read import _open_h5, _Structure

#: Default tolerance (mm) for locations slightly outside the arena walls.
LOCATION_TOLERANCE_MM = 10.0
#: Samples read at once when scanning audio for NaN/inf (bounded memory).
SCAN_CHUNK_SAMPLES = 1 << 20


def validate_vcl(
    path: str | os.PathLike,
    *,
    tolerance_mm: float = LOCATION_TOLERANCE_MM,
    require_locations: bool = True,
    chunk_samples: int = SCAN_CHUNK_SAMPLES,
) -> dict[str, Any]:
    """Check a VCL file completely; raise :class:`InvalidInputError` at the first problem.

    Checks dataset presence, shapes and dtypes, ``length_idx`` (starts at 0, strictly
    increasing — no zero-length calls —, ends at the audio length), finite audio and no
    all-zero call (read in chunks of ``chunk_samples``, bounded memory), finite locations
    inside the arena (when its size is known; ``tolerance_mm`` beyond the walls allowed),
    one microphone per channel and the node names.

    Returns
    -------
    dict
        Summary: n_calls, n_channels, total_samples, sample_rate_hz.
    """
    path = Path(path)
    with _open_h5(path) as f, hdf5_errors(path):
        s = _Structure(f, path)
        lidx, name = s.length_idx, s.length_idx_name
        total = s.audio.shape[0]
        if lidx[0] != 0:
            raise InvalidInputError(path, name, "first offset 0", f"{lidx[0]}")
        steps = np.diff(lidx)
        if (steps < 0).any():
            i = int(np.argmax(steps < 0))
            raise InvalidInputError(
                path,
                name,
                "non-decreasing offsets",
                f"{lidx[i + 1]} after {lidx[i]} at index {i + 1}",
            )
        if (steps == 0).any():
            i = int(np.argmax(steps == 0))
            raise InvalidInputError(
                path, name, "calls of at least one sample", f"zero-length call {i}"
            )
        if lidx[-1] != total:
            raise InvalidInputError(
                path,
                name,
                f"last offset == audio length {total} ({s.audio.name})",
                f"{lidx[-1]}",
            )
        heard = np.zeros(s.n_calls, dtype=bool)  # calls with a non-zero sample
        for start in range(0, total, chunk_samples):
            block = s.audio[start : start + chunk_samples]
            if s.audio.dtype.kind == "f":
                bad = ~np.isfinite(block)
                if bad.any():
                    row = start + int(np.argmax(bad.any(axis=1)))
                    raise InvalidInputError(
                        path, s.audio.name, "finite samples", f"NaN/inf at sample {row}"
                    )
            rows = start + np.flatnonzero((block != 0).any(axis=1))
            heard[np.searchsorted(lidx, rows, side="right") - 1] = True
        if s.n_calls and not heard.all():
            i = int(np.argmax(~heard))
            raise InvalidInputError(
                path,
                s.audio.name,
                "calls with sound (at least one non-zero sample)",
                f"call {i} silent (all zero, samples {lidx[i]}..{lidx[i + 1]}); "
                f"{int((~heard).sum())} silent calls",
            )
        if s.locations is None:
            if require_locations:
                raise InvalidInputError(
                    path, "/locations", "a dataset of call locations (mm)", "no such dataset"
                )
        else:
            check_locations(
                path, s.locations[()].astype(float), s.meta["arena_dims_mm"], tolerance_mm
            )
        return {
            "n_calls": s.n_calls,
            "n_channels": int(s.audio.shape[1]),
            "total_samples": int(total),
            "sample_rate_hz": s.meta["sample_rate_hz"],
        }


def check_locations(
    path: Path, loc: np.ndarray, dims: np.ndarray | None, tolerance_mm: float
) -> None:
    """Refuse NaN/inf locations and locations outside the arena, naming ``/locations``."""
    if not np.isfinite(loc).all():
        call = int(np.argmax(~np.isfinite(loc.reshape(len(loc), -1)).all(axis=1)))
        raise InvalidInputError(
            path, "/locations", "finite positions (mm)", f"NaN/inf at call {call}"
        )
    if dims is None or len(loc) == 0:
        return
    flat = loc.reshape(len(loc), -1, loc.shape[-1])
    half = dims[:2] / 2.0 + tolerance_mm
    outside = (np.abs(flat[..., :2]) > half).any(axis=(1, 2))
    if flat.shape[-1] == 3 and np.isfinite(dims[2]):
        z = flat[..., 2]
        outside |= ((z < -tolerance_mm) | (z > dims[2] + tolerance_mm)).any(axis=1)
    if outside.any():
        call = int(np.argmax(outside))
        raise InvalidInputError(
            path,
            "/locations",
            f"positions inside the arena {dims.tolist()} mm (+{tolerance_mm:g} mm), origin at "
            "the floor centre",
            f"call {call} at {np.round(flat[call], 1).tolist()} mm",
        )
