"""Simulated sessions (audio + video + poses + session file + truth) and the CLI."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from napari_gerbil.cli.main import main
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.audio import AudioSource
from napari_gerbil.io.session import load_session
from napari_gerbil.simulate.session import ANIMAL_COLOURS, SessionConfig, simulate_session
from napari_gerbil.simulate.truth import load_truth


def test_session_files_are_valid(session_small, capsys):
    for path in (session_small.session, session_small.audio, session_small.tracks):
        assert main(["validate", str(path)]) == 0
    assert main(["validate", str(session_small.truth)]) == 0
    assert "valid simulation truth" in capsys.readouterr().out
    assert main(["info", str(session_small.truth)]) == 0
    assert "animal0 (" in capsys.readouterr().out
    session = load_session(session_small.session)
    assert session.verify_files() == {"audio[0]": "ok", "video": "ok", "tracks": "ok"}
    assert session.animal_names == ["animal0", "animal1"]
    assert session.fps == 30.0 and len(session.frame_times_s) == 360
    assert np.all(np.diff(session.frame_times_s) > 0)
    with h5py.File(session_small.session) as f:  # the truth never enters the session
        names = []
        f.visit(names.append)
        assert not any("truth" in n or "emitter" in n for n in names)


def test_truth_matches_the_calls_table(session_small):
    session = load_session(session_small.session)
    truth = load_truth(session_small.truth)
    n = session.n_calls
    assert 10 <= n <= 45  # Poisson, 2 animals x 1 call/s x ~12 s
    np.testing.assert_array_equal(truth.start_sample, session.calls.start_sample)
    np.testing.assert_array_equal(truth.stop_sample, session.calls.stop_sample)
    assert set(np.unique(truth.animal)) == {0, 1}
    assert (truth.start_sample > truth.emit_sample).all()  # sound needs time to travel
    # each call comes from its animal's nose at the frame of emission
    frames = session.frame_of_sample(truth.emit_sample)
    nose = truth.poses_mm[frames, truth.animal, 0]
    assert np.linalg.norm(nose - truth.source_mm, axis=1).max() < 15.0


def test_calls_are_audible_above_the_noise(session_small):
    audio = AudioSource.open(session_small.audio)
    truth = load_truth(session_small.truth)
    assert audio.n_channels == 4 and audio.sample_rate_hz == 125000.0
    assert audio.n_samples == 12 * 125000
    x = audio.read(0, audio.n_samples).astype(float)
    in_call = np.zeros(len(x), bool)
    for a, b in zip(truth.start_sample, truth.stop_sample, strict=True):
        in_call[a:b] = True
    assert np.mean(x[in_call] ** 2) > 3 * np.mean(x[~in_call] ** 2)


def test_poses_follow_the_truth_through_the_homography(session_small):
    import sleap_io as sio

    session = load_session(session_small.session)
    truth = load_truth(session_small.truth)
    xy = sio.load_slp(str(session_small.tracks), open_videos=False).numpy()  # SLEAP (x, y)
    assert xy.shape == (360, 2, 4, 2)
    missing = np.isnan(xy[..., 0]).all(axis=2)
    assert 0 < missing.mean() < 0.06  # a few missing frames
    rc = xy[..., ::-1].reshape(-1, 2)
    ok = ~np.isnan(rc).any(axis=1)
    back_mm = session.arena.to_arena(rc[ok])
    err_mm = np.linalg.norm(back_mm - truth.poses_mm[..., :2].reshape(-1, 2)[ok], axis=1)
    assert np.median(err_mm) < 3.0  # ~1 px pose noise, ~1.36 mm per px


def test_video_shows_the_animals(session_small):
    from napari_gerbil.io.video import VideoReader

    session = load_session(session_small.session)
    truth = load_truth(session_small.truth)
    video = VideoReader(session_small.video)
    assert video.shape == (360, 320, 480, 3)
    for k in (0, 200):
        frame = video[k].astype(float)
        for a in range(2):
            r, c = np.round(session.arena.to_pixels(truth.poses_mm[k, a, 2, :2])[0]).astype(int)
            assert np.abs(frame[r, c] - ANIMAL_COLOURS[a]).max() < 40  # H.264 is lossy


def test_streaming_chunks_and_processes_do_not_change_the_output(tmp_path):
    def make(name, chunk_s, n_workers=1):
        cfg = SessionConfig(duration_s=2.0, call_rate_hz=3.0, snr_db=300.0, chunk_s=chunk_s)
        return simulate_session(tmp_path / name, cfg, n_workers=n_workers)

    a, b, c = make("a", 1.0), make("b", 0.3), make("c", 1.0, n_workers=2)
    x = AudioSource.open(a.audio).read(0, 250000)
    y = AudioSource.open(b.audio).read(0, 250000)
    assert np.abs(x).max() > 1e-3  # calls are there
    np.testing.assert_allclose(x, y, atol=1e-6)
    # the same seed gives identical files whether or not calls render in parallel
    np.testing.assert_array_equal(x, AudioSource.open(c.audio).read(0, 250000))
    ta, tc = load_truth(a.truth), load_truth(c.truth)
    assert ta.stimulus_class == tc.stimulus_class
    np.testing.assert_array_equal(ta.stop_sample, tc.stop_sample)
    assert c.video.stat().st_size > 0 and c.tracks.stat().st_size > 0


def _bump_animal(f):
    f["animal"][0] = 7


def _swap_bounds(f):
    f["stop_sample"][0] = f["start_sample"][0]


@pytest.mark.parametrize(
    ("field", "corrupt"),
    [
        ("/animal", _bump_animal),
        ("/source_mm", lambda f: f.__delitem__("source_mm")),
        ("/stop_sample", _swap_bounds),
        ("/heading_rad", lambda f: f["heading_rad"].__setitem__(1, np.nan)),
        ("/poses_mm", lambda f: f.attrs.__setitem__("node_names", ["nose", "tail"])),
        ("napari_gerbil_format", lambda f: f.attrs.__setitem__("napari_gerbil_format", "x")),
    ],
)
def test_validate_names_the_bad_field_of_a_truth_file(
    session_small, tmp_path, capsys, field, corrupt
):
    bad = tmp_path / "bad.truth.h5"
    shutil.copy(session_small.truth, bad)
    with h5py.File(bad, "a") as f:
        corrupt(f)
    if field == "napari_gerbil_format":  # no longer recognisable: refused as unknown
        assert main(["validate", str(bad)]) == 1
        assert "<file>" in capsys.readouterr().err
        with pytest.raises(InvalidInputError, match=field):
            load_truth(bad)
        return
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr()
    assert f"field '{field}'" in out.err and "valid" not in out.out


def test_bad_session_configs():
    with pytest.raises(InvalidInputError, match="n_animals"):
        SessionConfig(n_animals=0)
    with pytest.raises(InvalidInputError, match="duration_s"):
        SessionConfig(duration_s=0.1)
    with pytest.raises(InvalidInputError, match="video_width_px"):
        SessionConfig(video_width_px=481)
    with pytest.raises(InvalidInputError, match="truth"):
        load_truth("/nonexistent/x.truth.h5")


def test_cli_same_seed_same_output(tmp_path, capsys):
    args = ["simulate", "speaker", "--n-calls", "18", "--seed", "5", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a.h5")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.h5")]) == 0
    assert main(["validate", str(tmp_path / "a.h5")]) == 0
    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "b.h5") as fb:
        np.testing.assert_array_equal(fa["audio"][:], fb["audio"][:])
    assert "dataset" in capsys.readouterr().out


def test_cli_session_and_errors(tmp_path, capsys):
    out = tmp_path / "demo.gerbil.h5"
    assert main(["simulate", "session", "--out", str(out), "--duration", "2", "--quiet"]) == 0
    assert out.is_file() and (tmp_path / "demo.truth.h5").is_file()
    assert main(["validate", str(out)]) == 0
    assert main(["simulate", "session", "--out", str(tmp_path), "--n-calls", "3"]) == 1
    assert main(["simulate", "robot", "--out", str(tmp_path / "r.h5"), "--preset", "x"]) == 1
    assert "preset" in capsys.readouterr().err
