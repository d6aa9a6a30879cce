"""Pose tracks from SLEAP: ``.slp`` projects (via sleap-io) and analysis ``.h5`` exports.

SLEAP stores points as (x, y) = (col, row) video pixels; napari wants (row, col):
use :attr:`Poses.rc_px`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.h5values import hdf5_errors, short, strings, text
from napari_gerbil.io.inputs import check_input_file


def _strings(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values)]


@dataclasses.dataclass(eq=False)
class Poses:
    """Tracked poses of every animal on every frame.

    Parameters
    ----------
    node_names
        (n_nodes,) body-part names.
    track_names
        (n_tracks,) animal/track names.
    xy_px
        (n_frames, n_tracks, n_nodes, 2) SLEAP (x, y) = (col, row) pixels, NaN if missing.
    frame_indices
        (n_frames,) video frame index of each row (0 .. last labelled frame of the
        first video).
    video_path
        The video the tracks belong to, when the file says.
    """

    node_names: list[str]
    track_names: list[str]
    xy_px: np.ndarray
    frame_indices: np.ndarray
    video_path: str | None = None

    def __post_init__(self) -> None:
        self.xy_px = np.asarray(self.xy_px, dtype=np.float64)
        self.frame_indices = np.asarray(self.frame_indices, dtype=np.int64).reshape(-1)
        expected = (len(self.frame_indices), len(self.track_names), len(self.node_names), 2)
        if self.xy_px.shape != expected:
            raise InvalidInputError(
                None,
                "xy_px",
                f"shape (n_frames, n_tracks, n_nodes, 2) = {expected}",
                f"shape {self.xy_px.shape}",
            )

    @property
    def n_frames(self) -> int:
        """Number of frames (rows)."""
        return len(self.frame_indices)

    @property
    def n_tracks(self) -> int:
        """Number of tracks (animals)."""
        return len(self.track_names)

    @property
    def rc_px(self) -> np.ndarray:
        """(n_frames, n_tracks, n_nodes, 2) points as napari (row, col)."""
        return self.xy_px[..., ::-1]

    def node_index(self, node: int | str) -> int:
        """Index of a node given its name or index."""
        if isinstance(node, str):
            if node not in self.node_names:
                raise InvalidInputError(None, "node", f"one of {self.node_names}", repr(node))
            return self.node_names.index(node)
        if not 0 <= node < len(self.node_names):
            raise InvalidInputError(None, "node", f"an index < {len(self.node_names)}", str(node))
        return int(node)

    def at_frames(self, frames: Any) -> np.ndarray:
        """(k, n_tracks, n_nodes, 2) (x, y) at video frames; NaN where not tracked."""
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        out = np.full((len(frames), *self.xy_px.shape[1:]), np.nan)
        order = np.argsort(self.frame_indices)
        sorted_idx = self.frame_indices[order]
        pos = np.clip(np.searchsorted(sorted_idx, frames), 0, max(len(sorted_idx) - 1, 0))
        if len(sorted_idx):
            hit = sorted_idx[pos] == frames
            out[hit] = self.xy_px[order[pos[hit]]]
        return out


def _instance_rows(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Instance indices of the given /frames rows and the row each one belongs to."""
    starts = frames["instance_id_start"].astype(np.int64)
    lengths = frames["instance_id_end"].astype(np.int64) - starts
    owner = np.repeat(np.arange(len(frames)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets, owner


def _tracked_xy_fast(path: Path, n_nodes: int, n_tracks: int) -> np.ndarray | None:
    """(n_frames, n_tracks, n_nodes, 2) of video 0 read straight from the .slp tables.

    Vectorized equivalent of ``sleap_io.Labels.numpy()`` for tracked, single-skeleton
    files (user instances win over predicted ones on the same track); row i is frame i,
    up to the last labelled frame. None when the file needs sleap-io's general path.
    """
    with h5py.File(path, "r") as f:
        frames = f["frames"][()]
        frames = frames[frames["video"] == 0]
        if not len(frames):
            return None
        instances = f["instances"][()]
        if len(instances) and (instances["skeleton"] != 0).any():
            return None
        format_id = float(f["metadata"].attrs.get("format_id", 1.4))
        inst, owner = _instance_rows(frames)
        rows = instances[inst]
        keep = rows["track"] >= 0
        rows, owner = rows[keep], owner[keep]
        frame_idx = frames["frame_idx"].astype(np.int64)
        out = np.full((int(frame_idx.max()) + 1, n_tracks, n_nodes, 2), np.nan)
        if not len(rows):
            return out
        pstart = rows["point_id_start"].astype(np.int64)
        if ((rows["point_id_end"].astype(np.int64) - pstart) != n_nodes).any():
            return None
        is_user = rows["instance_type"] == 0
        frame_of = frame_idx[owner]
        track = rows["track"].astype(np.int64)
        # one instance per (frame, track): the last after sorting, users after predictions
        order = np.lexsort((is_user, track, frame_of))
        key = frame_of[order] * n_tracks + track[order]
        last = order[np.r_[key[1:] != key[:-1], True]]
        xy = np.empty((len(last), n_nodes, 2))
        point_idx = pstart[last, None] + np.arange(n_nodes)
        for user, name in ((True, "points"), (False, "pred_points")):
            sel = is_user[last] == user
            if sel.any():
                table = f[name].fields(["x", "y"])[()]
                pts = table[point_idx[sel]]
                xy[sel, :, 0], xy[sel, :, 1] = pts["x"], pts["y"]
        if format_id < 1.1:  # legacy files stored pixel centres at +0.5
            xy -= 0.5
        out[frame_of[last], track[last]] = xy
    return out


def _load_slp(path: Path) -> Poses:
    import sleap_io as sio

    try:
        labels = sio.load_slp(str(path), lazy=True, open_videos=False)
    except Exception as exc:  # sleap-io raises many types on a bad file
        raise InvalidInputError(
            path, "<file>", "a SLEAP .slp file", f"unreadable ({exc})"
        ) from None
    if not labels.videos:
        raise InvalidInputError(path, "videos", "at least one video", "none")
    if not labels.skeletons:
        raise InvalidInputError(path, "skeletons", "a skeleton", "none")
    names = [n.name for n in labels.skeletons[-1].nodes]
    tracks = [t.name for t in labels.tracks]
    try:
        fast = _tracked_xy_fast(path, len(names), len(tracks)) if tracks else None
        if fast is not None:
            xy = fast
        else:  # untracked or unusual files: sleap-io's general (slower) path
            xy = sio.load_slp(str(path), open_videos=False).numpy(untracked=not tracks)
            tracks = tracks or [f"track{i}" for i in range(xy.shape[1])]
    except InvalidInputError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise InvalidInputError(
            path,
            "/frames /instances /points /pred_points",
            "SLEAP's pose tables, consistent with each other",
            f"{type(exc).__name__}: {exc}",
        ) from None
    video = labels.videos[0].filename
    return Poses(
        names,
        tracks,
        xy,
        np.arange(len(xy)),
        video if isinstance(video, str) else None,
    )


def _load_analysis_h5(path: Path) -> Poses:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInputError(path, "<file>", "an HDF5 file", f"unreadable ({exc})") from None
    with f:
        for name in ("tracks", "node_names"):
            if not isinstance(f.get(name), h5py.Dataset):
                raise InvalidInputError(path, f"/{name}", "a SLEAP analysis dataset", "missing")
        raw = f["tracks"][()]
        if np.asarray(raw).dtype.kind not in "fiu":
            raise InvalidInputError(path, "/tracks", "numeric pixel positions", short(raw))
        if raw.ndim != 4:
            raise InvalidInputError(
                path, "/tracks", "4-D (n_tracks, 2, n_nodes, n_frames)", f"shape {raw.shape}"
            )
        order = (3, 0, 2, 1)  # SLEAP's own (MATLAB) layout (tracks, xy, nodes, frames)
        dims = f["tracks"].attrs.get("dims")  # sleap-io names the stored axes
        if dims is not None:
            try:
                names = json.loads(dims.decode() if isinstance(dims, bytes) else str(dims))
                order = tuple(names.index(axis) for axis in ("frame", "track", "node", "xy"))
            except (ValueError, AttributeError) as exc:
                raise InvalidInputError(
                    path, "/tracks@dims", "the 4 axis names frame, track, node, xy", repr(dims)
                ) from exc
        xy = np.transpose(raw, order).astype(np.float64)
        nodes = strings(path, "/node_names", f["node_names"][()])
        names = f.get("track_names")
        tracks = (
            strings(path, "/track_names", names[()])
            if isinstance(names, h5py.Dataset) and names.shape != (0,)
            else [f"track{i}" for i in range(xy.shape[1])]
        )
        if xy.shape[3] != 2 or xy.shape[2] != len(nodes) or xy.shape[1] != len(tracks):
            raise InvalidInputError(
                path,
                "/tracks",
                f"(n_tracks={len(tracks)}, 2, n_nodes={len(nodes)}, n_frames) "
                "matching /track_names and /node_names",
                f"shape {raw.shape}",
            )
        video = f.get("video_path")
        video_path = None
        if isinstance(video, h5py.Dataset):
            v = video[()]
            video_path = text(path, "/video_path", v) if np.ndim(v) == 0 else None
    return Poses(nodes, tracks, xy, np.arange(xy.shape[0]), video_path or None)


def load_poses(path: str | os.PathLike) -> Poses:
    """Read SLEAP poses from a ``.slp`` file or a SLEAP analysis ``.h5`` file."""
    path = Path(path)
    check_input_file(path, "<file>", ".slp or analysis .h5 file")
    with hdf5_errors(path):
        if path.suffix.lower() == ".slp":
            return _load_slp(path)
        if path.suffix.lower() in (".h5", ".hdf5"):
            return _load_analysis_h5(path)
    raise InvalidInputError(
        path, "<file>", "a SLEAP .slp or analysis .h5 file", f"suffix {path.suffix!r}"
    )
