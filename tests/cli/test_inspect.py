"""``napari-gerbil info`` and ``napari-gerbil validate`` on every kind of input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from scipy.io import wavfile

from napari_gerbil.cli.inspect import describe, detect_kind
from napari_gerbil.cli.main import main
from napari_gerbil.io.arena import default_cage
from napari_gerbil.io.audio import AudioSource
from napari_gerbil.io.cage import builtin_cage
from napari_gerbil.io.session import AudioRef, CallTable, FileRef, Session, save_session
from napari_gerbil.io.vcl import write_vcl
from test_core_imports import BLOCKER


@pytest.fixture
def plain_vcl(tmp_path, rng):
    """A file with only the four vocalocator datasets, written with plain h5py."""
    lengths = rng.integers(300, 800, 7)
    locations = np.stack(
        [rng.uniform(-250, 250, (7, 2)), rng.uniform(-250, 250, (7, 2))], axis=1
    )  # (7 calls, 2 nodes, 2)
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["audio"] = rng.standard_normal((lengths.sum(), 4)).astype(np.float32)
        f["length_idx"] = np.r_[0, np.cumsum(lengths)]
        f["locations"] = locations
        f["node_names"] = np.array([b"nose", b"tail"])
    return path, locations


def _blocked_cli(*argv):
    """Run the CLI in a fresh interpreter with Qt and napari imports blocked."""
    code = BLOCKER + textwrap.dedent(
        f"""
        import sys
        from napari_gerbil.cli.main import main
        sys.exit(main({list(map(str, argv))!r}))
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_info_on_a_plain_vocalocator_file_with_qt_blocked(plain_vcl):
    path, locations = plain_vcl
    result = _blocked_cli("info", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "calls:            7" in out
    assert "channels:         4" in out
    assert "sample rate:      unknown" in out
    for axis, i in (("x", 0), ("y", 1)):
        lo, hi = locations[..., i].min(), locations[..., i].max()
        assert f"{axis}: {lo:9.1f} .. {hi:9.1f} mm" in out
    assert "nodes:            nose, tail" in out
    assert "vocalocator (no napari-gerbil metadata)" in out


def test_validate_names_length_idx_when_it_misses_the_audio_end(plain_vcl):
    path, _ = plain_vcl
    with h5py.File(path, "r+") as f:
        f["length_idx"][-1] -= 10
    result = _blocked_cli("validate", path)
    assert result.returncode == 1
    assert "length_idx" in result.stderr and str(path) in result.stderr
    assert "valid" not in result.stdout


def test_validate_valid_and_tolerance(plain_vcl, capsys, tmp_path, rng):
    path, _ = plain_vcl
    assert main(["validate", str(path)]) == 0
    assert "valid VCL dataset: 7 calls, 4 channels" in capsys.readouterr().out
    cage = builtin_cage("omni-corner").arena()  # 600 x 400 x 350 mm
    calls = [rng.standard_normal((100, 4)) for _ in range(2)]
    ours = write_vcl(
        tmp_path / "ours.h5",
        calls,
        np.array([[[0.0, 0.0]], [[320.0, 0.0]]]),  # 20 mm past the x wall
        node_names=["nose"],
        sample_rate_hz=125000,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
        stimulus_classes=["dfm", "dfm"],
        scenario="robot",
    )
    assert main(["validate", str(ours)]) == 1
    assert "inside the arena" in capsys.readouterr().err
    assert main(["validate", str(ours), "--tolerance-mm", "30"]) == 0
    assert main(["info", str(ours)]) == 0
    out = capsys.readouterr().out
    assert "format:           vcl v1" in out and "scenario:         robot" in out
    assert "stimulus classes: dfm (2)" in out and "sample rate:      125000 Hz" in out
    assert "arena:            600 x 400 x 350 mm" in out


@pytest.fixture
def session_file(tmp_path, rng):
    audio = tmp_path / "rec.wav"
    wavfile.write(audio, 125000, rng.standard_normal((125000, 4)).astype(np.float32))
    from napari_gerbil.io.video import write_video

    # validate decodes the video (its length must cover the calls): a real 4-frame clip
    write_video(tmp_path / "video.mp4", np.zeros((4, 32, 32, 3), np.uint8), fps=30.0)
    s = Session(
        audio=AudioRef.from_source(AudioSource.open(audio)),
        arena=default_cage(),
        calls=CallTable.from_samples([0, 1000, 5000], [500, 2000, 9000]),
        video=FileRef.from_file(tmp_path / "video.mp4"),
        fps=30.0,
        animal_names=["red", "blue"],
    )
    s.set_user_attribution(1, 0, now=1.7e9)
    return save_session(s, tmp_path / "s.gerbil.h5")


def test_info_and_validate_session(session_file, capsys):
    assert detect_kind(session_file) == "session"
    assert main(["info", str(session_file)]) == 0
    out = capsys.readouterr().out
    assert "calls:            3" in out and "schema:           1" in out
    assert "reviewed:         1 / 3 (red (1))" in out
    assert "rec.wav [ok]" in out and "125000 Hz" in out
    assert main(["validate", str(session_file)]) == 0
    assert "valid session: 3 calls" in capsys.readouterr().out
    (session_file.parent / "video.mp4").write_bytes(b"another video")
    assert main(["validate", str(session_file)]) == 1
    err = capsys.readouterr().err
    assert "video" in err and "changed" in err


def test_info_on_recordings_and_poses(tmp_path, rng, capsys):
    wav = tmp_path / "rec.wav"
    wavfile.write(wav, 250000, rng.standard_normal((5000, 2)).astype(np.float32))
    assert main(["info", str(wav)]) == 0
    out = capsys.readouterr().out
    assert "channels:         2" in out and "250000 Hz" in out and "0.020 s" in out
    analysis = tmp_path / "poses.h5"
    with h5py.File(analysis, "w") as f:
        tracks = rng.uniform(0, 100, (2, 2, 3, 50))  # (tracks, xy, nodes, frames)
        tracks[0, :, :, :10] = np.nan
        f["tracks"] = tracks
        f["node_names"] = np.array([b"a", b"b", b"c"])
        f["track_names"] = np.array([b"m1", b"m2"])
    assert detect_kind(analysis) == "poses"
    lines = describe(analysis)
    assert "  frames:           50" in lines and "  tracks:           m1, m2" in lines
    assert "  points present:   90.0%" in lines
    assert main(["validate", str(analysis)]) == 0


def test_info_and_validate_model_directory(tmp_path, capsys):
    model = tmp_path / "ensemble"
    model.mkdir()
    manifest = {
        "format": "napari-gerbil-model",
        "version": 3,
        "created": "2026-01-01T00:00:00+00:00",
        "preset": "tiny",
        "n_members": 1,
        "sample_rate_hz": 125000.0,
        "n_channels": 4,
        "arena_dims_mm": [600, 400, 350],
        "label_scale_mm": 300.0,
        "members": [{"file": "member_00/best.pt", "sha256": "0" * 64, "seed": 0}],
    }
    (model / "manifest.json").write_text(json.dumps(manifest))
    result = _blocked_cli("info", model)
    assert result.returncode == 0, result.stderr
    for key in ("preset", "n_members", "sample_rate_hz", "n_channels", "arena_dims_mm"):
        assert f"{key}:" in result.stdout
    assert "members:          1 files" in result.stdout
    assert main(["validate", str(model)]) == 1  # the member checkpoint is missing
    assert "member_00/best.pt" in capsys.readouterr().err
    (model / "manifest.json").write_text("{broken")
    assert main(["info", str(model)]) == 1
    assert "manifest.json" in capsys.readouterr().err


def test_unrecognised_inputs(tmp_path, capsys):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["something"] = np.zeros(3)
    assert main(["info", str(other)]) == 1
    assert "something" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.h5")]) == 1
    assert "nothing" in capsys.readouterr().err
    (tmp_path / "text.h5").write_text("hello")
    assert main(["validate", str(tmp_path / "text.h5")]) == 1
    assert main(["info", str(tmp_path)]) == 1  # a folder without manifest.json
    assert "manifest.json" in capsys.readouterr().err


# --- validate refuses what the next command refuses (issue 20, item 8) ----------------


def _nan_in_a_call(folder):
    from hostile_data import write_wav_session

    folder.mkdir(parents=True, exist_ok=True)
    audio = np.random.default_rng(0).standard_normal((125000, 4)).astype(np.float32)
    audio[1500, 2] = np.nan  # inside call 1 (samples 1000 .. 2000)
    wavfile.write(folder / "rec.wav", 125000, audio)
    return write_wav_session(folder)


def _video_without_clock(folder):
    from hostile_data import write_wav_session

    return write_wav_session(folder, video_frames=10, fps=None)


def _rate_differs(folder):
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "audio.h5", "w") as f:
        f["audio"] = np.random.default_rng(0).standard_normal((20000, 4)).astype(np.float32)
        f.attrs["sample_rate_hz"] = 125000.0
    session = Session(
        audio=AudioRef.from_source(AudioSource.open(folder / "audio.h5")),
        arena=default_cage(),
        calls=CallTable.from_samples([100], [900]),
        animal_names=["a"],
    )
    path = save_session(session, folder / "s.gerbil.h5")
    with h5py.File(path, "r+") as f:
        f["audio"].attrs["sample_rate_hz"] = 250000.0  # the session says 250 kHz
    return path


