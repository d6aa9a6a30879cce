"""Write VCL datasets atomically: :class:`VCLWriter` (streaming), :func:`write_vcl`, merges.

:func:`call_identities` follows exported calls (session file, call id) through merges.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import WriteGuard, atomic_path, close_h5_for_write, open_h5_for_write
from napari_gerbil.io.compat import check_compatible
from napari_gerbil.io.vcl.names import _STR, FORMAT_NAME, FORMAT_VERSION, _known
from napari_gerbil.io.vcl.read import VCLDataset

#: Samples per HDF5 chunk of the audio dataset written by :class:`VCLWriter`.
AUDIO_CHUNK_SAMPLES = 16384


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
