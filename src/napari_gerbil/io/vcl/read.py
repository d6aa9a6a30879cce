"""Read VCL datasets lazily: :class:`VCLDataset` (structure checked on open)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.compat import check_compatible
from napari_gerbil.io.h5values import hdf5_errors
from napari_gerbil.io.inputs import check_input_file
from napari_gerbil.io.vcl.names import (
    ARENA_DIMS_ATTRS,
    AUDIO_NAMES,
    FORMAT_VERSION,
    LENGTH_IDX_NAMES,
    SAMPLE_RATE_ATTRS,
    _attr,
    _decode,
    _find,
)


def _numbers(path: Path, field: str, value: Any, expected: str) -> np.ndarray:
    """``value`` as a float array; text or other non-numbers raise InvalidInputError."""
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"dtype {arr.dtype}")
        return arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(path, field, expected, f"{_short(value)} ({exc})") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _open_h5(path: Path) -> h5py.File:
    check_input_file(path, "<file>", "HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInputError(path, "<file>", "an HDF5 file", f"unreadable ({exc})") from None


class _Structure:
    """Datasets of an open VCL file, checked for presence, shapes and dtypes (cheap)."""

    def __init__(self, f: h5py.File, path: Path) -> None:
        audio = _find(f, AUDIO_NAMES)
        if audio is None:
            raise InvalidInputError(
                path, "/audio", "a dataset /audio (or /vocalizations)", "no such dataset"
            )
        if audio.ndim != 2 or audio.shape[1] < 1:
            raise InvalidInputError(
                path, audio.name, "shape (total_samples, n_channels)", f"shape {audio.shape}"
            )
        if audio.dtype.kind not in "fiu":
            raise InvalidInputError(path, audio.name, "numeric samples", f"dtype {audio.dtype}")
        lidx = _find(f, LENGTH_IDX_NAMES)
        if lidx is None:
            raise InvalidInputError(
                path, "/length_idx", "a dataset /length_idx (or /len_idx)", "no such dataset"
            )
        if lidx.ndim != 1 or lidx.shape[0] < 1:
            raise InvalidInputError(path, lidx.name, "shape (n_calls + 1,)", f"shape {lidx.shape}")
        if lidx.dtype.kind not in "iu":
            raise InvalidInputError(path, lidx.name, "integer offsets", f"dtype {lidx.dtype}")
        self.audio = audio
        self.length_idx_name = lidx.name
        raw_lidx = lidx[()]
        if raw_lidx.size and raw_lidx.dtype.kind == "u" and raw_lidx.max() > np.iinfo(np.int64).max:
            raise InvalidInputError(
                path, lidx.name, "offsets below 2**63", f"{int(raw_lidx.max())} (unsigned)"
            )
        self.length_idx = raw_lidx.astype(np.int64)
        self.n_calls = len(self.length_idx) - 1
        loc = f.get("locations")
        self.locations = loc if isinstance(loc, h5py.Dataset) else None
        self.locations_cache: np.ndarray | None = None
        loc = self.locations
        if loc is not None:
            if loc.ndim not in (2, 3, 4) or loc.shape[-1] not in (2, 3):
                raise InvalidInputError(
                    path,
                    "/locations",
                    "shape (n_calls, n_nodes, 2|3) or (n_calls, n_animals, n_nodes, 2|3)",
                    f"shape {loc.shape}",
                )
            if loc.shape[0] != self.n_calls:
                raise InvalidInputError(
                    path,
                    "/locations",
                    f"{self.n_calls} rows (one per call, from {lidx.name})",
                    f"{loc.shape[0]} rows",
                )
            if loc.dtype.kind not in "fiu":
                raise InvalidInputError(path, "/locations", "numeric (mm)", f"dtype {loc.dtype}")
        names = f.get("node_names")
        self.node_names: list[str] | None = None
        if isinstance(names, h5py.Dataset):
            if names.ndim != 1 or names.dtype.kind not in "SUO":
                raise InvalidInputError(
                    path,
                    "/node_names",
                    "a 1-D array of strings",
                    f"shape {names.shape}, dtype {names.dtype}",
                )
            self.node_names = [_decode(v) for v in names[()]]
        n_nodes = None if loc is None else (1 if loc.ndim == 2 else loc.shape[-2])
        if self.node_names is not None and n_nodes is not None and len(self.node_names) != n_nodes:
            raise InvalidInputError(
                path,
                "/node_names",
                f"{n_nodes} names (the node axis of /locations)",
                f"{len(self.node_names)} names",
            )
        if self.node_names is None:
            self.node_names = [f"node{i}" for i in range(n_nodes or 1)]
        stim = f.get("stimulus_class")
        self.stimulus_classes: list[str] | None = None
        if isinstance(stim, h5py.Dataset):
            if stim.shape != (self.n_calls,):
                raise InvalidInputError(
                    path, "/stimulus_class", f"shape ({self.n_calls},)", f"shape {stim.shape}"
                )
            self.stimulus_classes = [_decode(v) for v in stim[()]]
        self.meta = _read_metadata(f, path, audio.shape[1])


def _read_metadata(f: h5py.File, path: Path, n_channels: int) -> dict[str, Any]:
    """Our optional attributes, checked for shape when present."""
    version = f.attrs.get("format_version")
    if version is not None:
        v = np.asarray(version).reshape(-1)
        if v.shape != (1,) or v.dtype.kind not in "iuf" or not 1 <= v[0] <= FORMAT_VERSION:
            raise InvalidInputError(
                path,
                "format_version",
                f"a version this napari-gerbil reads (1 .. {FORMAT_VERSION})",
                _short(version),
                hint="A newer napari-gerbil wrote it: update napari-gerbil.",
            )
    sr = _attr(f, SAMPLE_RATE_ATTRS)
    if sr is not None:
        arr = _numbers(path, "sample_rate_hz", sr, "a positive rate (Hz)").reshape(-1)
        if arr.shape != (1,) or not (np.isfinite(arr[0]) and arr[0] > 0):
            raise InvalidInputError(path, "sample_rate_hz", "a positive rate (Hz)", _short(sr))
        sr = float(arr[0])
    dims = _attr(f, ARENA_DIMS_ATTRS)
    if dims is not None:
        dims = _numbers(path, "arena_dims_mm", dims, "3 positive lengths (mm)").reshape(-1)
        if len(dims) == 2:  # vocalocator stores (length, width)
            dims = np.r_[dims, np.nan]
        if dims.shape != (3,) or not (np.isfinite(dims[:2]).all() and (dims[:2] > 0).all()):
            raise InvalidInputError(
                path, "arena_dims_mm", "3 positive lengths (mm)", f"{dims.tolist()}"
            )
    mics = f.attrs.get("mic_positions_mm")
    if mics is None and isinstance(f.get("mic_positions_mm"), h5py.Dataset):
        mics = f["mic_positions_mm"][()]
    if mics is not None:
        mics = _numbers(path, "mic_positions_mm", mics, "shape (n_mics, 3) in mm")
        if mics.ndim != 2 or mics.shape[1] != 3:
            raise InvalidInputError(
                path, "mic_positions_mm", "shape (n_mics, 3)", f"shape {mics.shape}"
            )
        if len(mics) != n_channels:
            raise InvalidInputError(
                path,
                "mic_positions_mm",
                f"one microphone per audio channel ({n_channels})",
                f"{len(mics)} microphones",
            )
        if not np.isfinite(mics).all():
            raise InvalidInputError(path, "mic_positions_mm", "finite positions (mm)", "NaN/inf")
    provenance: dict[str, Any] = {}
    if "provenance" in f.attrs:
        try:
            provenance = json.loads(_decode(f.attrs["provenance"]))
        except json.JSONDecodeError as exc:
            raise InvalidInputError(path, "provenance", "a JSON object", str(exc)) from None
        if not isinstance(provenance, dict):
            raise InvalidInputError(path, "provenance", "a JSON object", type(provenance).__name__)
    scenario = f.attrs.get("scenario")
    fmt = f.attrs.get("napari_gerbil_format")
    return {
        "format": None if fmt is None else f"{_decode(fmt)} v{f.attrs.get('format_version', '?')}",
        "sample_rate_hz": sr,
        "arena_dims_mm": dims,
        "mic_positions_mm": mics,
        "scenario": (_decode(scenario) or None) if scenario is not None else None,
        "provenance": provenance,
    }


class VCLDataset:
    """Lazy, picklable reader of a VCL training dataset.

    The HDF5 file is opened on first access in each process (so torch DataLoader
    workers each open their own handle); pickling drops the handle.

    Parameters
    ----------
    path
        The ``.h5`` file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._s: _Structure | None = None
        self._pid: int | None = None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def _struct(self) -> _Structure:
        if self._s is None or self._pid != os.getpid():
            self._file = _open_h5(self.path)
            try:
                with hdf5_errors(self.path):
                    self._s = _Structure(self._file, self.path)
            except BaseException:
                self._file.close()
                self._file = None
                raise
            self._pid = os.getpid()
        return self._s

    def close(self) -> None:
        """Close the file handle (reopened on next access)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._s, self._pid = None, None, None

    def __enter__(self) -> VCLDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"VCLDataset({str(self.path)!r})"

    # -- shape -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._struct.n_calls

    @property
    def n_calls(self) -> int:
        """Number of calls."""
        return self._struct.n_calls

    @property
    def n_channels(self) -> int:
        """Number of audio channels (microphones)."""
        return int(self._struct.audio.shape[1])

    @property
    def total_samples(self) -> int:
        """Length of the concatenated audio."""
        return int(self._struct.audio.shape[0])

    @property
    def length_idx(self) -> np.ndarray:
        """(n_calls + 1,) int64 offsets of the calls in the audio."""
        return self._struct.length_idx.copy()

    @property
    def call_lengths_samples(self) -> np.ndarray:
        """(n_calls,) number of samples of each call."""
        return np.diff(self._struct.length_idx)

    # -- metadata ----------------------------------------------------------------------
    @property
    def sample_rate_hz(self) -> float | None:
        """Sample rate in Hz, None when the file does not say."""
        return self._struct.meta["sample_rate_hz"]

    @property
    def arena_dims_mm(self) -> np.ndarray | None:
        """(3,) arena length, width, height in mm (height NaN if only 2 given), or None."""
        dims = self._struct.meta["arena_dims_mm"]
        return None if dims is None else dims.copy()

    @property
    def mic_positions_mm(self) -> np.ndarray | None:
        """(n_mics, 3) microphone positions in mm, or None."""
        mics = self._struct.meta["mic_positions_mm"]
        return None if mics is None else mics.copy()

    @property
    def file_format(self) -> str | None:
        """``"vcl v1"`` for files we wrote, None for plain vocalocator files."""
        return self._struct.meta["format"]

    @property
    def scenario(self) -> str | None:
        """Name of the scenario the calls come from (e.g. ``"speaker"``), or None."""
        return self._struct.meta["scenario"]

    @property
    def provenance(self) -> dict[str, Any]:
        """Free-form provenance (what made the file), empty if unknown."""
        return dict(self._struct.meta["provenance"])

    @property
    def node_names(self) -> list[str]:
        """Names of the tracked nodes (``node0..`` when the file has none)."""
        return list(self._struct.node_names or [])

    @property
    def stimulus_classes(self) -> list[str] | None:
        """(n_calls,) stimulus class of each call, or None."""
        s = self._struct.stimulus_classes
        return None if s is None else list(s)

    @property
    def has_locations(self) -> bool:
        """Whether the file has ``/locations`` (unlabelled datasets do not)."""
        return self._struct.locations is not None

    @property
    def is_multi_animal(self) -> bool:
        """Whether locations are (n, n_animals, n_nodes, dims)."""
        loc = self._struct.locations
        return loc is not None and loc.ndim == 4

    @property
    def locations_mm(self) -> np.ndarray | None:
        """Locations as stored, float64, or None when the file has none.

        (n, n_nodes, 2|3) or (n, n_animals, n_nodes, 2|3); old (n, 2|3) files are
        returned as (n, 1, 2|3).
        """
        s = self._struct
        if s.locations is None:
            return None
        if s.locations_cache is None:  # small (n_calls x nodes x dims): read once
            with hdf5_errors(self.path):
                arr = s.locations[()].astype(np.float64)
            s.locations_cache = arr[:, None, :] if arr.ndim == 2 else arr
        return s.locations_cache.copy()

    def _node_index(self, node: int | str) -> int:
        names = self._struct.node_names or []
        if isinstance(node, str):
            if node not in names:
                raise InvalidInputError(
                    self.path, "/node_names", f"a node named {node!r}", str(names)
                )
            return names.index(node)
        if not 0 <= node < len(names):
            raise InvalidInputError(self.path, "node", f"an index below {len(names)}", str(node))
        return int(node)

    def source_xy_mm(self, node: int | str = 0) -> np.ndarray:
        """(n_calls, 2) source (x, y) in mm of a single-animal file, from ``node``."""
        loc = self.locations_mm
        if loc is None:
            raise InvalidInputError(self.path, "/locations", "a locations dataset", "none")
        if loc.ndim == 4:
            raise InvalidInputError(
                self.path,
                "/locations",
                "single-animal locations (n, n_nodes, dims)",
                f"multi-animal shape {loc.shape}",
            )
        return loc[:, self._node_index(node), :2].copy()

    # -- audio -------------------------------------------------------------------------
    def call_audio(self, index: int, max_samples: int | None = None) -> np.ndarray:
        """Audio of call ``index`` as float32 (n_samples, n_channels).

        With ``max_samples``, only the centred window of that many samples of a longer
        call is read (what a model sees after its centre crop).
        """
        s = self._struct
        if not -s.n_calls <= index < s.n_calls:
            raise IndexError(f"call {index} out of range for {s.n_calls} calls")
        index %= s.n_calls
        start, stop = int(s.length_idx[index]), int(s.length_idx[index + 1])
        if max_samples is not None and stop - start > max_samples:
            start += (stop - start - max_samples) // 2
            stop = start + max_samples
        with hdf5_errors(self.path):
            return np.asarray(s.audio[start:stop], dtype=np.float32)

    def check_compatible(
        self,
        *,
        n_channels: int | None = None,
        sample_rate_hz: float | None = None,
        arena_dims_mm: Any = None,
        what: str = "model",
    ) -> None:
        """Raise :class:`InvalidInputError` if the data cannot go with ``what``.

        Checks the channel count, and the sample rate and arena size when both sides
        know them (relative tolerance 1e-6 and 1 mm).
        """
        check_compatible(
            self.path,
            n_channels=self.n_channels,
            sample_rate_hz=self.sample_rate_hz,
            arena_dims_mm=self.arena_dims_mm,
            expected_n_channels=n_channels,
            expected_sample_rate_hz=sample_rate_hz,
            expected_arena_dims_mm=arena_dims_mm,
            what=what,
        )
