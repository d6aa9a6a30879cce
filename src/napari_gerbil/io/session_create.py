"""Create a session file from audio + video + pose tracks and an arena calibration.

The napari plugin's *New session* section calls :func:`create_session` after the user
clicked the four arena corners on the video; the same works from a script.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import (
    CORNERS_ORDER,
    DEFAULT_DIMS_MM,
    ArenaGeometry,
    default_cage,
    order_corners_px,
)
from napari_gerbil.io.session import (
    SESSION_SUFFIX,
    AudioRef,
    FileRef,
    Session,
    save_session,
)


def read_mic_positions(path: str | os.PathLike) -> np.ndarray:
    """(n_mics, 3) microphone positions (mm, arena frame) from a text/CSV file.

    One microphone per line, ``x, y, z`` in mm separated by commas, tabs or spaces;
    a header line and ``#`` comments are skipped.
    """
    from napari_gerbil.io.inputs import check_input_file

    path = check_input_file(path, "mic positions", "text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            path, "mic positions", "a UTF-8 text file", f"undecodable bytes at {exc.start}"
        ) from None
    rows = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.replace(",", " ").replace("\t", " ").split()
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            if rows:  # only the first line may be a header
                raise InvalidInputError(path, "mic positions", "x y z numbers", line) from None
    mics = np.array(rows, float)
    if mics.ndim != 2 or mics.shape[1] != 3 or not len(mics):
        raise InvalidInputError(path, "mic positions", "lines of x, y, z (mm)", f"{mics.shape}")
    if not np.isfinite(mics).all():
        raise InvalidInputError(path, "mic positions", "finite x, y, z (mm)", "NaN/inf")
    return mics


def _check_corner_order(corners_px: np.ndarray, source) -> None:
    """Refuse corners that are not a convex quadrilateral in the documented order.

    Either way round is accepted: the video may be mirrored.
    """
    try:
        ordered = [order_corners_px(corners_px, mirrored=m)[1].tolist() for m in (False, True)]
    except InvalidInputError as err:
        raise InvalidInputError(source, "arena corners", err.expected, err.found) from None
    if [0, 1, 2, 3] not in ordered:
        raise InvalidInputError(
            source,
            "arena corners",
            f"the floor corners in the order {CORNERS_ORDER}",
            f"crossing sides ({np.round(corners_px, 1).tolist()})",
            hint="napari_gerbil.io.arena.order_corners_px puts clicked corners in order",
        )


def create_session(
    audio_path: str | os.PathLike | Sequence[str | os.PathLike],
    video_path: str | os.PathLike | None,
    tracks_path: str | os.PathLike | None,
    corners_px: Any,
    out_path: str | os.PathLike,
    arena_dims_mm: Any = DEFAULT_DIMS_MM,
    mic_positions_mm: Any = None,
    animal_names: Sequence[str] | None = None,
    audio_dataset: str = "audio",
    sample_rate_hz: float | None = None,
    video_offset_s: float = 0.0,
    overwrite: bool = False,
) -> Path:
    """Write a new session file (no calls yet) and return its path.

    Parameters
    ----------
    audio_path
        HDF5 audio (dataset ``audio_dataset``), one multichannel WAV or one WAV per mic.
    video_path
        The video the tracks were made on (None: audio only, no tracks or corners).
    tracks_path
        SLEAP ``.slp`` or analysis ``.h5`` (None: no tracks; needs ``corners_px``).
    corners_px
        (4, 2) arena floor corners on the video as napari (row, col) pixels, in the
        order of :meth:`ArenaGeometry.corners_mm` (None: no video calibration).
    out_path
        Session file, ending in ``.gerbil.h5``.
    arena_dims_mm, mic_positions_mm
        Arena size and (n_mics, 3) microphone positions in mm; default: the paper's
        cage, :func:`napari_gerbil.io.arena.default_cage`.
    animal_names
        One per track; default: the track names of the pose file.
    video_offset_s
        Audio-clock time of the first video frame.
    """
    from napari_gerbil.io.audio import AudioSource
    from napari_gerbil.io.tracks import load_poses
    from napari_gerbil.io.video import VideoReader

    out_path = Path(out_path)
    if not out_path.name.endswith(SESSION_SUFFIX):
        raise InvalidInputError(
            out_path, "path", f"a name ending in {SESSION_SUFFIX}", out_path.name
        )
    from napari_gerbil.io.outputs import check_output_path

    # never a reviewed session, never one of the inputs (docs/safety.md)
    audio_paths = [audio_path] if isinstance(audio_path, (str, os.PathLike)) else list(audio_path)
    inputs = [*audio_paths, video_path, tracks_path]
    check_output_path(out_path, overwrite=overwrite, inputs=inputs, field="path")
    audio = AudioSource.open(audio_path, dataset=audio_dataset, sample_rate_hz=sample_rate_hz)
    if mic_positions_mm is None:
        cage = default_cage(arena_dims_mm)
    else:
        cage = ArenaGeometry(arena_dims_mm, mic_positions_mm)
    if cage.n_mics != audio.n_channels:
        raise InvalidInputError(
            audio.paths[0], "channels", f"{cage.n_mics} (one per microphone)", str(audio.n_channels)
        )
    if video_path is None and (tracks_path is not None or corners_px is not None):
        raise InvalidInputError(
            tracks_path if tracks_path is not None else out_path,
            "video",
            "the video the poses / arena corners were taken on",
            "none",
        )
    if tracks_path is not None and corners_px is None:
        raise InvalidInputError(
            tracks_path,
            "arena corners",
            "the 4 floor corners on the video (to map pose pixels to mm)",
            "none",
        )
    if video_path is None:
        return save_session(
            Session(
                audio=AudioRef.from_source(audio),
                arena=cage,
                animal_names=list(animal_names or []),
                provenance=_provenance(),
            ),
            out_path,
        )
    with VideoReader(video_path) as video:
        fps, shape = video.fps, video.shape
    if corners_px is None:
        arena = cage
    else:
        arena = cage.with_corners_px(_checked_corners(corners_px, shape, video_path))
    names = list(animal_names) if animal_names is not None else []
    tracks = None
    if tracks_path is not None:
        poses = load_poses(tracks_path)
        names = names or list(poses.track_names)
        if len(names) != poses.n_tracks:
            raise InvalidInputError(
                tracks_path,
                "tracks",
                f"{len(names)} animals (as named)",
                f"{poses.n_tracks} tracks",
            )
        last = int(poses.frame_indices.max()) if poses.n_frames else -1
        if last >= shape[0]:
            raise InvalidInputError(
                tracks_path,
                "frames",
                f"poses of this video's {shape[0]} frames",
                f"a pose on frame {last}",
                hint="The pose file belongs to a longer video.",
            )
        tracks = FileRef.from_file(tracks_path)
    session = Session(
        audio=AudioRef.from_source(audio),
        arena=arena,
        video=FileRef.from_file(video_path),
        tracks=tracks,
        fps=fps,
        video_offset_s=float(video_offset_s),
        animal_names=names,
        provenance=_provenance(),
    )
    return save_session(session, out_path)


def _provenance() -> dict[str, Any]:
    return {"source": "napari-gerbil create_session", "created_at_unix_s": time.time()}


def _checked_corners(corners_px: Any, shape: tuple[int, ...], video_path: Any) -> np.ndarray:
    """(4, 2) corners inside the frame, in the documented order (else InvalidInputError)."""
    corners = np.asarray(corners_px, float)
    if corners.shape != (4, 2) or not np.isfinite(corners).all():
        raise InvalidInputError(
            video_path, "arena corners", "4 (row, col) points", f"{corners.shape}"
        )
    inside = (corners >= 0).all() and (corners < np.array(shape[1:3])).all()
    if not inside:
        raise InvalidInputError(
            video_path,
            "arena corners",
            f"inside the {shape[1]}x{shape[2]} frame",
            str(corners.tolist()),
        )
    _check_corner_order(corners, video_path)
    return corners
