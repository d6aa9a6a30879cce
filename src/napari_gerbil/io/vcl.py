"""VCL training datasets: the HDF5 layout vocalocator reads and writes.

Layout (see docs/formats.md):

- ``/audio`` (total_samples, n_channels): all calls concatenated on axis 0
  (older files: ``/vocalizations``).
- ``/length_idx`` (n_calls + 1,) int: call i is ``audio[length_idx[i]:length_idx[i+1]]``
  (older files: ``/len_idx``).
- ``/locations`` (n_calls, n_nodes, 2|3) or (n_calls, n_animals, n_nodes, 2|3) in mm,
  origin at the arena floor centre. Optional (unlabelled calls).
- ``/node_names`` (n_nodes,) bytes.

Our additions, never required on read and always written: root attributes
``napari_gerbil_format = "vcl"``, ``sample_rate_hz``, ``arena_dims_mm``,
``mic_positions_mm``, ``scenario``, ``provenance`` (JSON) and the dataset
``/stimulus_class`` (n_calls,) of strings.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import WriteGuard, atomic_path, close_h5_for_write, open_h5_for_write
from napari_gerbil.io.compat import check_compatible
from napari_gerbil.io.h5values import hdf5_errors
from napari_gerbil.io.inputs import check_input_file

T = TypeVar("T")
FORMAT_NAME = "vcl"
FORMAT_VERSION = 1
AUDIO_NAMES = ("audio", "vocalizations")
LENGTH_IDX_NAMES = ("length_idx", "len_idx")
SAMPLE_RATE_ATTRS = ("sample_rate_hz", "sample_rate", "audio_sr", "fs")
ARENA_DIMS_ATTRS = ("arena_dims_mm", "arena_dims")
#: Default tolerance (mm) for locations slightly outside the arena walls.
LOCATION_TOLERANCE_MM = 10.0
#: Samples per HDF5 chunk of the audio dataset written by :class:`VCLWriter`.
AUDIO_CHUNK_SAMPLES = 16384
#: Samples read at once when scanning audio for NaN/inf (bounded memory).
SCAN_CHUNK_SAMPLES = 1 << 20
_STR = h5py.string_dtype("utf-8")


def _decode(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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


class VCLWriter:
    """Stream calls into a new VCL file; committed atomically by :meth:`close`.

    Data go to a temporary file next to ``path``; :meth:`close` renames it over
    ``path``. If the ``with`` block raises (or :meth:`abort` is called) nothing is left.

    Parameters
    ----------
    path
        Output file.
    n_channels
        Audio channels of every call.
    node_names
        Names of the location nodes; the location of each call is
        (n_nodes, dims) or (n_animals, n_nodes, dims).
    sample_rate_hz, arena_dims_mm, mic_positions_mm
        Recording metadata (stored as root attributes).
    scenario, provenance
        Where the calls come from.
    audio_dtype
        Storage dtype of the audio (float32 default).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_channels: int,
        *,
        node_names: Sequence[str],
        sample_rate_hz: float,
        arena_dims_mm: Any,
        mic_positions_mm: Any,
        scenario: str | None = None,
        provenance: dict[str, Any] | None = None,
        audio_dtype: Any = np.float32,
        buffer_samples: int = 1 << 20,
    ) -> None:
        self.path = Path(path)
        self.n_channels = int(n_channels)
        self.node_names = [str(n) for n in node_names]
        self._loc_shape: tuple[int, ...] | None = None
        self._buffer_samples = int(buffer_samples)
        self._buf_audio: list[np.ndarray] = []
        self._buf_loc: list[np.ndarray] = []
        self._buf_stim: list[str] = []
        self._buffered = 0
        self._any_stim = False
        self.n_calls = 0
        self._total = 0
        mics = np.asarray(mic_positions_mm, dtype=float)
        if mics.ndim != 2 or mics.shape != (self.n_channels, 3):
            raise InvalidInputError(
                None,
                "mic_positions_mm",
                f"shape ({self.n_channels}, 3): one mic per channel",
                f"shape {mics.shape}",
            )
        dims = np.asarray(arena_dims_mm, dtype=float).reshape(-1)
        if dims.shape != (3,):
            raise InvalidInputError(None, "arena_dims_mm", "3 lengths (mm)", f"{dims.tolist()}")
        if not float(sample_rate_hz) > 0:
            raise InvalidInputError(None, "sample_rate_hz", "a positive rate", str(sample_rate_hz))
        self._loc: h5py.Dataset | None = None
        self._f: h5py.File | None = None
        self._guard: WriteGuard | None = None
        self._cm: Any = atomic_path(self.path, suffix=".h5.tmp")
        tmp = self._cm.__enter__()
        try:
            self._f, self._guard = open_h5_for_write(tmp)  # a full disk: a clean error
            self._create(self._f, sample_rate_hz, dims, mics, scenario, provenance, audio_dtype)
        except BaseException as exc:
            self.abort(type(exc), exc, exc.__traceback__)
            raise

    def _create(self, f, sample_rate_hz, dims, mics, scenario, provenance, audio_dtype) -> None:
        f.attrs["napari_gerbil_format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["sample_rate_hz"] = float(sample_rate_hz)
        f.attrs["arena_dims_mm"] = dims
        f.attrs["mic_positions_mm"] = mics
        f.attrs["scenario"] = scenario or ""
        f.attrs["provenance"] = json.dumps(provenance or {}, sort_keys=True, default=str)
        self._audio = f.create_dataset(
            "audio",
            (0, self.n_channels),
            dtype=audio_dtype,
            maxshape=(None, self.n_channels),
            chunks=(AUDIO_CHUNK_SAMPLES, self.n_channels),
        )
        self._lidx = f.create_dataset(
            "length_idx", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(4096,)
        )
        f.create_dataset("node_names", data=np.array([n.encode() for n in self.node_names]))
        self._stim = f.create_dataset(
            "stimulus_class", (0,), dtype=_STR, maxshape=(None,), chunks=(4096,)
        )

    def __enter__(self) -> VCLWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc_type, exc, tb)

    def _check_location(self, location_mm: Any) -> np.ndarray:
        loc = np.asarray(location_mm, dtype=np.float64)
        if loc.ndim == 1:
            loc = loc[None, :]
        if (
            loc.ndim not in (2, 3)
            or loc.shape[-2] != len(self.node_names)
            or loc.shape[-1]
            not in (
                2,
                3,
            )
        ):
            raise InvalidInputError(
                self.path,
                "location_mm",
                f"shape ({len(self.node_names)}, 2|3) or (n_animals, {len(self.node_names)}, 2|3)",
                f"shape {loc.shape}",
            )
        if self._loc_shape is None:
            self._loc_shape = loc.shape
        elif loc.shape != self._loc_shape:
            raise InvalidInputError(
                self.path,
                "location_mm",
                f"shape {self._loc_shape} like the first call",
                f"shape {loc.shape}",
            )
        return loc

    def append(self, audio: Any, location_mm: Any, stimulus_class: str | None = None) -> None:
        """Add one call: ``audio`` (n_samples, n_channels), its location in mm."""
        if self._f is None:
            raise RuntimeError("VCLWriter is closed")
        arr = np.asarray(audio)
        if arr.ndim != 2 or arr.shape[1] != self.n_channels or arr.shape[0] < 1:
            raise InvalidInputError(
                self.path,
                "audio",
                f"a non-empty (n_samples, {self.n_channels}) array",
                f"shape {arr.shape}",
            )
        if not np.isfinite(arr).all():
            raise InvalidInputError(self.path, "audio", "finite samples", "NaN or inf")
        self._buf_audio.append(arr)
        self._buf_loc.append(self._check_location(location_mm))
        self._buf_stim.append("" if stimulus_class is None else str(stimulus_class))
        self._any_stim |= stimulus_class is not None
        self._buffered += len(arr)
        self.n_calls += 1
        if self._buffered >= self._buffer_samples:
            self._flush()

    def _flush(self) -> None:
        if not self._buf_audio:
            return
        block = np.concatenate(self._buf_audio, axis=0)
        ends = self._total + np.cumsum([len(a) for a in self._buf_audio])
        n0, k = len(self._lidx) - 1, len(self._buf_audio)
        self._audio.resize(self._total + len(block), axis=0)
        self._audio[self._total :] = block
        self._lidx.resize(n0 + k + 1, axis=0)
        self._lidx[n0 + 1 :] = ends
        if self._loc is None:
            assert self._loc_shape is not None
            assert self._f is not None
            self._loc = self._f.create_dataset(
                "locations",
                (0, *self._loc_shape),
                dtype=np.float64,
                maxshape=(None, *self._loc_shape),
                chunks=(1024, *self._loc_shape),
            )
        self._loc.resize(n0 + k, axis=0)
        self._loc[n0:] = np.stack(self._buf_loc)
        self._stim.resize(n0 + k, axis=0)
        self._stim[n0:] = self._buf_stim
        self._total += len(block)
        self._buf_audio, self._buf_loc, self._buf_stim, self._buffered = [], [], [], 0
        assert self._guard is not None
        self._guard.check()  # the disk filled up: stop now (abort() discards the file)

    def close(self) -> None:
        """Write what is buffered and commit the file atomically."""
        if self._f is None:
            return
        try:
            self._flush()
            if self._loc is None:  # no calls: an empty but well-formed locations dataset
                self._f.create_dataset("locations", data=np.zeros((0, len(self.node_names), 2)))
            if not self._any_stim:
                del self._f["stimulus_class"]
            assert self._guard is not None
            f, self._f = self._f, None
            close_h5_for_write(f, self._guard)
        except BaseException as exc:
            self.abort(type(exc), exc, exc.__traceback__)
            raise
        cm, self._cm = self._cm, None
        cm.__exit__(None, None, None)

    def abort(self, exc_type=None, exc=None, tb=None) -> None:
        """Discard everything written; ``path`` is left as it was."""
        if self._f is not None and self._guard is not None:
            f, self._f = self._f, None
            with contextlib.suppress(Exception):  # the error being raised says what failed
                close_h5_for_write(f, self._guard)
        if self._cm is None:
            return
        if exc is None:
            exc_type, exc = RuntimeError, RuntimeError("VCLWriter aborted")
        cm, self._cm = self._cm, None
        cm.__exit__(exc_type, exc, tb)


