"""Conversion between a session and napari layer data (no viewer needed)."""

from __future__ import annotations

import numpy as np

from napari_gerbil._napari._styles import ANIMAL_COLORS, PoseStyle, animal_color
from napari_gerbil.io.arena import ArenaGeometry
from napari_gerbil.io.session import Session

#: Layer metadata key holding the session file a layer belongs to.
SESSION_KEY = "napari_gerbil_session"
#: Layer metadata key naming the role of a layer (video, tracks, poses, sets, estimates).
ROLE_KEY = "napari_gerbil_role"
#: Pixels per mm of the virtual canvas used when the arena has no video calibration.
CANVAS_PX_PER_MM = 1.0


def arena_to_canvas(arena: ArenaGeometry, xy_mm: np.ndarray) -> np.ndarray:
    """Arena (x, y) mm -> napari (row, col).

    Through the video calibration, else a top-down canvas at :data:`CANVAS_PX_PER_MM`
    with +y up and the arena's corner at (0, 0).
    """
    xy_mm = np.asarray(xy_mm, float).reshape(-1, 2)
    if arena.arena_to_pixels is not None:
        return arena.to_pixels(xy_mm)
    hx, hy = arena.half_extent_mm
    return np.stack([(hy - xy_mm[:, 1]), (xy_mm[:, 0] + hx)], axis=1) * CANVAS_PX_PER_MM


def canvas_to_arena(arena: ArenaGeometry, rc_px: np.ndarray) -> np.ndarray:
    """Inverse of :func:`arena_to_canvas`."""
    rc_px = np.asarray(rc_px, float).reshape(-1, 2)
    if arena.arena_to_pixels is not None:
        return arena.to_arena(rc_px)
    hx, hy = arena.half_extent_mm
    rc = rc_px / CANVAS_PX_PER_MM
    return np.stack([rc[:, 1] - hx, hy - rc[:, 0]], axis=1)


def decimate_polygon(polygon: np.ndarray, max_vertices: int) -> np.ndarray:
    """Keep at most ``max_vertices`` evenly spaced vertices of a (K, 2) polygon.

    Contours of a density grid have thousands of vertices; napari triangulates every
    polygon in Python, so drawing them whole takes seconds.
    """
    polygon = np.asarray(polygon, float)
    if len(polygon) <= max_vertices:
        return polygon
    keep = np.unique(np.linspace(0, len(polygon) - 1, max_vertices).round().astype(int))
    return polygon[keep]


def _meta(session: Session, role: str) -> dict:
    return {SESSION_KEY: str(session.path) if session.path else None, ROLE_KEY: role}


def video_layer_data(session: Session, reader=None) -> tuple:
    """(VideoReader, kwargs, "image") of the session's video (lazy)."""
    from napari_gerbil.io.video import VideoReader

    reader = reader or VideoReader(session.video.path)
    kwargs = {
        "name": "video",
        "rgb": True,
        "contrast_limits": (0, 255),
        "metadata": _meta(session, "video"),
    }
    return reader, kwargs, "image"


def track_points(poses, node: int = 0) -> np.ndarray:
    """(K, 4) Tracks data (track_id, frame, row, col) of every animal's ``node``.

    Sorted by track then frame; frames without the node are dropped.
    """
    rc = poses.rc_px[:, :, node, :]  # (n_frames, n_tracks, 2)
    frames = np.repeat(poses.frame_indices, poses.n_tracks)
    ids = np.tile(np.arange(poses.n_tracks), poses.n_frames)
    flat = rc.reshape(-1, 2)
    keep = np.isfinite(flat).all(axis=1)
    data = np.column_stack([ids[keep], frames[keep], flat[keep]]).astype(float)
    return data[np.lexsort((data[:, 1], data[:, 0]))]


