"""Issue 25, "one check per input": every command reading an input refuses it the same way.

Each hostile input of the issue, given to each command that reads it: one clear error
naming the file and the field (exit status 1), or a refusal at parse time (exit 2).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_gerbil.cli.main import main


def _build_session(request):
    """``build_session`` of tests/conftest.py (a plain import would find another conftest)."""
    root = Path(__file__).parents[1] / "conftest.py"
    for plugin in request.config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) == str(root):
            return plugin.build_session
    raise LookupError(root)


@pytest.fixture(scope="module")
def changed_session(request, tmp_path_factory):
    """A session whose audio file was replaced by another recording of the same size."""
    path, _ = _build_session(request)(tmp_path_factory.mktemp("changed") / "data")
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


@pytest.mark.parametrize("command", ["validate", "info", "session create"])
def test_wav_with_sample_rate_zero_is_refused(command, tmp_path, capsys):
    from scipy.io import wavfile

    wav = tmp_path / "r0.wav"
    wavfile.write(wav, 0, np.zeros((1000, 4), np.int16))
    out = tmp_path / "s.gerbil.h5"
    argv = {
        "validate": ["validate", wav],
        "info": ["info", wav],
        "session create": ["session", "create", "--audio", wav, "--cage", "paper", "--out", out],
    }[command]
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert str(wav) in err and "sample_rate_hz" in err and "internal error" not in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["simulate speaker", "calibrate"])
def test_cage_of_1e300_mm_is_refused(command, tiny_ensemble_dir, tmp_path, capsys):
    cage = tmp_path / "big.yaml"
    cage.write_text(
        "dims_mm: [1e300, 400, 350]\n"
        "mic_positions_mm: [[-200, -150, 300], [200, -150, 300], [200, 150, 300],"
        " [-200, 150, 300]]\n"
    )
    argv = {
        "simulate speaker": ["simulate", "speaker", "--cage", cage, "--out", tmp_path / "d.h5"],
        "calibrate": ["calibrate", "--model", tiny_ensemble_dir, "--cage", cage, "--quiet"],
    }[command]
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert str(cage) in err and "dims_mm" in err and "internal error" not in err


@pytest.mark.parametrize(
    ("field", "value"),
    [("jobs", "abc"), ("cluster", "abc"), ("n_members", 0), ("data", "d.h5"), ("jobs", True)],
)
def test_train_resume_refuses_mistyped_run_record_fields(field, value, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    record = {"network": {}, "training": {}, "n_members": 1, "jobs": 1, "data": []}
    record[field] = value
    (run / "run.json").write_text(json.dumps(record))
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert str(run / "run.json") in err and f"field '{field}'" in err
    assert "internal error" not in err


def test_calibrate_refuses_a_model_trained_for_another_cage(tiny_ensemble_dir, capsys):
    # the tiny ensemble fits the ``paper`` cage
    assert not (tiny_ensemble_dir / "attribution.yaml").exists()
    argv = ["calibrate", "--model", tiny_ensemble_dir, "--cage", "omni-corner", "--quiet"]
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert "omni-corner" in err and "internal error" not in err
    assert "dims_mm" in err or "mic_positions_mm" in err
    assert not (tiny_ensemble_dir / "attribution.yaml").exists()


def test_attribution_yaml_records_the_cage_it_was_fitted_in(tiny_ensemble_dir, tmp_path, capsys):
    from napari_gerbil.attribute import AttributionCalibration, load_calibration

    model = tmp_path / "model"
    shutil.copytree(tiny_ensemble_dir, model)
    argv = ["calibrate", "--model", model, "--cage", "paper", "--calls", "64", "--quiet"]
    assert main([str(a) for a in argv]) == 0
    assert load_calibration(model).fitted_cage == "builtin:paper"
    capsys.readouterr()
    assert main(["validate", str(model)]) == 0
    out = capsys.readouterr().out
    assert "attribution.yaml" in out and "builtin:paper" in out
    # a file written before the field existed still loads
    old = AttributionCalibration(srp_scale=12.0).to_dict()
    del old["fitted_cage"]
    (model / "attribution.yaml").write_text(json.dumps(old))
    assert load_calibration(model).fitted_cage == ""
    assert main(["validate", str(model)]) == 0


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("method: [srp\n", "<file>"),
        ("srp_scale: -5\n", "srp_scale"),
        ("method: combined\ndensity_scale: 1e9\n", "density_scale"),
        ("assign_probability: 2\n", "assign_probability"),
        ("method: magic\n", "method"),
        ("scales: 1\n", "scales"),
    ],
)
def test_validate_model_refuses_a_broken_attribution_yaml(
    text, field, tiny_ensemble_dir, tmp_path, capsys
):
    model = tmp_path / "model"
    shutil.copytree(tiny_ensemble_dir, model)
    (model / "attribution.yaml").write_text(text)
    assert main(["validate", str(model)]) == 1
    err = capsys.readouterr().err
    assert str(model / "attribution.yaml") in err and field in err
    assert "internal error" not in err


@pytest.mark.parametrize("drop", [("arena_dims_mm",), ("arena_dims_mm", "sample_rate_hz")])
def test_training_on_a_vcl_without_geometry_states_the_dims_assumed(drop, tmp_path):
    from napari_gerbil.io.cage import builtin_cage
    from napari_gerbil.io.vcl import write_vcl
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.sources import FALLBACK_ARENA_DIMS_MM, open_training_data

    cage = builtin_cage("paper")
    rng = np.random.default_rng(3)
    calls = [0.01 * rng.standard_normal((2000, 4)).astype(np.float32) for _ in range(8)]
    path = write_vcl(
        tmp_path / "d.h5", calls, rng.uniform(-100, 100, (8, 1, 2)), node_names=["nose"],
        sample_rate_hz=125000.0, arena_dims_mm=cage.dims, mic_positions_mm=cage.mics,
    )  # fmt: skip
    with h5py.File(path, "a") as f:
        for name in (*drop, "mic_positions_mm"):  # no geometry at all
            del f.attrs[name]
    with pytest.warns(UserWarning) as caught:
        data = open_training_data([path], TrainingConfig(device="cpu"), 1024)
    text = " ".join(str(w.message) for w in caught)
    assert data.metadata.arena_dims_mm == FALLBACK_ARENA_DIMS_MM
    assert "600 x 400 x 350 mm" in text and "omni-corner" in text
    assert "paper's cage" not in text
    assert ("125000 Hz" in text) == ("sample_rate_hz" in drop)


@pytest.mark.parametrize("local", ["folder", "file"])
def test_model_demo_next_to_a_local_demo_is_refused_as_ambiguous(
    local, tmp_path, capsys, monkeypatch
):
    from napari_gerbil.cli._common import resolve_model_dir

    monkeypatch.chdir(tmp_path)
    if local == "folder":
        (tmp_path / "demo").mkdir()
    else:
        (tmp_path / "demo").write_text("")
    assert main(["calibrate", "--model", "demo", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--model" in err and "built-in demo" in err and f"{local} ./demo" in err
    assert "--model ./demo" in err and "builtin:demo" in err
    assert resolve_model_dir("./demo") == Path("demo")  # the explicit path is taken


@pytest.mark.parametrize("command", ["simulate speaker", "calibrate", "session create"])
def test_cage_name_next_to_a_local_file_of_that_name_is_refused(
    command, tiny_ensemble_dir, tmp_path, capsys, monkeypatch
):
    from napari_gerbil.io.cage import load_cage

    monkeypatch.chdir(tmp_path)
    (tmp_path / "paper").write_text("dims_mm: [1, 2, 3]\n")
    wav = tmp_path / "m.wav"
    from scipy.io import wavfile

    wavfile.write(wav, 125000, np.zeros((1000, 4), np.int16))
    argv = {
        "simulate speaker": ["simulate", "speaker", "--cage", "paper", "--out", "d.h5"],
        "calibrate": ["calibrate", "--model", tiny_ensemble_dir, "--cage", "paper", "--quiet"],
        "session create": ["session", "create", "--audio", wav, "--cage", "paper", "--out", "s.h5"],
    }[command]
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert "built-in cage" in err and "file ./paper" in err and "builtin:paper" in err
    assert "internal error" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.wav", "paper"]
    assert load_cage("builtin:paper").name == "builtin:paper"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_detect_on_audio_holding_nan_or_inf_is_refused(bad, tmp_path, capsys):
    import warnings

    from scipy.io import wavfile

    wav = tmp_path / "nan.wav"
    audio = 0.01 * np.random.default_rng(0).standard_normal((125000, 4)).astype(np.float32)
    audio[50000:50010, 2] = bad
    wavfile.write(wav, 125000, audio)
    session = tmp_path / "s.gerbil.h5"
    argv = ["session", "create", "--audio", wav, "--cage", "paper", "--out", session]
    assert main([str(a) for a in argv]) == 0
    before = session.read_bytes()
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no raw numpy warnings
        assert main(["detect", str(session), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert str(wav) in err and "finite samples" in err and "sample 50000, channel 2" in err
    assert "internal error" not in err
    assert session.read_bytes() == before


def test_export_into_a_training_set_holding_a_nan_location_is_refused(
    session_path, call_truth, tmp_path, capsys
):
    from napari_gerbil.io.session import load_session, save_session

    session = load_session(session_path)
    for row, (animal, _) in call_truth.items():
        session.set_user_attribution(row, animal)
    save_session(session, session_path)
    first = tmp_path / "set1.h5"
    assert main(["export", str(session_path), "--out", str(first), "--no-holdout", "--quiet"]) == 0
    with h5py.File(first, "a") as f:
        f["locations"][1, 0, 0] = np.nan
    capsys.readouterr()
    out = tmp_path / "set2.h5"
    argv = ["export", session_path, "--out", out, "--no-holdout", "--training-set", first]
    assert main([*(str(a) for a in argv), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert str(first) in err and "/locations" in err and "call 1" in err
    assert not out.exists() and not list(tmp_path.glob("set2*"))


@pytest.fixture
def damaged_vcl(tmp_path):
    """A VCL file whose root group's object header is damaged (h5py raises KeyError)."""
    from napari_gerbil.io.cage import builtin_cage
    from napari_gerbil.io.vcl import write_vcl

    cage = builtin_cage("paper")
    rng = np.random.default_rng(4)
    calls = [0.01 * rng.standard_normal((2000, 4)).astype(np.float32) for _ in range(8)]
    path = write_vcl(
        tmp_path / "damaged.h5", calls, rng.uniform(-100, 100, (8, 1, 2)), node_names=["nose"],
        sample_rate_hz=125000.0, arena_dims_mm=cage.dims, mic_positions_mm=cage.mics,
    )  # fmt: skip
    with h5py.File(path, "r") as f:
        header = h5py.h5o.get_info(f["/"].id).addr
    data = bytearray(path.read_bytes())
    data[header + 16 : header + 32] = bytes(16)
    path.write_bytes(bytes(data))
    with pytest.raises(KeyError), h5py.File(path, "r") as f:
        f.attrs.get("napari_gerbil_format")
    return path


