"""The bounded-memory SLEAP writer gives the file sleap-io's own writer gives."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import sleap_io as sio

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.tracks import load_poses
from napari_gerbil.simulate.slp_writer import write_tracked_slp

NODES = ("nose", "head", "body", "tail")
EDGES = (("nose", "head"), ("head", "body"), ("body", "tail"))
TRACKS = ("animal0", "animal1", "animal2")


@pytest.fixture
def poses_px():
    xy = np.random.default_rng(4).uniform(0.0, 480.0, (53, 3, 4, 2))
    xy[5] = np.nan  # nobody tracked
    xy[7:10, 1] = np.nan  # one animal lost for a few frames
    xy[11, 2, 1] = np.nan  # one node missing
    xy[0, 0, 3] = np.nan
    xy[50:] = np.nan  # trailing frames without poses
    return xy


def test_tables_equal_sleap_io_own_writer(poses_px, tmp_path):
    skeleton = sio.Skeleton(list(NODES), edges=[list(e) for e in EDGES])
    video = sio.Video(filename="cage.mp4", open_backend=False)
    tracks = [sio.Track(name=t) for t in TRACKS]
    labels = sio.Labels.from_numpy(poses_px, videos=[video], skeletons=skeleton, tracks=tracks)
    sio.save_slp(labels, str(tmp_path / "ref.slp"))
    # blocks of 7 frames: the rows must not depend on where the blocks split
    write_tracked_slp(tmp_path / "new.slp", poses_px, NODES, EDGES, TRACKS, "cage.mp4", 7)
    with h5py.File(tmp_path / "ref.slp", "r") as ref, h5py.File(tmp_path / "new.slp", "r") as new:
        assert set(ref) == set(new)
        for name in ("frames", "instances", "pred_points", "points"):
            a, b = ref[name][()], new[name][()]
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert a.tobytes() == b.tobytes(), name  # NaN-exact
        for name in ("tracks_json", "videos_json", "suggestions_json", "sessions_json"):
            assert list(ref[name][()]) == list(new[name][()]), name
        assert dict(ref["metadata"].attrs) == dict(new["metadata"].attrs)
        assert len(new["frames"]) == 49 and len(new["instances"]) == 49 * 3 - 3


def test_loads_back_with_sleap_io(poses_px, tmp_path):
    path = write_tracked_slp(
        tmp_path / "p.slp", poses_px, NODES, EDGES, TRACKS, tmp_path / "v.mp4", chunk_frames=16
    )
    labels = sio.load_slp(str(path), open_videos=False)
    assert len(labels) == 49  # frame 5 and the trailing 3 have no pose
    assert [t.name for t in labels.tracks] == list(TRACKS)
    assert labels.skeleton.node_names == list(NODES)
    assert [(e.source.name, e.destination.name) for e in labels.skeleton.edges] == list(EDGES)
    assert labels.video.filename == str(tmp_path / "v.mp4")
    xy = labels.numpy()
    assert xy.shape == (50, 3, 4, 2)
    np.testing.assert_array_equal(np.isnan(xy), np.isnan(poses_px[:50]))
    np.testing.assert_allclose(xy, poses_px[:50], rtol=1e-6)  # numpy() is float32
    poses = load_poses(path)  # the plugin's own reader: exact
    np.testing.assert_array_equal(poses.xy_px, poses_px[:50])
    assert poses.track_names == list(TRACKS)


def test_bad_pose_arrays_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="xy_px"):
        write_tracked_slp(tmp_path / "a.slp", np.zeros((5, 3, 4)), NODES, EDGES, TRACKS, "v.mp4")
    with pytest.raises(InvalidInputError, match="3 tracks x 4 nodes"):
        write_tracked_slp(tmp_path / "a.slp", np.zeros((5, 2, 4, 2)), NODES, EDGES, TRACKS, "v.mp4")
    assert not (tmp_path / "a.slp").exists()