def tracks_window(points: np.ndarray, frame: int, max_points: int) -> np.ndarray:
    """The rows of ``points`` within a frame window centred on ``frame``.

    The window holds at most ``max_points`` points (all rows if there are few).
    """
    if len(points) <= max_points:
        return points
    n_tracks = max(1, len(np.unique(points[:, 0])))
    half = max(1, max_points // (2 * n_tracks))
    return points[np.abs(points[:, 1] - frame) <= half]


def tracks_layer_data(
    session: Session, poses, node: int = 0, style: PoseStyle | None = None, frame: int = 0
):
    """(tracks, kwargs, "tracks"): one track per animal through node ``node``.

    Long sessions hold only the window of :attr:`PoseStyle.max_track_points` around
    ``frame`` (napari draws every track vertex on every frame); the review widget moves
    the window with the time slider.
    """
    style = style or PoseStyle()
    data = tracks_window(track_points(poses, node), frame, style.max_track_points)
    kwargs = {
        "name": "tracks",
        "color_by": "track_id",
        "colormaps_dict": {"track_id": _animal_colormap(poses.n_tracks)},
        "tail_length": style.tail_length_frames,
        "tail_width": style.track_width_px,
        "head_length": 0,
        "metadata": _meta(session, "tracks"),
    }
    return data, kwargs, "tracks"


def _animal_colormap(n_animals: int):
    from napari.utils.colormaps import Colormap

    n = max(n_animals, 1)
    colors = np.array([animal_color(i) for i in range(n)])
    if n == 1:
        return Colormap(np.vstack([colors, colors]), name="gerbil_animals_1")
    # feature values 0..n-1 are normalized to 0..1 by napari's Tracks layer
    return Colormap(
        colors, controls=np.linspace(0, 1, n + 1), interpolation="zero", name=f"gerbil_{n}"
    )


def pose_points_at(poses, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(points (K, 2) row/col, animal (K,)) of all tracked nodes at video ``frame``."""
    xy = poses.at_frames([frame])[0]  # (n_tracks, n_nodes, 2) x, y
    rc = xy[..., ::-1].reshape(-1, 2)
    animal = np.repeat(np.arange(poses.n_tracks), len(poses.node_names))
    keep = np.isfinite(rc).all(axis=1)
    return rc[keep], animal[keep]


def pose_points_window(
    poses, frame: int, max_points: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Every tracked node on the frames around ``frame``, for a 3-D Points layer.

    napari slices the layer itself as the time slider moves (nothing to update per frame).

    Returns
    -------
    points
        (K, 3) (frame, row, col).
    animal
        (K,) track index of each point.
    frames
        (first, last) frame of the window: at most ``max_points`` points' worth.
    """
    per_frame = max(1, poses.n_tracks * len(poses.node_names))
    half = max(1, max_points // (2 * per_frame))
    low, high = int(frame) - half, int(frame) + half
    rows = np.flatnonzero((poses.frame_indices >= low) & (poses.frame_indices <= high))
    rc = poses.rc_px[rows].reshape(len(rows), -1, 2)  # (k, n_tracks * n_nodes, 2)
    frames = np.repeat(poses.frame_indices[rows], rc.shape[1])
    animal = np.tile(np.repeat(np.arange(poses.n_tracks), len(poses.node_names)), len(rows))
    flat = rc.reshape(-1, 2)
    keep = np.isfinite(flat).all(axis=1)
    points = np.column_stack([frames[keep], flat[keep]]).astype(float)
    return points, animal[keep], (low, high)


def window_covers(window: tuple[float, float], frame: int, data_range: tuple[float, float]):
    """Whether the frame window (first, last) still serves ``frame``.

    It does when the frame is in its middle half, or when the window already reaches
    the end of the data on that side.
    """
    low, high = window
    margin = (high - low) / 4
    low_ok = frame >= low + margin or low <= data_range[0]
    high_ok = frame <= high - margin or high >= data_range[1]
    return low <= frame <= high and low_ok and high_ok


def arena_outline_px(arena: ArenaGeometry) -> np.ndarray:
    """(4, 2) arena floor corners as napari (row, col)."""
    return arena_to_canvas(arena, arena.corners_mm())


def session_layer_data(session: Session) -> list[tuple]:
    """Layer data of a session for napari's reader: video and pose tracks."""
    from napari_gerbil.io.tracks import load_poses

    layers = []
    if session.video is not None:
        layers.append(video_layer_data(session))
    if session.tracks is not None:
        layers.append(tracks_layer_data(session, load_poses(session.tracks.path)))
    outline = arena_outline_px(session.arena)
    layers.append(
        (
            [outline],
            {
                "name": "arena",
                "shape_type": "polygon",
                "edge_color": "white",
                "face_color": "transparent",
                "edge_width": 2,
                "opacity": 0.6,
                "metadata": _meta(session, "arena"),
            },
            "shapes",
        )
    )
    return layers


__all__ = [
    "ANIMAL_COLORS",
    "arena_outline_px",
    "arena_to_canvas",
    "decimate_polygon",
    "canvas_to_arena",
    "pose_points_at",
    "pose_points_window",
    "session_layer_data",
    "track_points",
    "tracks_layer_data",
    "tracks_window",
    "video_layer_data",
    "window_covers",
]
