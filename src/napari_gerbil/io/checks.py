"""One validation path for ``validate``, ``predict`` and ``train`` (docs/safety.md).

- :func:`check_vcl_input`: the full :func:`~napari_gerbil.io.vcl.validate_vcl` check of
  a dataset a command is about to use (locations required for training).
- :func:`check_training_files`: every training file valid, none given twice.
- :func:`open_session`: load a session, refusing it when a file it refers to is missing
  or changed (:func:`check_session_files`), as every command reading its audio does.
- :func:`check_session`: a session's referenced files present and unchanged, its audio
  still matching (channels, samples, sample rate), its video clock covering every call
  (:func:`session_timing_problems`) and, with ``calls_audio``, finite samples in every
  call (:func:`check_finite_calls`, the check ``predict`` makes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.inputs import check_input_file


def check_vcl_input(
    path: str | os.PathLike,
    *,
    require_locations: bool,
    field: str = "--data",
    tolerance_mm: float | None = None,
) -> dict[str, Any]:
    """Validate a VCL dataset completely before a command uses it; return the summary."""
    from napari_gerbil.io.vcl import LOCATION_TOLERANCE_MM, validate_vcl

    check_input_file(path, field, "VCL dataset")
    tol = LOCATION_TOLERANCE_MM if tolerance_mm is None else tolerance_mm
    return validate_vcl(path, tolerance_mm=tol, require_locations=require_locations)


def check_training_files(paths: Sequence[str | os.PathLike], field: str = "--data") -> None:
    """Refuse a training file given twice, and any invalid or unlabelled one."""
    seen: dict[str, Path] = {}
    for p in paths:
        check_input_file(p, field, "VCL dataset")
        key = str(Path(p).resolve())
        if key in seen:
            raise InvalidInputError(
                p,
                field,
                "each training file once",
                f"the same file twice ({seen[key]} and {p})",
                hint="Duplicated calls would be counted twice and leak across the split.",
            )
        seen[key] = Path(p)
        summary = check_vcl_input(p, require_locations=True, field=field)
        _check_call_lengths(p, summary.get("sample_rate_hz"))


#: Longest call a command reads whole (training crops, baselines), in seconds.
MAX_CALL_S = 5.0


def check_call_lengths(
    source: str | os.PathLike | None,
    lengths: np.ndarray,
    sample_rate_hz: float | None,
    purpose: str,
    hint: str,
    call_ids: np.ndarray | None = None,
) -> None:
    """Refuse a call longer than :data:`MAX_CALL_S` (one enormous call takes minutes and GB).

    ``lengths`` in samples; ``call_ids`` name the calls in the message (default: index).
    """
    lengths = np.asarray(lengths)
    rate = sample_rate_hz or 125000.0
    limit = int(MAX_CALL_S * rate)
    if len(lengths) and lengths.max() > limit:
        k = int(np.argmax(lengths))
        call = k if call_ids is None else int(call_ids[k])
        raise InvalidInputError(
            source,
            "call length",
            f"calls of at most {MAX_CALL_S:g} s ({limit} samples) for {purpose}",
            f"call {call} of {int(lengths[k])} samples ({lengths[k] / rate:.1f} s)",
            hint=hint,
        )


def _check_call_lengths(path: str | os.PathLike, sample_rate_hz: float | None) -> None:
    from napari_gerbil.io.vcl import VCLDataset

    with VCLDataset(path) as ds:
        lengths = ds.call_lengths_samples
    check_call_lengths(
        path,
        lengths,
        sample_rate_hz,
        "training",
        "Every epoch reads each call whole; split long segments into calls.",
    )


def _frame_interval_s(session) -> float | None:
    ft = session.frame_times_s
    if ft is not None:
        return float(np.median(np.diff(ft))) if len(ft) > 1 else None
    return None if session.fps is None else 1.0 / session.fps


def session_timing_problems(
    session, n_video_frames: int | None = None, n_track_frames: int | None = None
) -> list[tuple[str, str, str]]:
    """Ways the video clock fails to cover the session's calls.

    Parameters
    ----------
    session
        A :class:`~napari_gerbil.io.session.Session`.
    n_video_frames, n_track_frames
        Frames of the video file and of the pose file, when known.

    Returns
    -------
    list of (field, expected, found); empty when every call has a video frame (and a
    pose row) at its time.
    """
    problems: list[tuple[str, str, str]] = []
    if session.frame_times_s is None and session.fps is None:
        if session.video is not None or session.tracks is not None:
            problems.append(
                (
                    "timing/fps",
                    "a frame rate or frame timestamps for the video and poses",
                    "neither (no call can be placed on a frame)",
                )
            )
        return problems
    if session.n_calls == 0:
        return problems
    sr = session.audio.sample_rate_hz
    t_call = np.asarray(session.calls.start_sample, dtype=float) / sr
    dt = _frame_interval_s(session)
    ft = session.frame_times_s
    if ft is not None:
        slack = dt if dt is not None else 0.0
        outside = (t_call < ft[0] - slack) | (t_call > ft[-1] + slack)
        if outside.any():
            i = int(np.argmax(outside))
            problems.append(
                (
                    "timing/frame_times_s",
                    f"timestamps covering every call ({ft[0]:.3f} .. {ft[-1]:.3f} s given)",
                    f"{int(outside.sum())} calls outside, first call {i} at {t_call[i]:.3f} s",
                )
            )
        if n_video_frames is not None and n_video_frames != len(ft):
            problems.append(
                (
                    "timing/frame_times_s",
                    f"one timestamp per video frame ({n_video_frames} frames)",
                    f"{len(ft)} timestamps",
                )
            )
    frames = np.atleast_1d(np.asarray(session.frame_of_sample(session.calls.start_sample)))
    for field, n in (("video", n_video_frames), ("tracks", n_track_frames)):
        if n is None:
            continue
        outside = (frames < 0) | (frames >= n)
        if outside.any():
            i = int(np.argmax(outside))
            problems.append(
                (
                    field,
                    f"frames at every call's time ({n} frames)",
                    f"{int(outside.sum())} calls outside, first call {i} at "
                    f"{t_call[i]:.3f} s -> frame {int(frames[i])}",
                )
            )
    return problems


def calls_on_video_clock(session) -> np.ndarray:
    """(n_calls,) bool: the call starts where the session's frame timestamps are defined.

    Without timestamps every call counts as covered (the video length is checked by
    :func:`check_session`).
    """
    n = session.n_calls
    ft = session.frame_times_s
    if ft is None or n == 0:
        return np.ones(n, dtype=bool)
    slack = _frame_interval_s(session) or 0.0
    t = np.asarray(session.calls.start_sample, dtype=float) / session.audio.sample_rate_hz
    return (t >= ft[0] - slack) & (t <= ft[-1] + slack)


def check_finite_calls(calls: Sequence[np.ndarray], source=None, first: int = 0) -> None:
    """Refuse calls with NaN or inf samples (a model would return NaN silently).

    ``first`` is the index of ``calls[0]`` (for the message).
    """
    for i, call in enumerate(calls):
        if not np.isfinite(call).all():
            row = int(np.argmax(~np.isfinite(call).all(axis=1)))
            raise InvalidInputError(
                source,
                "audio",
                "finite samples in every call",
                f"NaN/inf in call {first + i} (its sample {row})",
            )


def check_session_files(session, path: str | os.PathLike | None = None) -> None:
    """Refuse a session whose referenced files are missing or changed (size or checksum).

    The check every command that reads a session's audio, video or poses makes
    (:func:`open_session`); ``validate`` adds the rest of :func:`check_session`.
    """
    path = path if path is not None else session.path
    for role, status in session.verify_files().items():
        if status != "ok":
            ref = (
                session.audio.files[int(role[6:-1])]
                if role.startswith("audio")
                else getattr(session, role)
            )
            raise InvalidInputError(
                path,
                role,
                "the referenced file, unchanged since the session was made",
                f"{status}: {ref.path}",
                hint="Put the file back, or re-create the session for the new file.",
            )


def open_session(path: str | os.PathLike):
    """Load a session file and refuse it when a file it refers to is missing or changed.

    Returns
    -------
    Session
        The loaded session (:class:`~napari_gerbil.io.session.Session`).
    """
    from napari_gerbil.io.session import load_session

    session = load_session(path)
    check_session_files(session, path)
    return session


def check_session(
    session,
    path: str | os.PathLike | None = None,
    timing: bool = True,
    calls_audio: bool = False,
) -> None:
    """Raise :class:`InvalidInputError` unless the session can be used as it is.

    Referenced files present and unchanged (checksums), the audio's channel and sample
    counts and sample rate as recorded, with ``timing`` the video and pose files
    covering every call (:func:`session_timing_problems`), and with ``calls_audio``
    finite samples in every call (read in batches: bounded memory).
    """
    path = path if path is not None else session.path
    check_session_files(session, path)
    with session.audio.open() as audio:  # channels, samples and rate still match
        if calls_audio:
            for start in range(0, session.n_calls, 256):
                rows = np.arange(start, min(start + 256, session.n_calls))
                check_finite_calls(session.read_calls_audio(rows, audio), path, first=start)
    if not timing:
        return
    n_video = n_tracks = None
    if session.video is not None:
        from napari_gerbil.io.video import VideoReader

        reader = VideoReader(session.video.path)
        n_video = int(reader.shape[0])
        reader.close()
    if session.tracks is not None:
        from napari_gerbil.io.tracks import load_poses

        poses = load_poses(session.tracks.path)
        n_tracks = int(poses.frame_indices.max()) + 1 if poses.n_frames else 0
    problems = session_timing_problems(session, n_video, n_tracks)
    if problems:
        field, expected, found = problems[0]
        raise InvalidInputError(
            path,
            field,
            expected,
            found,
            hint="Calls outside the video would be attributed to the wrong frame; fix the "
            "timestamps or re-create the session with the matching video and poses.",
        )
