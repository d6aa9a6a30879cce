"""Session files: round trip, references, clocks, attribution edits, malformed files."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import apply_homography
from napari_gerbil.io.audio import AudioSource
from napari_gerbil.io.session import (
    AMBIGUOUS,
    CHECKSUM_BLOCK_BYTES,
    NOT_REVIEWED,
    UNASSIGNED,
    AudioRef,
    CallTable,
    FileRef,
    PredictedAttribution,
    Predictions,
    Session,
    file_checksum,
    is_session_file,
    load_session,
    save_session,
)


def make_session(folder, rng, n_calls=12, n_members=5, cage=None):
    """A complete session referencing real files in ``folder``."""
    from napari_gerbil.io.arena import default_cage

    cage = cage or default_cage()
    audio_path = folder / "recording.h5"
    with h5py.File(audio_path, "w") as f:
        f["audio"] = rng.standard_normal((50_000, 4)).astype(np.float32)
        f.attrs["sample_rate_hz"] = 125000.0
    (folder / "video.mp4").write_bytes(rng.bytes(3000))
    (folder / "poses.slp").write_bytes(rng.bytes(500))
    start = np.sort(rng.choice(40_000, n_calls, replace=False))
    calls = CallTable.from_samples(start, start + rng.integers(100, 5000, n_calls))
    means = rng.uniform(-250, 250, (n_calls, n_members, 2))
    chol = np.zeros((n_calls, n_members, 2, 2))
    chol[..., 0, 0] = chol[..., 1, 1] = rng.uniform(5, 30, (n_calls, n_members))
    preds = Predictions(means.mean(1), means, chol, rng.uniform(100, 5000, n_calls), "ens-v1")
    probs = rng.dirichlet(np.ones(3), n_calls)
    corners_px = apply_homography(
        np.array([[0.0, 0.8, 240.0], [0.8, 0.0, 320.0], [1e-5, 0.0, 1.0]]), cage.corners_mm()
    )
    return Session(
        audio=AudioRef.from_source(AudioSource.open(audio_path)),
        arena=cage.with_corners_px(corners_px),
        calls=calls,
        video=FileRef.from_file(folder / "video.mp4"),
        tracks=FileRef.from_file(folder / "poses.slp"),
        frame_times_s=np.arange(20) / 30.0 + 0.01,
        fps=30.0,
        video_offset_s=0.01,
        animal_names=["red", "blue", "green"],
        predictions=preds,
        predicted=PredictedAttribution(probs.argmax(1), probs),
        provenance={"model": "ens-v1", "config_digest": "abc"},
    )


@pytest.fixture
def session(tmp_path, rng):
    return make_session(tmp_path, rng)


def test_round_trip_is_exact(tmp_path, session):
    session.set_user_attribution(3, 1, now=1_700_000_000.5)
    session.set_user_attribution(5, AMBIGUOUS, now=1_700_000_001.0)
    path = save_session(session, tmp_path / "s.gerbil.h5")
    assert session.path == path
    assert is_session_file(path) and not is_session_file(session.audio.files[0].path)
    loaded = load_session(path)
    assert loaded == session
    assert loaded.schema_version == 1
    assert loaded.user.animal[3] == 1 and loaded.user.edit_time_s[3] == 1_700_000_000.5
    assert loaded.user.animal[0] == NOT_REVIEWED and np.isnan(loaded.user.edit_time_s[0])
    assert loaded.provenance == {"model": "ens-v1", "config_digest": "abc"}
    assert loaded.predictions.n_members == 5 and loaded.predictions.model_version == "ens-v1"
    loaded.user.animal[0] = 2
    assert loaded != session  # equality really compares content
    with h5py.File(path) as f:
        assert f.attrs["napari_gerbil_format"] == "session"
        # no raw audio: the file is small and has no sample arrays
        assert "audio" not in f["audio"]
        assert f["audio/file0"].attrs["path"] == "recording.h5"  # relative
    assert path.stat().st_size < 200_000


def test_per_call_model_versions_round_trip_and_old_files_still_read(tmp_path, session):
    session.clear_predictions([0])
    fields = {
        "point_mm": [[1.0, 2.0]],
        "member_means_mm": np.zeros((1, 5, 2)),
        "member_chol_mm": np.tile(np.eye(2), (1, 5, 1, 1)),
        "set_area_mm2": [5.0],
        "animal": [1],
        "probabilities": [[0.1, 0.9, 0.0]],
    }
    session.set_predictions([3], model_version="ens-v2", **fields)
    path = save_session(session, tmp_path / "s.gerbil.h5")
    loaded = load_session(path)
    versions = loaded.predictions.call_model_version
    assert versions[0] == "" and versions[3] == "ens-v2" and versions[1] == "ens-v1"
    assert loaded.predictions.model_version == "ens-v2" and loaded == session
    assert list(np.flatnonzero(loaded.localized_by("ens-v2"))) == [3]
    with h5py.File(path, "a") as f:  # a file written before per-call versions
        del f["predictions/call_model_version"]
    old = load_session(path).predictions.call_model_version
    assert old[0] == "" and set(old[1:]) == {"ens-v2"}  # the file's one model_version


def test_minimal_session_round_trip(tmp_path, rng, cage):
    audio_path = tmp_path / "a.wav"
    from scipy.io import wavfile

    wavfile.write(audio_path, 125000, rng.standard_normal((1000, 4)).astype(np.float32))
    s = Session(audio=AudioRef.from_source(AudioSource.open(audio_path)), arena=cage)
    loaded = load_session(save_session(s, tmp_path / "m.gerbil.h5"))
    assert loaded == s
    assert loaded.n_calls == 0 and loaded.predictions is None and loaded.video is None
    assert loaded.audio.dataset is None
    np.testing.assert_array_equal(loaded.audio.open().read(0, 10), s.audio.open().read(0, 10))


def test_references_follow_the_session_when_moved_together(tmp_path, session):
    save_session(session, tmp_path / "s.gerbil.h5")
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    shutil.copytree(tmp_path, moved)
    try:
        for p in tmp_path.iterdir():  # the original location is gone
            p.unlink()
        loaded = load_session(moved / "s.gerbil.h5")
        assert loaded.audio.files[0].path == moved / "recording.h5"
        assert loaded.verify_files() == {"audio[0]": "ok", "video": "ok", "tracks": "ok"}
        assert loaded.audio.open().n_samples == 50_000
    finally:
        shutil.rmtree(moved)


def test_session_moved_alone_falls_back_to_absolute_paths(tmp_path, session):
    other = tmp_path / "elsewhere"
    other.mkdir()
    save_session(session, other / "s.gerbil.h5")
    loaded = load_session(other / "s.gerbil.h5")
    assert loaded.audio.files[0].path == tmp_path / "recording.h5"
    (tmp_path / "sub").mkdir()
    shutil.move(other / "s.gerbil.h5", tmp_path / "sub" / "s.gerbil.h5")
    loaded = load_session(tmp_path / "sub" / "s.gerbil.h5")
    assert loaded.verify_files()["audio[0]"] == "ok"


def test_verify_detects_changed_and_missing_files(tmp_path, session):
    (tmp_path / "video.mp4").write_bytes(b"another video")
    (tmp_path / "poses.slp").unlink()
    status = session.verify_files()
    assert status == {"audio[0]": "ok", "video": "changed", "tracks": "missing"}


def test_checksum_covers_both_ends_of_large_files(tmp_path, rng):
    path = tmp_path / "big.bin"
    data = bytearray(rng.bytes(3 * CHECKSUM_BLOCK_BYTES))
    path.write_bytes(data)
    ref = FileRef.from_file(path)
    assert ref.verify() == "ok"
    data[-1] ^= 0xFF  # last byte
    path.write_bytes(data)
    assert ref.verify() == "changed"
    data[-1] ^= 0xFF
    data[10] ^= 0xFF  # first MiB
    path.write_bytes(data)
    assert ref.verify() == "changed"
    data[10] ^= 0xFF
    path.write_bytes(data)
    assert file_checksum(path) == ref.checksum


def test_frame_sample_clocks(session):
    # with timestamps: frame k at 0.01 + k / 30 s
    assert session.frame_of_sample(0) == 0
    assert session.frame_of_sample(round((0.01 + 5 / 30) * 125000)) == 5
    assert session.frame_of_sample(round((0.01 + 5.4 / 30) * 125000)) == 5
    assert session.frame_of_sample(round((0.01 + 5.6 / 30) * 125000)) == 6
    assert session.frame_of_sample(10**9) == 19  # clipped to the last frame
    np.testing.assert_array_equal(
        session.frame_of_sample(session.sample_of_frame(np.arange(20))), np.arange(20)
    )
    # jittered timestamps are followed, not the nominal fps
    session.frame_times_s = session.frame_times_s + np.r_[np.zeros(10), np.full(10, 0.02)]
    assert session.sample_of_frame(12) == round((0.01 + 12 / 30 + 0.02) * 125000)
    # without timestamps: fps and offset
    session.frame_times_s = None
    assert session.sample_of_frame(30) == round(1.01 * 125000)
    assert session.frame_of_sample(round(1.01 * 125000)) == 30
    session.fps = None
    with pytest.raises(InvalidInputError, match="fps"):
        session.sample_of_frame(1)


def test_attribution_edits(session):
    pred = session.predicted.animal.copy()
    np.testing.assert_array_equal(session.effective_attribution(), pred)
    session.set_user_attribution(2, UNASSIGNED, now=10.0)
    session.set_user_attribution(4, 2)
    assert session.user.edit_time_s[4] > 1e9  # wall clock by default
    eff = session.effective_attribution()
    assert eff[2] == UNASSIGNED and eff[4] == 2 and eff[0] == pred[0]
    np.testing.assert_array_equal(session.predicted.animal, pred)  # predictions untouched
    session.clear_user_attribution(4, now=11.0)
    assert not session.user.reviewed[4] and session.user.edit_time_s[4] == 11.0
    with pytest.raises(InvalidInputError, match="animal"):
        session.set_user_attribution(0, 3)  # only 3 animals


def test_inconsistent_sessions_are_refused(tmp_path, session):
    with pytest.raises(InvalidInputError, match="predictions/point_mm"):
        session.predictions = Predictions.empty(5, 3)
        session.check()
    session.predictions = None
    session.predicted.animal[0] = 7
    with pytest.raises(InvalidInputError, match="attribution/predicted/animal"):
        save_session(session, tmp_path / "x.gerbil.h5")
    assert not (tmp_path / "x.gerbil.h5").exists()
    session.predicted = None
    session.frame_times_s = np.array([0.0, 0.1, 0.1])
    with pytest.raises(InvalidInputError, match="frame_times_s"):
        session.check()
    session.frame_times_s = None
    session.calls = CallTable.from_samples(np.arange(12), np.full(12, 50_001))
    with pytest.raises(InvalidInputError, match="calls within the audio"):
        session.check()
    with pytest.raises(InvalidInputError, match="start_sample < stop_sample"):
        CallTable.from_samples([10, 20], [15, 20])
    with pytest.raises(InvalidInputError, match="member_chol_mm"):
        Predictions(np.zeros((2, 2)), np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.zeros(2))


def _corrupt(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda f: f.attrs.__setitem__("napari_gerbil_format", "vcl"), "napari_gerbil_format"),
        (lambda f: f.attrs.__setitem__("schema_version", 2), "schema_version"),
        (lambda f: f.__delitem__("calls/start_sample"), "/calls/start_sample"),
        (lambda f: f.__delitem__("arena"), "/arena"),
        (lambda f: f["arena"].__delitem__("mic_positions_mm"), "/mic_positions_mm"),
        (lambda f: f["audio/file0"].attrs.__delitem__("checksum"), "checksum"),
        (lambda f: f["attribution/user"].__delitem__("edit_time_s"), "edit_time_s"),
        (lambda f: f.attrs.__setitem__("provenance", "{not json"), "provenance"),
    ],
)
def test_malformed_session_files(tmp_path, session, edit, field):
    path = save_session(session, tmp_path / "s.gerbil.h5")
    _corrupt(path, edit)
    with pytest.raises(InvalidInputError) as err:
        load_session(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_wrong_length_user_attribution_in_file(tmp_path, session):
    path = save_session(session, tmp_path / "s.gerbil.h5")

    def shorten(f):
        del f["attribution/user/animal"]
        f["attribution/user/animal"] = np.full(3, NOT_REVIEWED)
        del f["attribution/user/edit_time_s"]
        f["attribution/user/edit_time_s"] = np.full(3, np.nan)
        del f["attribution/user/decided_against"]
        f["attribution/user/decided_against"] = np.full(3, NOT_REVIEWED)

    _corrupt(path, shorten)
    with pytest.raises(InvalidInputError, match="12 rows") as err:
        load_session(path)
    assert str(path) in str(err.value)


def test_not_a_session(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        load_session(tmp_path / "none.gerbil.h5")
    (tmp_path / "junk.gerbil.h5").write_text("junk")
    with pytest.raises(InvalidInputError, match="HDF5"):
        load_session(tmp_path / "junk.gerbil.h5")


def test_calls_table_columns(session):
    session.set_user_attribution(1, 2, now=5.0)
    table = session.calls_table()
    n = session.n_calls
    assert all(len(col) == n for col in table.values())
    np.testing.assert_allclose(table["start_s"], session.calls.start_sample / 125000)
    np.testing.assert_array_equal(table["point_x_mm"], session.predictions.point_mm[:, 0])
    assert table["user"][1] == 2 and table["effective"][1] == 2 and table["edit_time_s"][1] == 5
    assert table["effective"][0] == session.predicted.animal[0]
    table["user"][0] = 1  # a copy: the session is untouched
    assert session.user.animal[0] == NOT_REVIEWED
    session.predictions = None
    assert np.isnan(session.calls_table()["set_area_mm2"]).all()