@pytest.mark.parametrize("command", ["predict", "train", "evaluate"])
def test_a_damaged_hdf5_file_is_refused_naming_it(command, damaged_vcl, tmp_path, capsys):
    from napari_gerbil.io.session import is_session_file

    assert not is_session_file(damaged_vcl)
    argv = {
        "predict": ["predict", "--baseline", "muse", "--data", damaged_vcl, "--out", "P.h5"],
        "train": ["train", "--preset", "tiny", "--data", damaged_vcl, "--out", "m"],
        "evaluate": ["evaluate", "--baseline", "muse", "--data", damaged_vcl, "--out", "e"],
    }[command]
    argv = [str(tmp_path / a) if a in ("P.h5", "m", "e") else str(a) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert str(damaged_vcl) in err and "internal error" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.h5"]


def test_localize_truth_of_another_session_is_refused(tiny_ensemble_dir, tmp_path, capsys):
    """`localize --truth` with another session's truth file: refused, nothing localized."""
    from napari_gerbil.io.session import load_session
    from napari_gerbil.simulate.session import SessionConfig, simulate_session

    ours = simulate_session(tmp_path / "a", SessionConfig(duration_s=6.0, seed=1,
                                                          call_rate_hz=2.0))  # fmt: skip
    other = simulate_session(tmp_path / "b", SessionConfig(duration_s=6.0, seed=2,
                                                           call_rate_hz=2.0))  # fmt: skip
    args = ["localize", str(ours.session), "--model", str(tiny_ensemble_dir), "--quiet"]
    assert main([*args, "--truth", str(other.truth)]) == 1
    err = capsys.readouterr().err
    assert str(other.truth) in err and "start_sample/stop_sample" in err
    assert (
        load_session(ours.session).predictions is None
        or not np.isfinite(load_session(ours.session).predictions.point_mm).any()
    )
    assert main([*args, "--truth", str(ours.truth)]) == 0  # its own truth is scored
    assert "against the truth" in capsys.readouterr().out


def test_a_full_disk_during_a_session_finetune_names_the_model_and_leaves_no_husk(
    tiny_ensemble_dir, session_path, tmp_path, monkeypatch, capsys
):
    """`train --finetune M --sessions S` on a full disk: the new model named, no empty -ft1/."""
    import errno

    from napari_gerbil.training import finetune as finetune_module

    model = tmp_path / "model"
    shutil.copytree(tiny_ensemble_dir, model)

    def full_disk(*args, **kwargs):
        Path(args[3]).mkdir(parents=True, exist_ok=True)  # the new model's folder, then ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... no filename

    monkeypatch.setattr(finetune_module, "train_ensemble", full_disk)
    argv = ["train", "--finetune", str(model), "--sessions", str(session_path), "--epochs", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "model-ft1" in err
    assert not (tmp_path / "model-ft1").exists()