def write_vcl(
    path: str | os.PathLike,
    calls: Iterable[Any],
    locations_mm: Any,
    *,
    node_names: Sequence[str],
    sample_rate_hz: float,
    arena_dims_mm: Any,
    mic_positions_mm: Any,
    stimulus_classes: Sequence[str] | None = None,
    scenario: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write a VCL file atomically from a sequence of (n_samples_i, n_channels) calls.

    ``locations_mm`` is (n_calls, n_nodes, 2|3) or (n_calls, n_animals, n_nodes, 2|3).
    """
    calls = list(calls)
    locs = np.asarray(locations_mm, dtype=float)
    if len(locs) != len(calls):
        raise InvalidInputError(
            path, "locations_mm", f"{len(calls)} locations (one per call)", f"{len(locs)}"
        )
    if stimulus_classes is not None and len(stimulus_classes) != len(calls):
        raise InvalidInputError(
            path, "stimulus_classes", f"{len(calls)} classes", f"{len(stimulus_classes)}"
        )
    if not calls:
        raise InvalidInputError(path, "calls", "at least one call", "none")
    n_channels = np.asarray(calls[0]).shape[-1]
    with VCLWriter(
        path,
        n_channels,
        node_names=node_names,
        sample_rate_hz=sample_rate_hz,
        arena_dims_mm=arena_dims_mm,
        mic_positions_mm=mic_positions_mm,
        scenario=scenario,
        provenance=provenance,
    ) as writer:
        for i, audio in enumerate(calls):
            writer.append(audio, locs[i], None if stimulus_classes is None else stimulus_classes[i])
    return Path(path)


CallIdentity = tuple[str, int]


def _identities(provenance: Any, n_calls: int) -> list[CallIdentity | None]:
    unknown: list[CallIdentity | None] = [None] * n_calls
    if not isinstance(provenance, dict):
        return unknown
    listed = provenance.get("call_identities")
    if isinstance(listed, list) and len(listed) == n_calls:
        out: list[CallIdentity | None] = []
        for item in listed:
            ok = isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            ok = ok and isinstance(item[1], int) and not isinstance(item[1], bool)
            out.append((item[0], item[1]) if ok else None)
        return out
    merged = provenance.get("merged_from")
    if isinstance(merged, list):
        out = []
        for part in merged:
            k = part.get("n_calls") if isinstance(part, dict) else None
            if not isinstance(k, int) or k < 0:
                return unknown
            out += _identities(part.get("provenance"), k)
        return out if len(out) == n_calls else unknown
    session, ids = provenance.get("session"), provenance.get("call_ids")
    if (
        isinstance(session, str)
        and isinstance(ids, list)
        and len(ids) == n_calls
        and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        return [(session, int(i)) for i in ids]
    return unknown


def call_identities(dataset: VCLDataset) -> list[CallIdentity | None]:
    """(session file, call id) of each call of an exported file, None where unknown.

    Read from the provenance ``export`` writes, through merges; simulated or foreign
    data have no identity (and are never de-duplicated).
    """
    return _identities(dataset.provenance, dataset.n_calls)


def merge_vcl(
    paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Concatenate VCL files into a new file, written atomically.

    The inputs must agree on channel count, sample rate, node names, location shape,
    arena size and microphone positions (where known); otherwise an
    :class:`InvalidInputError` names the first file that differs. A call exported from
    the same session call more than once (:func:`call_identities`) is written once: its
    last copy (the latest review) is kept.
    """
    if not paths:
        raise InvalidInputError(None, "paths", "at least one VCL file", "none")
    sets = [VCLDataset(p) for p in paths]
    try:
        first = sets[0]
        for ds in sets:
            if not ds.has_locations:
                raise InvalidInputError(ds.path, "/locations", "labelled calls", "no locations")
            for field in ("sample_rate_hz", "arena_dims_mm", "mic_positions_mm"):
                if getattr(ds, field) is None:
                    raise InvalidInputError(
                        ds.path,
                        field,
                        "known recording metadata to merge safely",
                        "unknown",
                        hint="Re-write the file with write_vcl(...) giving the metadata.",
                    )
        for ds in sets[1:]:
            check_compatible(
                ds.path,
                n_channels=ds.n_channels,
                sample_rate_hz=ds.sample_rate_hz,
                arena_dims_mm=ds.arena_dims_mm,
                expected_n_channels=first.n_channels,
                expected_sample_rate_hz=first.sample_rate_hz,
                expected_arena_dims_mm=first.arena_dims_mm,
                what=f"first file {first.path.name}",
            )
            if ds.node_names != first.node_names:
                raise InvalidInputError(
                    ds.path,
                    "/node_names",
                    f"{first.node_names} (as {first.path.name})",
                    f"{ds.node_names}",
                )
            # every file has locations and metadata (checked above)
            locs, first_locs = _known(ds.locations_mm), _known(first.locations_mm)
            if locs.shape[1:] != first_locs.shape[1:]:
                raise InvalidInputError(
                    ds.path,
                    "/locations",
                    f"per-call shape {first_locs.shape[1:]}",
                    f"{locs.shape[1:]}",
                )
            mics = _known(ds.mic_positions_mm)
            if not np.allclose(mics, _known(first.mic_positions_mm), atol=0.5):
                raise InvalidInputError(
                    ds.path,
                    "mic_positions_mm",
                    f"the mics of {first.path.name}",
                    "different positions",
                )
        scenarios = {ds.scenario for ds in sets}
        identities = [call_identities(ds) for ds in sets]
        last = {ident: (k, i) for k, ids in enumerate(identities) for i, ident in enumerate(ids)}
        keep = [
            [ident is None or last[ident] == (k, i) for i, ident in enumerate(ids)]
            for k, ids in enumerate(identities)
        ]
        kept = [ident for ids, ks in zip(identities, keep, strict=True)
                for ident, ok in zip(ids, ks, strict=True) if ok]  # fmt: skip
        prov = {
            "merged_from": [
                {
                    "path": str(ds.path),
                    "n_calls": ds.n_calls,
                    "scenario": ds.scenario,
                    "provenance": ds.provenance,
                }
                for ds in sets
            ],
            **(provenance or {}),
            "n_duplicates_dropped": sum(len(ks) - sum(ks) for ks in keep),
        }
        if any(c is not None for c in kept):
            prov["call_identities"] = [None if c is None else list(c) for c in kept]
        with VCLWriter(
            out_path,
            first.n_channels,
            node_names=first.node_names,
            sample_rate_hz=_known(first.sample_rate_hz),
            arena_dims_mm=first.arena_dims_mm,
            mic_positions_mm=first.mic_positions_mm,
            scenario=scenarios.pop() if len(scenarios) == 1 else "mixed",
            provenance=prov,
        ) as writer:
            for ds, ks in zip(sets, keep, strict=True):
                locs = _known(ds.locations_mm)
                stim = ds.stimulus_classes
                for i in np.flatnonzero(ks):
                    writer.append(ds.call_audio(int(i)), locs[i], None if stim is None else stim[i])
    finally:
        for ds in sets:
            ds.close()
    return Path(out_path)


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------


def _known(value: T | None) -> T:
    """``value``, checked by the caller not to be None."""
    assert value is not None
    return value


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
            _check_locations(
                path, s.locations[()].astype(float), s.meta["arena_dims_mm"], tolerance_mm
            )
        return {
            "n_calls": s.n_calls,
            "n_channels": int(s.audio.shape[1]),
            "total_samples": int(total),
            "sample_rate_hz": s.meta["sample_rate_hz"],
        }


def _check_locations(
    path: Path, loc: np.ndarray, dims: np.ndarray | None, tolerance_mm: float
) -> None:
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
