"""Write session files (``*.gerbil.h5``) atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from napari_gerbil.io.atomic import atomic_h5_file
from napari_gerbil.io.session.model import Session
from napari_gerbil.io.session.records import (
    _STR,
    FORMAT_NAME,
    PREDICTION_FIELDS,
    SCHEMA_VERSION,
    FileRef,
)


def _write_ref(group: h5py.Group, ref: FileRef, base: Path) -> None:
    try:
        rel = os.path.relpath(ref.path, base)
    except ValueError:  # another drive (Windows)
        rel = str(ref.path)
    group.attrs["path"] = Path(rel).as_posix()
    group.attrs["absolute_path"] = str(ref.path)
    group.attrs["size_bytes"] = ref.size_bytes
    group.attrs["checksum"] = ref.checksum


def save_session(session: Session, path: str | os.PathLike) -> Path:
    """Write ``session`` to ``path`` atomically; a crash leaves the old or the new file."""
    path = Path(path).absolute()
    base = path.parent
    session.check(path)
    with atomic_h5_file(path) as f:  # built in memory: a full disk is one clean error
        f.attrs["napari_gerbil_format"] = FORMAT_NAME
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["provenance"] = json.dumps(session.provenance, sort_keys=True, default=str)
        a = f.create_group("audio")
        a.attrs["dataset"] = session.audio.dataset or ""
        a.attrs["sample_rate_hz"] = float(session.audio.sample_rate_hz)
        a.attrs["n_channels"] = int(session.audio.n_channels)
        a.attrs["n_samples"] = int(session.audio.n_samples)
        a.attrs["n_files"] = len(session.audio.files)
        for i, ref in enumerate(session.audio.files):
            _write_ref(a.create_group(f"file{i}"), ref, base)
        for role in ("video", "tracks"):
            ref = getattr(session, role)
            if ref is not None:
                _write_ref(f.create_group(role), ref, base)
        t = f.create_group("timing")
        t.attrs["fps"] = np.nan if session.fps is None else float(session.fps)
        t.attrs["video_offset_s"] = float(session.video_offset_s)
        if session.frame_times_s is not None:
            t["frame_times_s"] = session.frame_times_s
        g = f.create_group("arena")
        g["dims_mm"] = session.arena.dims_mm
        g["mic_positions_mm"] = session.arena.mic_positions_mm
        if session.arena.arena_to_pixels is not None:
            g["arena_to_pixels"] = session.arena.arena_to_pixels
        f.create_dataset("animal_names", data=session.animal_names, dtype=_STR)
        c = f.create_group("calls")
        c["call_id"] = session.calls.call_id
        c["start_sample"] = session.calls.start_sample
        c["stop_sample"] = session.calls.stop_sample
        if session.predictions is not None:
            p = f.create_group("predictions")
            pr = session.predictions
            p.attrs["model_version"] = pr.model_version
            for name in PREDICTION_FIELDS:
                p[name] = getattr(pr, name)
            p.create_dataset("call_model_version", data=pr.call_model_version.tolist(), dtype=_STR)
        if session.predicted is not None:
            q = f.create_group("attribution/predicted")
            q["animal"] = session.predicted.animal
            q["probabilities"] = session.predicted.probabilities
        u = f.create_group("attribution/user")
        u["animal"] = session.user.animal
        u["edit_time_s"] = session.user.edit_time_s
        u["decided_against"] = session.user.decided_against
    session.path = path
    return path
