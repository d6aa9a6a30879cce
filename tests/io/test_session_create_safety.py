"""create_session never replaces a reviewed session or an input, refuses pose files of
a longer video, and reads microphone files defensively."""

from __future__ import annotations

import numpy as np
import pytest

from hostile_data import write_poses_h5, write_wav_session
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session_create import create_session, read_mic_positions
from napari_gerbil.io.video import write_video

CORNERS_PX = [[100.0, 10.0], [100.0, 150.0], [10.0, 150.0], [10.0, 10.0]]


@pytest.fixture
def inputs(tmp_path):
    reviewed = write_wav_session(tmp_path, reviewed=True)
    video = tmp_path / "v.mp4"
    write_video(video, np.zeros((10, 112, 160, 3), np.uint8), fps=30.0)
    return tmp_path / "rec.wav", video, reviewed


def test_a_reviewed_session_is_never_replaced(inputs):
    wav, video, reviewed = inputs
    before = reviewed.read_bytes()
    with pytest.raises(InvalidInputError, match="reviewed"):
        create_session(wav, video, None, CORNERS_PX, reviewed, overwrite=True)
    assert reviewed.read_bytes() == before


def test_pose_file_of_a_longer_video_is_refused(inputs, tmp_path):
    wav, video, _ = inputs
    poses = write_poses_h5(tmp_path / "long.h5", n_frames=50)
    with pytest.raises(InvalidInputError, match="a pose on frame 49"):
        create_session(wav, video, poses, CORNERS_PX, tmp_path / "new.gerbil.h5")
    ok = write_poses_h5(tmp_path / "ok.h5", n_frames=10)
    assert create_session(wav, video, ok, CORNERS_PX, tmp_path / "new.gerbil.h5").exists()


def test_mic_files(tmp_path):
    path = tmp_path / "mics.csv"
    path.write_text("x,y,z\n1,2,3\nnan,2,3\n")
    with pytest.raises(InvalidInputError, match="NaN/inf"):
        read_mic_positions(path)
    path.write_bytes(b"\xff\xfe\x00 1 2 3")
    with pytest.raises(InvalidInputError, match="UTF-8"):
        read_mic_positions(path)
    with pytest.raises(InvalidInputError, match="a directory"):
        read_mic_positions(tmp_path)
