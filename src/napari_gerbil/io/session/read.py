"""Read session files (``*.gerbil.h5``); malformed files raise :class:`InvalidInputError`.

Files written before ``/predictions/call_model_version`` and
``/attribution/user/decided_against`` were stored read with their defaults; other
schema versions are refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry
from napari_gerbil.io.h5values import number, strings, text
from napari_gerbil.io.inputs import check_input_file
from napari_gerbil.io.session.model import Session
from napari_gerbil.io.session.records import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    AudioRef,
    CallTable,
    FileRef,
    PredictedAttribution,
    Predictions,
    UserAttribution,
)


def _read_ref(group: h5py.Group, base: Path, source: Path) -> FileRef:
    for key in ("path", "size_bytes", "checksum"):
        if key not in group.attrs:
            raise InvalidInputError(source, f"{group.name}@{key}", "an attribute", "missing")
    rel = base / text(source, f"{group.name}@path", group.attrs["path"])
    absolute = Path(
        text(source, f"{group.name}@absolute_path", group.attrs.get("absolute_path", str(rel)))
    )
    # Relative to the session first (data moved along with it), else where it was.
    path = rel if rel.exists() or not absolute.exists() else absolute
    size = number(
        source,
        f"{group.name}@size_bytes",
        group.attrs["size_bytes"],
        integer=True,
        nonnegative=True,
    )
    checksum = text(source, f"{group.name}@checksum", group.attrs["checksum"])
    return FileRef(Path(os.path.normpath(path)), int(size), checksum)


def _ds(f: h5py.Group, name: str, source: Path, ndim: int | None = None) -> np.ndarray:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise InvalidInputError(source, f"/{name}", "a dataset", "no such dataset")
    arr = obj[()]
    if ndim is not None and np.ndim(arr) != ndim:
        raise InvalidInputError(source, f"/{name}", f"{ndim}-D array", f"shape {np.shape(arr)}")
    return arr


def _call_versions(p: h5py.Group, source: Path) -> Any:
    """``/predictions/call_model_version`` (None in files written before it was stored)."""
    if "call_model_version" not in p:
        return None
    return np.asarray(
        strings(source, "/predictions/call_model_version", _ds(p, "call_model_version", source, 1)),
        dtype=object,
    )


def is_session_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file marked ``napari_gerbil_format = "session"``.

    A file h5py cannot read (damaged metadata raises ``KeyError`` or ``RuntimeError``
    from h5py, not only ``OSError``) is not a session: its reader then names what is
    wrong.
    """
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("napari_gerbil_format", "")) == FORMAT_NAME
    except (OSError, ValueError, KeyError, RuntimeError, TypeError):
        return False


