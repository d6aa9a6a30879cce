"""Where the tracked animals are at each call: the candidates of a call, in mm."""

from __future__ import annotations

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.checks import calls_on_video_clock


def animal_positions_at_calls(session, poses, node: int | str = 0) -> np.ndarray:
    """(n_calls, n_animals, 2) mm: ``node`` of each track at each call's start.

    NaN for calls the video clock does not cover (they would all map to the last
    frame otherwise), so such calls stay unassigned.

    ``poses`` is a :class:`napari_gerbil.io.tracks.Poses`; its tracks are the animals
    (in ``session.animal_names`` order when the names match).
    """
    if session.arena.arena_to_pixels is None:
        raise InvalidInputError(
            session.path, "arena/arena_to_pixels", "a video calibration (homography)", "none"
        )
    frames = session.frame_of_sample(session.calls.start_sample)
    frames = np.atleast_1d(np.asarray(frames))
    node_i = poses.node_index(node)
    order = list(range(poses.n_tracks))
    if session.animal_names and set(session.animal_names) <= set(poses.track_names):
        order = [poses.track_names.index(a) for a in session.animal_names]
    xy_px = poses.at_frames(frames)[:, order, node_i, :]  # (n, A, 2) SLEAP (x, y) = (col, row)
    xy_px[~calls_on_video_clock(session)] = np.nan  # no frame at that time: no position
    rc = xy_px[..., ::-1].reshape(-1, 2)
    ok = np.all(np.isfinite(rc), axis=-1)
    out = np.full(rc.shape, np.nan)
    if ok.any():
        out[ok] = session.arena.to_arena(rc[ok])
    return out.reshape(xy_px.shape)


def animal_headings_at_calls(session, poses, nose: str = "nose", head: str = "head") -> np.ndarray:
    """(n_calls, n_animals) direction (rad, arena frame) each animal faces at each call.

    From ``head`` to ``nose``; NaN where either node is untracked, and everywhere when
    the tracks have no such nodes (the learned scorer then scores without heading).
    """
    n_animals = len(session.animal_names) if session.animal_names else poses.n_tracks
    if nose not in poses.node_names or head not in poses.node_names:
        return np.full((session.n_calls, n_animals), np.nan)
    tip = animal_positions_at_calls(session, poses, nose)
    base = animal_positions_at_calls(session, poses, head)
    delta = tip - base
    return np.arctan2(delta[..., 1], delta[..., 0])
