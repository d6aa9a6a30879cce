"""SLEAP poses from real .slp files (written with sleap-io) and analysis .h5 exports."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import sleap_io as sio

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.tracks import Poses, load_poses

NODES = ["nose", "head", "tail"]


@pytest.fixture
def labels(rng):
    """Two tracked animals on frames 0, 3 and 4 of a 6-frame video; one point missing."""
    skeleton = sio.Skeleton(list(NODES))  # sleap-io turns the list into Nodes in place
    video = sio.Video(filename="session.mp4", open_backend=False)
    tracks = [sio.Track("red"), sio.Track("blue")]
    truth = np.full((5, 2, 3, 2), np.nan)  # (frames, tracks, nodes, xy)
    frames = []
    for frame_idx in (0, 3, 4):
        instances = []
        for t, track in enumerate(tracks):
            pts = rng.uniform(0, 640, size=(3, 2)).astype(np.float32).astype(float)  # .slp: f4
            if frame_idx == 3 and t == 1:
                pts[2] = np.nan  # the tail was not found
            truth[frame_idx, t] = pts
            instances.append(sio.Instance.from_numpy(pts, skeleton=skeleton, track=track))
        frames.append(sio.LabeledFrame(video=video, frame_idx=frame_idx, instances=instances))
    labs = sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton], tracks=tracks)
    return labs, truth


def _check(poses: Poses, truth: np.ndarray):
    assert poses.node_names == NODES
    assert poses.track_names == ["red", "blue"]
    assert poses.xy_px.shape == truth.shape
    np.testing.assert_allclose(poses.xy_px, truth)  # NaN where missing
    np.testing.assert_array_equal(poses.frame_indices, np.arange(len(truth)))
    # napari order is (row, col) = (y, x)
    np.testing.assert_array_equal(poses.rc_px[..., 0], truth[..., 1])
    np.testing.assert_array_equal(poses.rc_px[..., 1], truth[..., 0])
    at = poses.at_frames([4, 1, 99])
    np.testing.assert_array_equal(at[0], truth[4])
    assert np.isnan(at[1]).all() and np.isnan(at[2]).all()
    assert poses.node_index("tail") == 2


def test_load_slp(tmp_path, labels):
    labs, truth = labels
    path = tmp_path / "poses.slp"
    sio.save_slp(labs, str(path))
    poses = load_poses(path)
    _check(poses, truth)
    assert poses.video_path == "session.mp4"


def test_load_analysis_h5(tmp_path, labels):
    labs, truth = labels
    path = tmp_path / "poses.analysis.h5"
    sio.save_analysis_h5(labs, str(path))
    with h5py.File(path) as f:  # SLEAP's own layout: (n_tracks, 2, n_nodes, n_frames)
        assert f["tracks"].shape == (2, 2, 3, truth.shape[0])
    _check(load_poses(path), truth)


def test_load_hand_written_analysis_h5(tmp_path, labels):
    """An analysis file as SLEAP writes it, made with plain h5py (no layout attributes)."""
    _, truth = labels
    path = tmp_path / "manual.h5"
    with h5py.File(path, "w") as f:
        f["tracks"] = np.transpose(truth, (1, 3, 2, 0))
        f["node_names"] = np.array([n.encode() for n in NODES])
        f["track_names"] = np.array([b"red", b"blue"])
    _check(load_poses(path), truth)


def test_bad_pose_files(tmp_path, labels):
    _, truth = labels
    with pytest.raises(InvalidInputError, match="no such file"):
        load_poses(tmp_path / "none.slp")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(InvalidInputError, match="suffix"):
        load_poses(tmp_path / "x.csv")
    (tmp_path / "bad.slp").write_text("junk")
    with pytest.raises(InvalidInputError, match="SLEAP"):
        load_poses(tmp_path / "bad.slp")
    path = tmp_path / "wrong.h5"
    with h5py.File(path, "w") as f:
        f["tracks"] = np.transpose(truth, (1, 3, 2, 0))
        f["node_names"] = np.array([b"nose"])  # 1 name for 3 nodes
    with pytest.raises(InvalidInputError, match="/tracks") as err:
        load_poses(path)
    assert "n_nodes=1" in str(err.value)
    with h5py.File(path, "w") as f:
        f["tracks"] = np.zeros((2, 2, 3))
        f["node_names"] = np.array([b"nose"])
    with pytest.raises(InvalidInputError, match="4-D"):
        load_poses(path)
    with h5py.File(path, "w") as f:
        f["node_names"] = np.array([b"nose"])
    with pytest.raises(InvalidInputError, match="/tracks"):
        load_poses(path)
