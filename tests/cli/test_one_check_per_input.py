"""Issue 25, "one check per input": every command reading an input refuses it the same way.

Each hostile input of the issue, given to each command that reads it: one clear error
naming the file and the field (exit status 1), or a refusal at parse time (exit 2).
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from conftest import build_session
from napari_gerbil.cli.main import main


@pytest.fixture(scope="module")
def changed_session(tmp_path_factory):
    """A session whose audio file was replaced by another recording of the same size."""
    path, _ = build_session(tmp_path_factory.mktemp("changed") / "data")
    audio = path.parent / "audio.h5"
    size = audio.stat().st_size
    with h5py.File(audio, "r") as f:
        shape, chunks = f["audio"].shape, f["audio"].chunks
        rate = f.attrs["sample_rate_hz"]
    audio.unlink()
    other = 0.002 * np.random.default_rng(77).standard_normal(shape)
    with h5py.File(audio, "w") as f:
        f.create_dataset("audio", data=other.astype(np.float32), chunks=chunks)
        f.attrs["sample_rate_hz"] = rate
    assert audio.stat().st_size == size  # same size: only the checksum tells
    return path


@pytest.mark.parametrize("command", ["validate", "train", "localize", "export", "detect"])
def test_session_with_replaced_audio_is_refused_by_every_command(
    command, changed_session, tiny_ensemble_dir, tmp_path, capsys
):
    copy = tmp_path / "s.gerbil.h5"
    shutil.copy(changed_session, copy)
    argv = {
        "validate": ["validate", copy],
        "train": ["train", "--preset", "tiny", "--sessions", copy, "--out", tmp_path / "m"],
        "localize": ["localize", copy, "--model", tiny_ensemble_dir, "--quiet"],
        "export": ["export", copy, "--calls", "all", "--out", tmp_path / "x.h5"],
        "detect": ["detect", copy, "--quiet"],
    }[command]
    before = copy.read_bytes()
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert str(copy) in err and "audio[0]" in err and "changed" in err
    assert copy.read_bytes() == before  # nothing written into it
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["train", "--preset", "tiny", "--sessions", "S.gerbil.h5", "./S.gerbil.h5"], "--sessions"),
        (["session", "create", "--audio", "m.wav", "m.wav", "m.wav", "m.wav"], "--audio"),
        (
            ["session", "create", "--audio", "m.wav", "--animal-names", "a", "a"],
            "--animal-names",
        ),
    ],
)
def test_repeated_values_are_refused_at_parse_time(argv, option, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "S.gerbil.h5").write_bytes(b"")
    (tmp_path / "m.wav").write_bytes(b"")
    tail = ["--out", "o"] if argv[0] == "train" else ["--cage", "paper", "--out", "o.gerbil.h5"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *tail])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "more than once" in err
