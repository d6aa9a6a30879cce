"""Issue 13 findings 2, 3 and 7 for ``predict``: no silent overwrite (checked before
computing), changed session audio refused, validate's checks applied, long calls cheap."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest
from scipy.io import wavfile

from hostile_data import train_tiny_model, write_small_vcl, write_wav_session
from napari_gerbil.cli.main import main
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.ensemble import load_ensemble
from napari_gerbil.model.predict import predict_file


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    data = write_small_vcl(root / "d.h5", n_calls=16)
    return data, train_tiny_model(data, root / "tiny")


def _predict(*argv):
    return main(["predict", *map(str, argv)])


def test_out_equal_to_data_never_replaces_it(built, tmp_path, capsys):
    data, model = built
    copy = tmp_path / "d.h5"
    copy.write_bytes(data.read_bytes())
    before = copy.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert _predict("--model", model, "--data", copy, "--out", copy, *extra) == 1
        assert "different from every input" in capsys.readouterr().err
    assert copy.read_bytes() == before


def test_reviewed_session_is_never_replaced(built, tmp_path, capsys):
    _, model = built
    session = write_wav_session(tmp_path / "s", reviewed=True)
    other = write_wav_session(tmp_path / "o", reviewed=False)
    before = session.read_bytes()
    assert _predict("--model", model, "--data", other, "--out", session, "--overwrite") == 1
    assert "reviewed" in capsys.readouterr().err
    assert session.read_bytes() == before


def test_existing_out_needs_overwrite_and_is_checked_before_computing(
    built, tmp_path, capsys, monkeypatch
):
    data, model = built
    out = tmp_path / "p.h5"
    out.write_bytes(b"earlier results")
    import napari_gerbil.model.ensemble as ens

    def no_load(*a, **k):  # the check must come before the model is even loaded
        raise AssertionError("computed before checking --out")

    monkeypatch.setattr(ens, "load_ensemble", no_load)
    assert _predict("--model", model, "--data", data, "--out", out) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"earlier results"
    assert _predict("--model", model, "--data", data, "--out", tmp_path) == 1
    assert "a directory" in capsys.readouterr().err
    monkeypatch.undo()
    assert _predict("--model", model, "--data", data, "--out", out, "--overwrite") == 0
    with h5py.File(out) as f:
        assert f["point_predictions"].shape == (16, 2)


def test_session_with_replaced_audio_is_refused(built, tmp_path, capsys):
    """Finding 3: validate knew the audio changed, predict used it anyway."""
    _, model = built
    session = write_wav_session(tmp_path / "s", reviewed=False)
    wav = tmp_path / "s" / "rec.wav"
    rng = np.random.default_rng(9)
    wavfile.write(wav, 125000, rng.standard_normal((125000, 4)).astype(np.float32))
    out = tmp_path / "p.h5"
    assert _predict("--model", model, "--data", session, "--out", out) == 1
    err = capsys.readouterr().err
    assert "audio[0]" in err and "changed" in err and str(session) in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("length_idx", "last offset"),
        ("outside", "inside the arena"),
        ("silent", "silent"),
        ("nan_audio", "NaN/inf"),
    ],
)
def test_predict_applies_validates_checks(built, tmp_path, capsys, damage, message):
    """Finding 7: predict skipped the checks validate makes."""
    _, model = built
    path = write_small_vcl(tmp_path / "d.h5", n_calls=16)
    with h5py.File(path, "r+") as f:
        if damage == "length_idx":
            f["length_idx"][-1] -= 10
        elif damage == "outside":
            f["locations"][4, 0, 1] = -900.0
        elif damage == "silent":
            a, b = f["length_idx"][2], f["length_idx"][3]
            f["audio"][a:b] = 0
        else:
            f["audio"][100, 1] = np.inf
    out = tmp_path / "p.h5"
    assert main(["validate", str(path)]) == 1
    assert message in capsys.readouterr().err
    assert _predict("--model", model, "--data", path, "--out", out) == 1
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_one_enormous_call_reads_only_the_model_input(built, tmp_path):
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.io.vcl import write_vcl

    _, model = built
    ens = load_ensemble(model)
    rng = np.random.default_rng(0)
    cage = default_cage()
    long_call = (0.1 * rng.standard_normal((4_000_000, 4))).astype(np.float32)  # 32 s
    path = write_vcl(
        tmp_path / "long.h5", [long_call[:900], long_call], np.zeros((2, 1, 3)),
        node_names=["s"], sample_rate_hz=125000.0, arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = predict_file(path, tmp_path / "p.h5", ensemble=ens)
    assert time.perf_counter() - t0 < 30
    direct = ens.predict([long_call[:900], long_call])
    np.testing.assert_allclose(result.point_mm, direct.point_mm, atol=1e-6)
    with pytest.raises(InvalidInputError, match=r"call 1 of 4000000 samples \(32.0 s\)"):
        predict_file(path, tmp_path / "q.h5", baseline="muse")
    assert not (tmp_path / "q.h5").exists()


def test_nonsense_numbers_are_refused(built, tmp_path, capsys):
    data, model = built
    for option, value in (("--mass", "2"), ("--mass", "nan"), ("--mass", "0"),
                          ("--batch-size", "0"), ("--batch-size", "-3")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            _predict("--model", model, "--data", data, "--out", tmp_path / "p.h5", option, value)
        assert exit_.value.code == 2
        assert f"argument {option}" in capsys.readouterr().err
    with pytest.raises(InvalidInputError, match="mass"):
        predict_file(data, tmp_path / "p.h5", baseline="muse", mass=float("inf"))


def test_non_finite_session_audio_never_reaches_the_model(built, tmp_path, capsys):
    _, model = built
    folder = tmp_path / "s"
    folder.mkdir()
    audio = np.random.default_rng(0).standard_normal((125000, 4)).astype(np.float32)
    audio[1500, 2] = np.nan  # inside call 1 (samples 1000..2000)
    wavfile.write(folder / "rec.wav", 125000, audio)
    session = write_wav_session(folder, reviewed=False)
    out = tmp_path / "p.h5"
    assert _predict("--model", model, "--data", session, "--out", out) == 1
    err = capsys.readouterr().err
    assert "NaN/inf in call 1" in err and str(session) in err
    assert not out.exists()
    ens = load_ensemble(model)
    with pytest.raises(InvalidInputError, match="NaN/inf in call 0"):
        ens.predict([audio[1000:2000]])


def test_a_deleted_model_folder_is_named_as_the_caller_names_it(tmp_path, capsys):
    from napari_gerbil.errors import InvalidInputError
    from napari_gerbil.model.ensemble import load_ensemble

    gone = tmp_path / "model-that-was-deleted"
    with pytest.raises(InvalidInputError) as err:
        load_ensemble(gone, field="Ensemble", hint="choose it again")
    assert err.value.field == "Ensemble" and "--model" not in str(err.value)
    assert "moved or deleted" in err.value.found and "choose it again" in str(err.value)
    data = write_small_vcl(tmp_path / "d.h5", n_calls=4)
    assert _predict("--model", gone, "--data", data, "--out", tmp_path / "p.h5") == 1
    assert "field '--model'" in capsys.readouterr().err  # the command line names its flag
