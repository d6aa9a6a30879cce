"""Truth files of simulated sessions (``<name>.truth.h5``): who emitted each call, from where.

:func:`~napari_gerbil.simulate.session.simulate_session` writes them; :func:`load_truth`
reads one back, checking every field.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import h5py
import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.h5values import hdf5_errors, strings
from napari_gerbil.simulate.stimuli import STIMULUS_CLASSES

TRUTH_FORMAT = "napari-gerbil-truth"


@dataclasses.dataclass
class SessionTruth:
    """Ground truth of a simulated session (see :func:`load_truth`).

    Attributes
    ----------
    animal
        (n_calls,) index of the emitting animal, calls in session order.
    emit_sample, start_sample, stop_sample
        (n_calls,) emission sample and the call's bounds in the session's table.
    source_mm
        (n_calls, 3) mouth (nose) position at emission.
    heading_rad
        (n_calls,) head direction at emission.
    stimulus_class
        (n_calls,) call classes.
    poses_mm
        (n_frames, n_animals, 4, 3) noise-free node positions, nodes as NODE_NAMES.
    animal_names
        Names of the animals (tracks).
    """

    animal: np.ndarray
    emit_sample: np.ndarray
    start_sample: np.ndarray
    stop_sample: np.ndarray
    source_mm: np.ndarray
    heading_rad: np.ndarray
    stimulus_class: list[str]
    poses_mm: np.ndarray
    animal_names: list[str]


_TRUTH_CALL_FIELDS = {  # name: (trailing shape, dtype kinds)
    "animal": ((), "iu"),
    "emit_sample": ((), "iu"),
    "start_sample": ((), "iu"),
    "stop_sample": ((), "iu"),
    "source_mm": ((3,), "f"),
    "heading_rad": ((), "f"),
    "stimulus_class": ((), "SOU"),
}


def _read_truth(f: h5py.File, path: Path) -> SessionTruth:
    """Read and check every field of an open truth file."""
    fmt = f.attrs.get("napari_gerbil_format")
    if fmt != TRUTH_FORMAT:
        raise InvalidInputError(path, "napari_gerbil_format", repr(TRUTH_FORMAT), repr(fmt))
    for name in ("animal_names", "node_names", "sample_rate_hz"):
        if name not in f.attrs:
            raise InvalidInputError(path, name, "a root attribute", "missing")
    animal_names = strings(path, "animal_names", f.attrs["animal_names"])
    node_names = strings(path, "node_names", f.attrs["node_names"])
    data = {}
    for name, (_, kinds) in {**_TRUTH_CALL_FIELDS, "poses_mm": ((), "f")}.items():
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset):
            raise InvalidInputError(path, f"/{name}", "a dataset", "missing")
        kind = "S" if h5py.check_string_dtype(ds.dtype) else ds.dtype.kind
        if kind not in kinds:
            raise InvalidInputError(path, f"/{name}", f"dtype kind in {kinds!r}", str(ds.dtype))
        data[name] = ds[()]
    n = len(data["animal"])
    for name, (shape, _) in _TRUTH_CALL_FIELDS.items():
        if data[name].shape != (n, *shape):
            raise InvalidInputError(
                path, f"/{name}", f"shape {(n, *shape)} (one row per call)", str(data[name].shape)
            )
    poses_shape = (len(animal_names), len(node_names), 3)
    if data["poses_mm"].ndim != 4 or data["poses_mm"].shape[1:] != poses_shape:
        raise InvalidInputError(
            path, "/poses_mm", f"(n_frames, *{poses_shape})", str(data["poses_mm"].shape)
        )
    animal = data["animal"]
    if n and (animal.min() < 0 or animal.max() >= len(animal_names)):
        raise InvalidInputError(
            path, "/animal", f"indices 0 .. {len(animal_names) - 1}", str(np.unique(animal))
        )
    emit, start, stop = data["emit_sample"], data["start_sample"], data["stop_sample"]
    for name, bad, expected in (
        ("emit_sample", (emit < 0).any() or (np.diff(emit) < 0).any(), "samples >= 0, in order"),
        ("start_sample", (start < emit).any(), "no earlier than emit_sample (sound travels)"),
        ("stop_sample", (stop <= start).any(), "later than start_sample"),
    ):
        if bad:
            raise InvalidInputError(path, f"/{name}", expected, f"{data[name][:5]} ...")
    for name in ("source_mm", "heading_rad"):
        if not np.isfinite(data[name]).all():
            raise InvalidInputError(path, f"/{name}", "finite values", "NaN/inf")
    classes = [s.decode() if isinstance(s, bytes) else str(s) for s in data["stimulus_class"]]
    unknown = sorted(set(classes) - set(STIMULUS_CLASSES))
    if unknown:
        raise InvalidInputError(path, "/stimulus_class", "stimulus classes", str(unknown[:3]))
    return SessionTruth(
        animal=animal,
        emit_sample=emit,
        start_sample=start,
        stop_sample=stop,
        source_mm=data["source_mm"],
        heading_rad=data["heading_rad"],
        stimulus_class=classes,
        poses_mm=data["poses_mm"],
        animal_names=animal_names,
    )


def load_truth(path: str | os.PathLike) -> SessionTruth:
    """Read a ``*.truth.h5`` file written by :func:`simulate_session` (checked throughout).

    Raises
    ------
    InvalidInputError
        Naming the field of a missing, misshapen or inconsistent entry.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(path, "<file>", "an existing truth file", "no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInputError(path, "<file>", "an HDF5 file", str(exc)) from None
    with f, hdf5_errors(path):  # a damaged file: one error naming it
        return _read_truth(f, path)
