"""The headless review loop on the command line.

session create, detect, import-calls, localize, export, review-status: their names and
behaviour are the interface scripts use.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from napari_gerbil.cli.main import main
from napari_gerbil.io.session import NOT_REVIEWED, load_session, save_session
from napari_gerbil.io.vcl import VCLDataset


def test_done_when_loop_simulate_localize_export_validate(tiny_ensemble_dir, tmp_path, capsys):
    folder = tmp_path / "S"
    session = folder / "session.gerbil.h5"
    assert main(["simulate", "session", "--duration", "20", "--out", str(folder), "--quiet"]) == 0
    assert main(["localize", str(session), "--model", str(tiny_ensemble_dir), "--quiet"]) == 0
    localized = load_session(session)
    assert localized.n_calls > 0 and localized.localized().all()
    assert (localized.user.animal == NOT_REVIEWED).all()
    out = tmp_path / "X.h5"
    assert main(["export", str(session), "--calls", "all", "--out", str(out), "--quiet"]) == 0
    assert main(["validate", str(out)]) == 0
    with VCLDataset(out) as ds:
        assert 0 < ds.n_calls <= localized.n_calls and ds.scenario == "reviewed"
    # an existing output is refused before any work, and so is the input itself
    assert main(["export", str(session), "--calls", "all", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(session), "--calls", "all", "--out", str(session)]) == 1
    assert main(["export", str(session), "--calls", "all", "--out", str(out), "--overwrite"]) == 0


def test_review_status_counts_states_and_lists_uncertain_calls(
    session_path, tiny_ensemble_dir, capsys
):
    assert main(["localize", str(session_path), "--model", str(tiny_ensemble_dir), "--quiet"]) == 0
    session = load_session(session_path)
    session.set_user_attribution(0, int(session.predicted.animal[0]))
    save_session(session, session_path)
    capsys.readouterr()
    assert main(["review-status", str(session_path), "--json", "-n", "3"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["n_calls"] == 6 and status["n_localized"] == 6 and status["n_reviewed"] == 1
    assert status["states"]["confirmed"] == 1 and sum(status["states"].values()) == 6
    assert len(status["most_uncertain"]) == 3
    assert 0 not in [c["row"] for c in status["most_uncertain"]]  # reviewed: not listed
    assert main(["review-status", str(session_path)]) == 0
    assert "most uncertain" in capsys.readouterr().out


def test_export_reviewed_needs_reviewed_calls(session_path, call_truth, tmp_path, capsys):
    out = tmp_path / "reviewed.h5"
    assert main(["export", str(session_path), "--out", str(out)]) == 1
    assert "reviewed calls" in capsys.readouterr().err and not out.exists()
    session = load_session(session_path)
    for row, (animal, _) in call_truth.items():
        session.set_user_attribution(row, animal)
    save_session(session, session_path)
    assert main(["export", str(session_path), "--out", str(out), "--node", "nose"]) == 0
    with VCLDataset(out) as ds:
        assert ds.n_calls == 5 and ds.node_names == ["nose"]  # 1 of 6 held out
    out2 = tmp_path / "all_reviewed.h5"
    assert main(["export", str(session_path), "--out", str(out2), "--no-holdout"]) == 0
    with VCLDataset(out2) as ds:
        assert ds.n_calls == 6


def test_session_create_detect_and_import(built_session, tmp_path, capsys):
    original_path, _ = built_session
    original = load_session(original_path)
    data = original_path.parent
    corners = original.arena.to_pixels(original.arena.corners_mm())
    out = tmp_path / "new.gerbil.h5"
    argv = [
        "session", "create", "--audio", str(data / "audio.h5"), "--video", str(data / "video.mp4"),
        "--poses", str(data / "poses.h5"), "--cage", "paper",
        "--corners-px", *[f"{v:.6f}" for v in corners.ravel()], "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    created = load_session(out)
    assert created.n_calls == 0 and created.animal_names == ["gerbil A", "gerbil B"]
    np.testing.assert_allclose(
        created.arena.arena_to_pixels, original.arena.arena_to_pixels, atol=1e-6
    )
    assert main(argv) == 1 and "--overwrite" in capsys.readouterr().err
    assert main([*argv[:-2], "--out", str(data / "audio.h5")]) == 1  # never over an input
    assert main([*argv, "--overwrite"]) == 0
    reviewed = load_session(out)
    reviewed.append_calls([1000], [2000])
    reviewed.set_user_attribution(0, 1)
    save_session(reviewed, out)
    assert main([*argv, "--overwrite"]) == 1  # user work is never overwritten
    assert "user reviews" in capsys.readouterr().err and load_session(out).n_calls == 1
    reviewed.clear_user_attribution(0)
    save_session(reviewed, out)
    assert main([*argv, "--overwrite"]) == 0
    bad_cage = [a if a != "paper" else "hexagon" for a in argv]
    assert main([*bad_cage, "--overwrite"]) == 1 and "built-in cages" in capsys.readouterr().err
    eight_mics = [a if a != "paper" else "paper8" for a in argv]
    assert main([*eight_mics, "--overwrite"]) == 1  # 8 mics, 4 audio channels
    assert "channels" in capsys.readouterr().err
    audio_only = tmp_path / "audio_only.gerbil.h5"
    argv_audio = ["session", "create", "--audio", str(data / "audio.h5"), "--cage", "paper"]
    assert main([*argv_audio, "--out", str(audio_only)]) == 0
    assert load_session(audio_only).video is None
    no_corners = [
        *argv_audio,
        "--video",
        str(data / "video.mp4"),
        "--poses",
        str(data / "poses.h5"),
    ]
    assert main([*no_corners, "--out", str(tmp_path / "x.gerbil.h5")]) == 1
    assert "corners" in capsys.readouterr().err

    assert main(["detect", str(out), "--quiet"]) == 0
    n_detected = load_session(out).n_calls
    assert n_detected >= 5 and f"added {n_detected} calls" in capsys.readouterr().out
    assert main(["detect", str(out), "--quiet"]) == 0  # run again: nothing new
    assert load_session(out).n_calls == n_detected
    table = tmp_path / "calls.tsv"
    table.write_text("Begin Time (s)\tEnd Time (s)\n0.01\t0.02\n0.05\t0.06\n")
    assert main(["import-calls", str(out), str(table)]) == 0
    assert load_session(out).n_calls == n_detected + 2
    table.write_text("onset\n0.1\n")
    assert main(["import-calls", str(out), str(table)]) == 1
    assert "stop column" in capsys.readouterr().err


KILL_SCRIPT = """
import sys, time
import napari_gerbil.pipeline as pipeline
from napari_gerbil.cli.main import main