def load_session(path: str | os.PathLike) -> Session:
    """Read a session file; malformed files raise :class:`InvalidInputError`."""
    path = Path(path).absolute()
    check_input_file(path, "<file>", "session file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInputError(path, "<file>", "an HDF5 file", f"unreadable ({exc})") from None
    try:
        with f:
            return _load(f, path)
    except InvalidInputError as exc:
        if exc.source is not None:
            raise
        raise InvalidInputError(path, exc.field, exc.expected, exc.found, exc.hint) from None
    except KeyError as exc:
        raise InvalidInputError(path, str(exc), "an attribute or dataset", "missing") from None
    except (OSError, RuntimeError) as exc:
        raise InvalidInputError(
            path, "<file>", "an intact, readable HDF5 file", f"a damaged file ({exc})"
        ) from None
    except (TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        # a value of the wrong type or shape the checks above do not name
        raise InvalidInputError(
            path,
            "<content>",
            "a session file as napari-gerbil writes it",
            f"{type(exc).__name__}: {exc}",
        ) from None


def _load(f: h5py.File, path: Path) -> Session:
    fmt = f.attrs.get("napari_gerbil_format")
    if fmt is None or str(fmt) != FORMAT_NAME:
        raise InvalidInputError(path, "napari_gerbil_format", f"{FORMAT_NAME!r}", repr(fmt))
    version = int(number(path, "schema_version", f.attrs.get("schema_version", -1), integer=True))
    if version != SCHEMA_VERSION:
        raise InvalidInputError(
            path,
            "schema_version",
            f"{SCHEMA_VERSION}",
            str(version),
            hint="Update napari-gerbil to read newer sessions."
            if version > SCHEMA_VERSION
            else None,
        )
    base = path.parent
    try:
        provenance = json.loads(text(path, "provenance", f.attrs.get("provenance", "{}")))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(path, "provenance", "JSON", str(exc)) from None
    if not isinstance(provenance, dict):
        raise InvalidInputError(path, "provenance", "a JSON object", type(provenance).__name__)
    if "audio" not in f:
        raise InvalidInputError(path, "/audio", "a group", "no such group")
    a = f["audio"]
    n_files = int(
        number(path, "/audio@n_files", a.attrs.get("n_files", 0), integer=True, nonnegative=True)
    )
    files = []
    for i in range(n_files):
        if f"file{i}" not in a:
            raise InvalidInputError(path, f"/audio/file{i}", "a group", "missing")
        files.append(_read_ref(a[f"file{i}"], base, path))
    audio = AudioRef(
        files,
        text(path, "/audio@dataset", a.attrs.get("dataset", "")) or None,
        number(path, "/audio@sample_rate_hz", a.attrs["sample_rate_hz"], positive=True),
        int(number(path, "/audio@n_channels", a.attrs["n_channels"], integer=True, positive=True)),
        int(number(path, "/audio@n_samples", a.attrs["n_samples"], integer=True, nonnegative=True)),
    )
    video = _read_ref(f["video"], base, path) if "video" in f else None
    tracks = _read_ref(f["tracks"], base, path) if "tracks" in f else None
    t = f.get("timing")
    fps = (
        number(path, "/timing@fps", t.attrs.get("fps", np.nan), finite=False)
        if t is not None
        else np.nan
    )
    offset = (
        number(path, "/timing@video_offset_s", t.attrs.get("video_offset_s", 0.0))
        if t is not None
        else 0.0
    )
    frame_times = t["frame_times_s"][()] if t is not None and "frame_times_s" in t else None
    if "arena" not in f:
        raise InvalidInputError(path, "/arena", "a group", "no such group")
    g = f["arena"]
    arena = ArenaGeometry.from_dict(
        {
            "dims_mm": _ds(g, "dims_mm", path, 1),
            "mic_positions_mm": _ds(g, "mic_positions_mm", path, 2),
            "arena_to_pixels": g["arena_to_pixels"][()] if "arena_to_pixels" in g else None,
        },
        source=str(path),
    )
    names = [
        n.decode() if isinstance(n, bytes) else str(n) for n in _ds(f, "animal_names", path, 1)
    ]
    calls = CallTable(
        _ds(f, "calls/call_id", path, 1),
        _ds(f, "calls/start_sample", path, 1),
        _ds(f, "calls/stop_sample", path, 1),
    )
    predictions = None
    if "predictions" in f:
        p = f["predictions"]
        predictions = Predictions(
            _ds(p, "point_mm", path),
            _ds(p, "member_means_mm", path),
            _ds(p, "member_chol_mm", path),
            _ds(p, "set_area_mm2", path),
            text(path, "/predictions@model_version", p.attrs.get("model_version", "")),
            _call_versions(p, path),
        )
    predicted = None
    if "attribution/predicted" in f:
        predicted = PredictedAttribution(
            _ds(f, "attribution/predicted/animal", path, 1),
            _ds(f, "attribution/predicted/probabilities", path, 2),
        )
    user = UserAttribution(
        _ds(f, "attribution/user/animal", path, 1),
        _ds(f, "attribution/user/edit_time_s", path, 1),
        _ds(f, "attribution/user/decided_against", path, 1)
        if "attribution/user/decided_against" in f
        else None,  # files written before it was stored
    )
    return Session(
        audio=audio,
        arena=arena,
        calls=calls,
        video=video,
        tracks=tracks,
        frame_times_s=frame_times,
        fps=None if np.isnan(fps) else fps,
        video_offset_s=offset,
        animal_names=names,
        predictions=predictions,
        predicted=predicted,
        user=user,
        provenance=provenance,
        schema_version=version,
        path=path,
    )
