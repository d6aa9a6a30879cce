"""Issue 13 finding 6: a video clock that does not cover the calls is refused by
``validate`` and gives no attribution, instead of mapping calls to the wrong frame."""

from __future__ import annotations

import numpy as np
import pytest

from hostile_data import write_poses_h5, write_wav_session
from napari_gerbil.cli.main import main
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.checks import (
    calls_on_video_clock,
    check_session,
    session_timing_problems,
)
from napari_gerbil.io.session import load_session

#: Calls at 0, 8 ms and 0.8 s of a 1 s recording.
CALLS = ((0, 500), (1000, 2000), (100000, 110000))


def _validate(path, capsys):
    status = main(["validate", str(path)])
    return status, capsys.readouterr().err


def test_timestamps_shorter_than_the_audio(tmp_path, capsys):
    # 4 timestamps (0 .. 0.1 s): the call at 0.8 s used to map to the last frame
    path = write_wav_session(
        tmp_path, calls=CALLS, fps=None, frame_times_s=[0.0, 1 / 30, 2 / 30, 3 / 30]
    )
    status, err = _validate(path, capsys)
    assert status == 1
    assert "timing/frame_times_s" in err and "first call 2 at 0.800 s" in err
    session = load_session(path)
    assert calls_on_video_clock(session).tolist() == [True, True, False]


def test_video_much_shorter_than_the_audio(tmp_path, capsys):
    path = write_wav_session(tmp_path, calls=CALLS, video_frames=4, fps=30.0)
    status, err = _validate(path, capsys)
    assert status == 1 and "field 'video'" in err and "frame 24" in err
    with pytest.raises(InvalidInputError, match="4 frames"):
        check_session(load_session(path))


def test_timestamps_not_one_per_video_frame(tmp_path, capsys):
    path = write_wav_session(
        tmp_path, calls=CALLS[:2], video_frames=8, fps=None,
        frame_times_s=np.arange(4) / 30,
    )  # fmt: skip
    status, err = _validate(path, capsys)
    assert status == 1 and "one timestamp per video frame (8 frames)" in err


def test_tracks_shorter_than_the_calls(tmp_path, capsys):
    poses = write_poses_h5(tmp_path / "p.h5", n_frames=10)
    path = write_wav_session(tmp_path, calls=CALLS, video_frames=30, fps=30.0, tracks=poses)
    status, err = _validate(path, capsys)
    assert status == 1 and "field 'tracks'" in err and "(10 frames)" in err


def test_covered_calls_pass(tmp_path, capsys):
    poses = write_poses_h5(tmp_path / "p.h5", n_frames=30)
    path = write_wav_session(tmp_path, calls=CALLS, video_frames=30, fps=30.0, tracks=poses)
    status, err = _validate(path, capsys)
    assert status == 0, err
    assert session_timing_problems(load_session(path), 30, 30) == []


def test_attribution_of_a_call_past_the_timestamps_is_unassigned(tmp_path):
    from napari_gerbil.attribute import animal_positions_at_calls
    from napari_gerbil.io.tracks import Poses

    path = write_wav_session(
        tmp_path, calls=CALLS, fps=None, frame_times_s=[0.0, 1 / 30, 2 / 30, 3 / 30]
    )
    session = load_session(path)
    corners_px = np.array([[400.0, 0.0], [400.0, 600.0], [0.0, 600.0], [0.0, 0.0]])
    session.arena = session.arena.with_corners_px(corners_px)
    xy = np.full((4, 2, 1, 2), 200.0)  # both animals tracked on every frame
    poses = Poses(["nose"], ["red", "blue"], xy, np.arange(4), None)
    pos = animal_positions_at_calls(session, poses)
    assert np.isfinite(pos[:2]).all()
    assert np.isnan(pos[2]).all()  # no frame at 0.8 s: no position, so no attribution


def test_info_flags_calls_outside_the_timestamps(tmp_path, capsys):
    path = write_wav_session(
        tmp_path, calls=CALLS, fps=None, frame_times_s=[0.0, 1 / 30, 2 / 30, 3 / 30]
    )
    assert main(["info", str(path)]) == 0
    assert "WARNING timing/frame_times_s: 1 calls outside" in capsys.readouterr().out