slow = pipeline.localize_calls
def slowly(*args, **kwargs):
    for batch in slow(*args, **kwargs):
        yield batch
        print("BATCH", flush=True)
        time.sleep(0.5)
pipeline.localize_calls = slowly
sys.exit(main(sys.argv[1:]))
"""


def test_localize_resumes_after_a_kill(session_path, tiny_ensemble_dir, tmp_path):
    argv = [
        "localize", str(session_path), "--model", str(tiny_ensemble_dir),
        "--batch-size", "2", "--save-every", "0.001", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        seen = 0
        while seen < 2:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"localize died: {proc.stderr.read()[-2000:]}")
            seen += line.startswith("BATCH")
        time.sleep(0.2)  # the second batch has been saved by now (--save-every 0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = load_session(session_path)
    assert partial.localized().sum() == 4
    assert main(argv) == 0
    assert load_session(session_path).localized().all()


def test_import_calls_drops_duplicates_and_says_how_many(tmp_path, capsys):
    from hostile_data import write_wav_session

    session = write_wav_session(tmp_path, calls=(), reviewed=False)
    table = tmp_path / "raven.txt"
    table.write_text(
        "Selection\tView\tBegin Time (s)\tEnd Time (s)\n"
        "1\tSpectrogram 1\t0.10\t0.12\n1\tWaveform 1\t0.10\t0.12\n"
        "2\tSpectrogram 1\t0.30\t0.33\n2\tWaveform 1\t0.30\t0.33\n"
        "3\tSpectrogram 1\t0.30\t0.33\n"  # the same call selected twice
    )
    assert main(["import-calls", str(session), str(table)]) == 0
    out = capsys.readouterr().out
    assert "added 2 calls" in out and "3 duplicate rows" in out, out
    assert load_session(session).n_calls == 2


def test_export_into_a_training_set_never_repeats_a_call(
    session_path, call_truth, tmp_path, capsys
):
    session = load_session(session_path)
    for row, (animal, _) in call_truth.items():
        session.set_user_attribution(row, animal)
    save_session(session, session_path)
    first = tmp_path / "set1.h5"
    assert main(["export", str(session_path), "--out", str(first), "--no-holdout", "--quiet"]) == 0
    argv = ["export", str(session_path), "--out", str(tmp_path / "set2.h5"), "--no-holdout",
            "--training-set", str(first), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "6 already in" in capsys.readouterr().out
    with VCLDataset(first) as a, VCLDataset(tmp_path / "set2.h5") as b:
        assert a.n_calls == b.n_calls == 6
    # a correction made since replaces the old label instead of adding a second copy
    session.set_user_attribution(0, 1 - call_truth[0][0])
    save_session(session, session_path)
    argv[3] = str(tmp_path / "set3.h5")
    argv[-2] = str(tmp_path / "set2.h5")
    assert main(argv) == 0
    with VCLDataset(tmp_path / "set3.h5") as c:
        assert c.n_calls == 6