def _future_vcl(folder):
    from hostile_data import write_small_vcl

    folder.mkdir(parents=True, exist_ok=True)
    path = write_small_vcl(folder / "d.h5", n_calls=4)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    return path


def _empty_wav(folder):
    folder.mkdir(parents=True, exist_ok=True)
    wavfile.write(folder / "empty.wav", 125000, np.zeros((0, 4), np.float32))
    return folder / "empty.wav"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (_nan_in_a_call, "audio"),
        (_video_without_clock, "timing/fps"),
        (_rate_differs, "sample_rate_hz"),
        (_future_vcl, "format_version"),
        (_empty_wav, "n_samples"),
    ],
    ids=["nan-in-call", "video-without-clock", "rate-differs", "format-version-99", "empty-wav"],
)
def test_validate_refuses_what_the_commands_refuse(make, field, tmp_path, capsys):
    path = make(tmp_path / "in")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"field '{field}'" in err and len(err.strip().splitlines()) == 1, err


def test_predict_refuses_the_nan_session_validate_refuses(tmp_path, capsys):
    path = _nan_in_a_call(tmp_path / "in")
    argv = ["predict", "--baseline", "muse", "--data", str(path), "--out", str(tmp_path / "p.h5")]
    assert main(argv) == 1
    assert "field 'audio'" in capsys.readouterr().err
