"""Prediction files (ensemble and baselines) of datasets and session files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_gerbil.cli.main import main
from napari_gerbil.io.audio import AudioSource
from napari_gerbil.io.cage import builtin_cage
from napari_gerbil.io.session import AudioRef, CallTable, Session, save_session
from napari_gerbil.io.vcl import VCLDataset
from napari_gerbil.model.ensemble import load_ensemble


def test_predict_command_writes_vocalocator_names(tiny_ensemble, delay_dataset, tmp_path, capsys):
    out = tmp_path / "pred.h5"
    argv = ["predict", "--model", str(tiny_ensemble), "--data", str(delay_dataset)]
    assert main([*argv, "--out", str(out), "--batch-size", "50"]) == 0
    assert "400 calls" in capsys.readouterr().out
    truth = VCLDataset(delay_dataset).source_xy_mm(0)
    with h5py.File(out, "r") as f:
        point = f["point_predictions"][()]
        assert point.shape == (400, 2)
        np.testing.assert_allclose(f["scaled_locations"][()], truth)
        np.testing.assert_allclose(f["errors_mm"][()], np.linalg.norm(point - truth, axis=-1))
        areas = f["confidence_set_areas"][()]
        assert areas.shape == (400,) and (areas > 0).all() and (areas < 600 * 400).all()
        in_set = f["location_in_confidence_set"][()]
        assert in_set.dtype == bool and 0.5 < in_set.mean() <= 1.0
        assert f["raw_model_output"].shape == (400, 2, 5)
        means = f["member_means_mm"][()]
        np.testing.assert_allclose(point, means.mean(axis=1))
        assert (f["distances_to_furthest_point"][()] > 0).all()
        assert len(f.attrs["calibration_curve"]) == 11 and 0 <= f.attrs["ece"] <= 1
        assert f.attrs["method"] == "ensemble" and f.attrs["mass"] == 0.95


def test_predict_with_a_baseline_writes_the_same_names(delay_dataset, tmp_path):
    pytest.importorskip("napari_gerbil.baselines.localize")
    out = tmp_path / "gcc.h5"
    argv = ["predict", "--baseline", "gcc-phat", "--data", str(delay_dataset)]
    assert main([*argv, "--out", str(out)]) == 0
    truth = VCLDataset(delay_dataset).source_xy_mm(0)
    with h5py.File(out, "r") as f:
        point = f["point_predictions"][()]
        assert point.shape == (400, 2)
        assert np.isnan(f["confidence_set_areas"][()]).all()
        # pure delays: the classical TDOA method localizes well
        assert np.median(np.linalg.norm(point - truth, axis=-1)) < 30.0


def _session_with_calls(delay_dataset, tmp_path, n_calls=6):
    """A continuous recording with calls of the pure-delay set pasted at known samples."""
    ds = VCLDataset(delay_dataset)
    gap = 2000
    pieces, starts, stops = [], [], []
    pos = gap
    for i in range(n_calls):
        audio = ds.call_audio(i)
        starts.append(pos)
        stops.append(pos + len(audio))
        pieces += [np.zeros((gap, 4), np.float32), audio]
        pos += len(audio) + gap
    pieces.append(np.zeros((gap, 4), np.float32))
    rec = tmp_path / "recording.h5"
    with h5py.File(rec, "w") as f:
        d = f.create_dataset("audio", data=np.concatenate(pieces)[gap:])
        d.attrs["sample_rate_hz"] = 125000.0
    starts = np.array(starts) - gap
    stops = np.array(stops) - gap
    session = Session(
        audio=AudioRef.from_source(AudioSource.open(rec)),
        arena=builtin_cage("omni-corner").arena(),  # the delay dataset's cage
        calls=CallTable.from_samples(starts, stops),
    )
    return session, [ds.call_audio(i) for i in range(n_calls)], ds.source_xy_mm(0)[:n_calls]


def test_predict_command_on_a_session_file(tiny_ensemble, delay_dataset, tmp_path):
    session, calls, _ = _session_with_calls(delay_dataset, tmp_path)
    direct = load_ensemble(tiny_ensemble).predict(calls)
    save_session(session, tmp_path / "s.gerbil.h5")
    out = tmp_path / "session_pred.h5"
    argv = ["predict", "--model", str(tiny_ensemble), "--data", str(tmp_path / "s.gerbil.h5")]
    assert main([*argv, "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["point_predictions"][()], direct.point_mm, atol=1e-4)
        assert "location_in_confidence_set" not in f  # no truth in a session
