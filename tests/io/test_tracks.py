"""SLEAP poses from real .slp files (written with sleap-io) and analysis .h5 exports."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import sleap_io as sio

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.tracks import Poses, _tracked_xy_fast, load_poses

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


@pytest.mark.parametrize(
    "layout",
    [{"preset": "standard"}, {"frame_dim": 1, "track_dim": 0, "node_dim": 3, "xy_dim": 2}],
)
def test_analysis_h5_in_other_axis_orders(tmp_path, labels, layout):
    labs, truth = labels
    path = tmp_path / "other.h5"
    sio.save_analysis_h5(labs, str(path), **layout)
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


def _mixed_labels(rng, tracked=True, first_frame=7, n_frames=40):
    """Predicted instances on every frame, some user instances overriding them."""
    skeleton = sio.Skeleton(list(NODES))
    video = sio.Video(filename="v.mp4", open_backend=False)
    tracks = [sio.Track(f"t{i}") for i in range(3)] if tracked else []
    frames = []
    for frame_idx in range(first_frame, first_frame + n_frames):
        if frame_idx % 5 == 4:
            continue  # an unlabelled frame
        insts = []
        for t in range(3 if tracked else 2):
            if tracked and frame_idx % 7 == t:
                continue  # this animal was not detected on this frame
            pts = rng.uniform(0, 500, (3, 2)).astype(np.float32).astype(float)
            track = tracks[t] if tracked else None
            insts.append(
                sio.PredictedInstance.from_numpy(
                    pts, skeleton=skeleton, track=track, score=0.9, point_scores=np.ones(3)
                )
            )
            if frame_idx % 3 == 0 and t == 1:  # the user corrected this one
                user = pts + 3.0
                insts.append(sio.Instance.from_numpy(user, skeleton=skeleton, track=track))
        frames.append(sio.LabeledFrame(video=video, frame_idx=frame_idx, instances=insts))
    return sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton], tracks=tracks)


def test_fast_slp_reader_matches_sleap_io(tmp_path, rng):
    labs = _mixed_labels(rng)
    path = tmp_path / "mixed.slp"
    sio.save_slp(labs, str(path))
    poses = load_poses(path)
    reference = sio.load_slp(str(path)).numpy()  # sleap-io's own (slow) conversion
    assert poses.track_names == ["t0", "t1", "t2"]
    np.testing.assert_array_equal(poses.frame_indices, np.arange(7 + 40))
    np.testing.assert_array_equal(poses.xy_px.astype(np.float32), reference)
    fast = _tracked_xy_fast(path, n_nodes=3, n_tracks=3)  # really the vectorized path
    np.testing.assert_array_equal(fast, poses.xy_px)
    # the user instance won over the prediction on frame 12 (12 % 3 == 0), track 1
    lf = [lf for lf in labs.labeled_frames if lf.frame_idx == 12][0]
    user = [i for i in lf.instances if type(i) is sio.Instance][0]
    np.testing.assert_allclose(poses.at_frames([12])[0, 1], user.numpy())
    assert np.isnan(poses.at_frames([9])).all()  # unlabelled frame
    assert np.isnan(poses.at_frames([21])[0, 0]).all()  # track 0 missing on 21
    assert np.isfinite(poses.at_frames([21])[0, 1:]).all()


def test_untracked_slp_falls_back_to_sleap_io(tmp_path, rng):
    labs = _mixed_labels(rng, tracked=False, first_frame=3, n_frames=10)
    path = tmp_path / "untracked.slp"
    sio.save_slp(labs, str(path))
    poses = load_poses(path)
    reference = sio.load_slp(str(path)).numpy(untracked=True)
    assert poses.track_names == ["track0", "track1"]
    assert len(poses.frame_indices) == 13 and poses.frame_indices[0] == 0
    assert np.isnan(poses.xy_px[:3]).all()
    np.testing.assert_array_equal(poses.xy_px.astype(np.float32), reference)
