"""``napari-gerbil cage fit``: a calibration recording -> a cage file of that room.

One small engine-rendered speaker dataset (16 positions x 4 broadband calls) in a "true"
cage that differs from the built-in ``paper`` cage: every microphone moved 5 mm, 24 degC
instead of 20, walls / floor / ceiling absorbing 0.30 / 0.55 / 0.85 instead of
0.147 / 0.636 / 0.942, and channel gains of +-1 dB.

The microphones add 12 parameters to the joint fit (13 engine evaluations per Jacobian).
Measured at this size, from the ``paper`` cage, fitting everything: 671 evaluations and
54 s (the default budget of 600 runs out), and microphone 1 ends 6.7 mm from the truth
(the others within 0.9 mm; 23.2 degC): too slow for a unit test, and 16 positions do not
pin the rig down. The fits here therefore start from a cage whose microphones the lab
measured (the true positions) and fit temperature, absorption and gains; the refusals and
the fits that must fail stop before or early in the joint fit.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import yaml

from napari_gerbil.cagefit import (
    MIN_POSITIONS,
    CageFitError,
    fit_cage,
    fitted_cage_text,
    write_fitted_cage,
)
from napari_gerbil.cagefit.report import REPORT_FILES, report_markdown, write_report
from napari_gerbil.cli.main import main
from napari_gerbil.io.cage import builtin_cage, load_cage, save_cage
from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

#: Broadband classes: every call gives time differences and level ratios.
CLASSES = ("dfm_mid", "ufm_high", "noisy_mid", "white_noise_mid")
TRUE_ABSORPTION = {"walls": 0.30, "floor": 0.55, "ceiling": 0.85}
TRUE_TEMPERATURE_C = 24.0
TRUE_GAINS_DB = [1.0, -0.5, 0.5, -1.0]  # zero mean: the fit measures gains re the mean


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """The true cage, two start cages and a speaker recording made in the true cage.

    ``start``: the true microphones, but the paper cage's acoustics, 20 degC and no gains
    (a lab that measured its microphones). ``start_warm``: the same at the true
    temperature (for the cheap fits that leave the temperature alone).
    """
    folder = tmp_path_factory.mktemp("cagefit")
    paper = builtin_cage("paper")
    step = np.random.default_rng(11).normal(size=(paper.n_mics, 3))
    step *= 5.0 / np.linalg.norm(step, axis=1, keepdims=True)  # each microphone 5 mm off
    true = paper.with_changes(
        mic_positions_mm=np.round(paper.mics + step, 3).tolist(),
        absorption=TRUE_ABSORPTION,
        temperature_c=TRUE_TEMPERATURE_C,
        mic_gains_db=TRUE_GAINS_DB,
    )
    save_cage(true, folder / "true_cage.yaml")
    start = paper.with_changes(mic_positions_mm=true.mic_positions_mm)
    save_cage(start, folder / "start.yaml")
    save_cage(start.with_changes(temperature_c=TRUE_TEMPERATURE_C), folder / "start_warm.yaml")
    cfg = ScenarioConfig(scenario="speaker", n_calls=64, seed=5, classes=CLASSES,
                         cage=str(folder / "true_cage.yaml"), grid_spacing_mm=40.0)  # fmt: skip
    data = simulate_dataset(folder / "speaker.h5", cfg)
    return SimpleNamespace(
        folder=folder,
        data=data,
        true=load_cage(folder / "true_cage.yaml"),
        start=folder / "start.yaml",
        start_warm=folder / "start_warm.yaml",
    )


@pytest.fixture(scope="module")
def fitted(calibration):
    """Temperature, absorption and gains fitted from ``start``, written with a report."""
    result = fit_cage(calibration.data, calibration.start, "absorption,temperature,gains",
                      max_evaluations=300, check_calls=32, seed=0)  # fmt: skip
    out = calibration.folder / "fitted.yaml"
    write_fitted_cage(result, out)
    write_report(result, calibration.folder / "report")
    return result, out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


# --- recovery ----------------------------------------------------------------------------


def test_fit_recovers_temperature_absorption_and_gains(calibration, fitted):
    result, _ = fitted
    cage, start = result.cage, load_cage(calibration.start)
    assert result.n_positions == 16 and result.n_calls == 64
    # measured at this size (dataset seed 5, fit seed 0): 24.15 degC; walls / floor /
    # ceiling 0.318 / 0.528 / 0.855; gains within 0.05 dB; level-ratio residual 1.42 ->
    # 1.00 dB. Tolerances: a few times those errors, far below the start's.
    assert abs(cage.temperature_c - TRUE_TEMPERATURE_C) < 1.0, cage.temperature_c
    for surface in ("walls", "floor", "ceiling"):
        before = abs(start.absorption[surface] - TRUE_ABSORPTION[surface])
        after = abs(cage.absorption[surface] - TRUE_ABSORPTION[surface])
        assert after < 0.05 and after < before, (surface, cage.absorption)
    np.testing.assert_allclose(cage.mic_gains_db, TRUE_GAINS_DB, atol=0.15)
    res = result.residuals()
    ratios = res["level ratios (dB)"]
    assert ratios["fitted"] < 0.85 * ratios["start"], res
    tdoa = res["time differences (samples)"]
    assert tdoa["fitted"] < tdoa["start"] and tdoa["fitted"] < 0.8, res
    # the decay check (32 calls drawn afresh) is too noisy here to improve reliably
    # (measured 1.32 -> 1.50 dB, and 1.32 -> 1.26 with an earlier version): reported only
    decay = res["decay after offset (dB, not fitted)"]
    assert np.isfinite([decay["start"], decay["fitted"]]).all()
    # what was not fitted stays the start cage's
    assert cage.mic_positions_mm == start.mic_positions_mm
    assert cage.scattering == start.scattering and cage.mic_pattern_p == start.mic_pattern_p
    fitted_names = {r["name"] for r in result.parameters()}
    assert fitted_names == {"temperature", "walls", "floor", "ceiling"} | {
        f"gain{k}" for k in range(4)
    }


def test_geometry_solver_recovers_the_rig_from_exact_time_differences(calibration):
    """The microphone/temperature solver alone (the first guess of every fit).

    From recorded calls its first guess is biased by the reflections that arrive within
    a few samples of the direct sound (measured here: 4 to 7 mm, 26 to 30 degC); the joint
    fit removes that, at a cost beyond a unit test (see the module docstring).
    """
    from napari_gerbil.cagefit.geometry import fit_geometry, predict_tdoa_samples
    from napari_gerbil.io.vcl import VCLDataset

    with VCLDataset(calibration.data) as ds:
        sources = np.unique(ds.locations_mm[:, 0, :], axis=0)
    assert len(sources) == 16
    true, paper = calibration.true, builtin_cage("paper")
    exact = predict_tdoa_samples(sources, true.mics, TRUE_TEMPERATURE_C, 125000.0)
    geo = fit_geometry(exact, sources, paper.mics, paper.temperature_c, 125000.0, n_bootstrap=0)
    # measured: 0.20 mm, 23.94 degC (the 30 mm prior on each microphone's move pulls a
    # little; 0.22 to 0.25 mm, 23.88 degC with the positions of another seed)
    assert np.linalg.norm(geo.mics_mm - true.mics, axis=1).max() < 0.5
    assert abs(geo.temperature_c - TRUE_TEMPERATURE_C) < 0.3
    assert geo.rms_fitted_samples < 0.01 < 1.0 < geo.rms_start_samples


# --- what is written ---------------------------------------------------------------------


def test_fitted_cage_file_round_trips(calibration, fitted, tmp_path, capsys):
    result, out = fitted
    assert load_cage(out).to_dict() == result.cage.to_dict()
    text = out.read_text()
    assert yaml.safe_load(text) == result.cage.to_dict()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert f"# data: {calibration.data} (64 calls at 16 positions)" in header
    for name in ("temperature", "walls", "floor", "ceiling", "gain0", "gain3",
                 "time differences", "level ratios", "decay after offset"):  # fmt: skip
        assert any(line.startswith(f"#   {name}") for line in header), name
    assert main(["validate", str(out)]) == 0
    assert "valid cage file" in capsys.readouterr().out
    png = tmp_path / "fitted.png"
    assert main(["cage", "show", str(out), "--out", str(png)]) == 0
    assert png.stat().st_size > 5000
    report = calibration.folder / "report"
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)
    assert {"fit.json", "report.md", "decay.png", "tdoa.png"} <= set(REPORT_FILES)
    for name in REPORT_FILES:
        if name.endswith(".png"):
            assert (report / name).stat().st_size > 5000, name
    summary = json.loads((report / "fit.json").read_text())
    assert summary["cage"] == result.cage.to_dict()
    assert "| walls |" in (report / "report.md").read_text()


def test_cli_fit_writes_cage_and_report(calibration, tmp_path, capsys):
    out, report = tmp_path / "gains.yaml", tmp_path / "report"
    argv = ["cage", "fit", str(calibration.data), "--start", str(calibration.start_warm),
            "--out", str(out), "--fit", "gains", "--check-calls", "16",
            "--report", str(report), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"fitted cage -> {out}" in printed and "gain3" in printed
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)
    summary = json.loads((report / "fit.json").read_text())
    assert load_cage(out).to_dict() == summary["cage"]
    # measured: within 0.06 dB of the true gains
    np.testing.assert_allclose(load_cage(out).mic_gains_db, TRUE_GAINS_DB, atol=0.15)
    # a second run without --overwrite refuses, and leaves the file as it was
    before = out.read_bytes()
    err = _refused(argv, capsys)
    assert str(out) in err and "--overwrite" in err
    assert out.read_bytes() == before


# --- refusals ----------------------------------------------------------------------------


def _refused(argv, capsys) -> str:
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") <= 3, err  # one error, not a traceback
    return err


def _fit_argv(data, out, *extra):
    return ["cage", "fit", data, "--start", "paper", "--out", out, "--quiet", *extra]


def test_dataset_without_locations_is_refused(calibration, tmp_path, capsys):
    data = _copy(calibration.data, tmp_path / "unlabelled.h5")
    with h5py.File(data, "a") as f:
        del f["locations"]
    out = tmp_path / "fitted.yaml"
    err = _refused(_fit_argv(data, out), capsys)
    assert str(data) in err and "field '/locations'" in err and "no positions" in err
    assert not out.exists()


def test_dataset_without_cage_size_is_refused(calibration, tmp_path, capsys):
    data = _copy(calibration.data, tmp_path / "no_dims.h5")
    with h5py.File(data, "a") as f:
        del f.attrs["arena_dims_mm"]
    out = tmp_path / "fitted.yaml"
    err = _refused(_fit_argv(data, out), capsys)
    assert str(data) in err and "field 'arena_dims_mm'" in err and "found none" in err
    assert not out.exists()


def test_too_few_positions_are_refused(calibration, tmp_path, capsys):
    data = _copy(calibration.data, tmp_path / "four_positions.h5")
    with h5py.File(data, "a") as f:
        loc = f["locations"][()]
        f["locations"][...] = loc[np.arange(len(loc)) % 16]  # the first 4 positions' calls
    out = tmp_path / "fitted.yaml"
    err = _refused(_fit_argv(data, out), capsys)
    assert str(data) in err and "field '/locations'" in err
    assert f">= {MIN_POSITIONS} distinct positions" in err and "found 4 position(s)" in err
    assert not out.exists()


def test_start_cage_with_other_microphone_count_is_refused(calibration, tmp_path, capsys):
    out = tmp_path / "fitted.yaml"
    argv = ["cage", "fit", calibration.data, "--start", "paper8", "--out", out, "--quiet"]
    err = _refused(argv, capsys)
    assert str(calibration.data) in err and "field '/audio'" in err
    assert "8 channels" in err and "found 4 channels" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "out_name", "field", "words"),
    [
        (["--fit", "absorption,walls"], "fitted.yaml", "--fit", "'absorption,walls'"),
        (["--fit", ","], "fitted.yaml", "--fit", "found nothing"),
        ([], "fitted.json", "--out", "'fitted.json'"),
    ],
)
def test_bad_options_are_refused(calibration, tmp_path, capsys, extra, out_name, field, words):
    out = tmp_path / out_name
    err = _refused(_fit_argv(calibration.data, out, *extra), capsys)
    assert f"field '{field}'" in err and words in err
    if field == "--out":
        assert str(out) in err
    assert not out.exists()


# --- fits that do not converge write nothing ---------------------------------------------


def test_swapped_positions_do_not_converge(calibration, tmp_path, capsys):
    data = _copy(calibration.data, tmp_path / "swapped.h5")
    with h5py.File(data, "a") as f:
        loc = f["locations"][()]
        # the calls of one position stay together, but the positions are permuted
        _, pos = np.unique(loc[:, 0, :], axis=0, return_inverse=True)
        pos = pos.reshape(-1)
        first = np.array([np.flatnonzero(pos == p)[0] for p in range(pos.max() + 1)])
        perm = np.random.default_rng(3).permutation(len(first))
        assert (perm != np.arange(len(perm))).mean() > 0.8
        f["locations"][...] = loc[first[perm][pos]]
    out, report = tmp_path / "fitted.yaml", tmp_path / "report"
    argv = _fit_argv(data, out, "--fit", "mics,temperature", "--report", report)
    err = _refused(argv, capsys)
    assert str(data) in err and "did not converge" in err and "Nothing was written" in err
    assert not out.exists() and not report.exists()
    with pytest.raises(CageFitError, match="did not converge"):
        fit_cage(data, "paper", "mics,temperature", check_calls=0)


def test_exhausted_evaluation_budget_does_not_converge(calibration, tmp_path, capsys):
    out, report = tmp_path / "fitted.yaml", tmp_path / "report"
    argv = ["cage", "fit", calibration.data, "--start", calibration.start_warm, "--out", out,
            "--fit", "absorption", "--max-evaluations", "1", "--check-calls", "0",
            "--report", report, "--quiet"]  # fmt: skip
    err = _refused(argv, capsys)
    assert str(calibration.data) in err
    assert "did not converge within 1 engine evaluations" in err and "Nothing was written" in err
    assert not out.exists() and not report.exists()


def test_a_fit_with_much_scattering_carries_a_caveat(fitted):
    result, _ = fitted
    assert result.caveat() is None  # scattering was not fitted here
    noisy = dataclasses.replace(result, fitted=(*result.fitted, "scattering"),
                                cage=result.cage.with_changes(scattering=0.2))  # fmt: skip
    assert "0.20" in noisy.caveat() and "docs/cage_fit.md" in noisy.caveat()
    text = fitted_cage_text(noisy)
    assert "# note: scattering 0.20" in text
    assert "**Note:** scattering 0.20" in report_markdown(noisy.summary())


def test_out_is_never_the_start_cage_file_even_with_overwrite(calibration, tmp_path, capsys):
    start = _copy(calibration.start_warm, tmp_path / "start.yaml")
    before = start.read_bytes()
    argv = ["cage", "fit", calibration.data, "--start", start, "--out", start, "--fit",
            "gains", "--overwrite", "--quiet"]  # fmt: skip
    err = _refused(argv, capsys)
    assert str(start) in err
    assert start.read_bytes() == before
