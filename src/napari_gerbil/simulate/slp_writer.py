"""Write tracked poses to a SLEAP ``.slp`` file in bounded memory.

``sleap_io.Labels.from_numpy`` + ``save_slp`` build a Python object per instance and
point (about 7 kB per frame of 3 animals: ~0.8 GB for an hour at 30 fps). Here
sleap-io writes everything but the pose tables (metadata with the skeleton, videos,
tracks, ...) from a :class:`sleap_io.Labels` without frames; the ``/frames``,
``/instances`` and ``/pred_points`` tables are then filled block by block with the
same dtypes and the same rows ``from_numpy`` + ``save_slp`` would write (predicted
instances of score 1, one per tracked animal with any node present; frames without any
instance are left out; a missing node is NaN and not visible).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_path, close_h5_for_write, open_h5_for_write

_PREDICTED = 1  # sleap_io.io.slp.InstanceType.PREDICTED


def _block_rows(xy: np.ndarray, first_frame: int, ids: np.ndarray, dtypes: dict) -> dict:
    """Rows of the three tables for frames ``first_frame ..`` given running ``ids``.

    ``ids`` is (frame, instance, point) counts so far; it is advanced in place.
    """
    n_nodes = xy.shape[2]
    present = ~np.isnan(xy[..., 0])  # (frames, tracks, nodes), as sleap-io tests x
    inst_ok = present.any(axis=2)
    per_frame = inst_ok.sum(axis=1)
    frame_ok = per_frame > 0
    f_local, track = np.nonzero(inst_ok)  # row-major: frame order, then track order
    n_f, n_i = int(frame_ok.sum()), len(f_local)
    frame_id = ids[0] + np.cumsum(frame_ok) - 1  # for every local frame

    frames = np.zeros(n_f, dtypes["frames"])
    frames["frame_id"] = ids[0] + np.arange(n_f)
    frames["video"] = 0
    frames["frame_idx"] = first_frame + np.flatnonzero(frame_ok)
    ends = ids[1] + np.cumsum(per_frame[frame_ok])
    frames["instance_id_end"] = ends
    frames["instance_id_start"] = ends - per_frame[frame_ok]

    inst = np.zeros(n_i, dtypes["instances"])
    inst["instance_id"] = ids[1] + np.arange(n_i)
    inst["instance_type"] = _PREDICTED
    inst["frame_id"] = frame_id[f_local]
    inst["skeleton"] = 0
    inst["track"] = track
    inst["from_predicted"] = -1
    inst["score"] = 1.0
    inst["point_id_start"] = ids[2] + n_nodes * np.arange(n_i)
    inst["point_id_end"] = inst["point_id_start"] + n_nodes
    inst["tracking_score"] = np.nan

    pts = np.zeros(n_i * n_nodes, dtypes["pred_points"])
    sel = xy[f_local, track].reshape(-1, 2)
    pts["x"], pts["y"] = sel[:, 0], sel[:, 1]
    pts["visible"] = present[f_local, track].reshape(-1)
    pts["complete"] = False
    pts["score"] = 1.0
    ids += (n_f, n_i, n_i * n_nodes)
    return {"frames": frames, "instances": inst, "pred_points": pts}


def write_tracked_slp(
    path: str | os.PathLike,
    xy_px: np.ndarray,
    node_names: Sequence[str],
    edges: Sequence[tuple[str, str]],
    track_names: Sequence[str],
    video_path: str | os.PathLike,
    chunk_frames: int = 4096,
) -> Path:
    """Write (n_frames, n_tracks, n_nodes, 2) poses as predicted, tracked SLEAP instances.

    Parameters
    ----------
    xy_px
        Node positions (x = column, y = row, pixels); NaN where a node is missing.
        Row i is video frame i.
    node_names, edges, track_names
        Skeleton nodes, skeleton edges (pairs of node names) and one track per animal.
    video_path
        The video the poses belong to (not opened).
    chunk_frames
        Frames converted and appended per block: memory is bounded by this, not by the
        number of frames.

    Returns
    -------
    Path
        ``path``, written atomically; ``sleap_io.load_slp(path).numpy()`` gives
        ``xy_px`` back (up to the last frame with a pose).
    """
    import sleap_io as sio

    xy = np.asarray(xy_px, dtype=float)
    if xy.ndim != 4 or xy.shape[-1] != 2:
        raise InvalidInputError(None, "xy_px", "(n_frames, n_tracks, n_nodes, 2)", str(xy.shape))
    if xy.shape[1] != len(track_names) or xy.shape[2] != len(node_names):
        raise InvalidInputError(
            None,
            "xy_px",
            f"{len(track_names)} tracks x {len(node_names)} nodes",
            f"{xy.shape[1]} x {xy.shape[2]}",
        )
    skeleton = sio.Skeleton(list(node_names), edges=[list(e) for e in edges])
    labels = sio.Labels(
        videos=[sio.Video(filename=str(video_path), open_backend=False)],
        skeletons=[skeleton],
        tracks=[sio.Track(name=str(t)) for t in track_names],
    )
    path = Path(path)
    with atomic_path(path, suffix=".slp") as tmp:
        sio.save_slp(labels, str(tmp))  # everything but the (empty) pose tables
        f, guard = open_h5_for_write(tmp, append=True)  # a full disk: a clean error
        try:
            dtypes = {}
            for name in ("frames", "instances", "pred_points"):
                dtypes[name] = f[name].dtype
                del f[name]
                f.create_dataset(name, (0,), dtype=dtypes[name], maxshape=(None,), chunks=(16384,))
            ids = np.zeros(3, np.int64)  # frames, instances, points written so far
            for start in range(0, len(xy), chunk_frames):
                rows = _block_rows(xy[start : start + chunk_frames], start, ids, dtypes)
                for name, data in rows.items():
                    if not len(data):
                        continue
                    ds = f[name]
                    ds.resize(len(ds) + len(data), axis=0)
                    ds[len(ds) - len(data) :] = data
                guard.check()
        except BaseException:
            with contextlib.suppress(Exception):
                close_h5_for_write(f, guard)
            raise
        close_h5_for_write(f, guard)
    return path
