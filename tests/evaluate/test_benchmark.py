"""The benchmark: dataset splitting and one end-to-end run at the smoke scale."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from napari_gerbil.baselines import speed_of_sound_m_s
from napari_gerbil.baselines.synthetic import delayed_chirps
from napari_gerbil.cli.main import main
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.evaluate.benchmark import SCALES, run_benchmark, split_dataset
from napari_gerbil.io.vcl import VCLDataset, write_vcl
from napari_gerbil.simulate.stimuli import STIMULUS_CLASSES

MICS_MM = np.array(
    [[-280.0, -180.0, 340.0], [280.0, -180.0, 340.0], [280.0, 180.0, 340.0], [-280.0, 180.0, 340.0]]
)


def test_split_is_disjoint_complete_and_keeps_labels(tmp_path):
    rng = np.random.default_rng(2)
    n = 20
    src = np.c_[rng.uniform(-250, 250, n), rng.uniform(-150, 150, n), np.full(n, 40.0)]
    audio = delayed_chirps(src, MICS_MM, 125_000, speed_of_sound_m_s(20.0), 1024)
    classes = [f"c{i}" for i in range(n)]
    path = write_vcl(
        tmp_path / "d.h5", list(audio), src[:, None, :], node_names=["speaker"],
        sample_rate_hz=125_000, arena_dims_mm=(600, 400, 350), mic_positions_mm=MICS_MM,
        stimulus_classes=classes, scenario="speaker",
    )  # fmt: skip
    trainval, test = split_dataset(path, 0.25, seed=0)
    a, b = VCLDataset(trainval), VCLDataset(test)
    assert (a.n_calls, b.n_calls) == (15, 5)
    assert sorted(a.stimulus_classes + b.stimulus_classes) == sorted(classes)
    for part in (a, b):
        for k, cls in enumerate(part.stimulus_classes):
            i = classes.index(cls)
            assert np.allclose(part.locations_mm[k, 0], src[i])
            assert np.array_equal(part.call_audio(k), audio[i])
        assert np.allclose(part.mic_positions_mm, MICS_MM)
    mtime = trainval.stat().st_mtime_ns
    assert split_dataset(path, 0.25, seed=0) == (trainval, test)  # reused, not rewritten
    assert trainval.stat().st_mtime_ns == mtime


def test_unknown_scale_is_rejected(tmp_path):
    with pytest.raises(InvalidInputError, match="scale"):
        run_benchmark(tmp_path, "huge")
    with pytest.raises(InvalidInputError, match="stimulus_groups"):
        run_benchmark(tmp_path, SCALES["smoke"].replace(stimulus_groups="volume"))


@pytest.mark.slow
def test_smoke_benchmark_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--smoke", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    for dataset in ("speaker", "robot", "animal"):
        med = results[dataset]["median_error_mm"]
        assert set(med) >= {"single", "ensemble", "muse", "gcc_phat", "fingerprint"}
        assert all(v > 0 for m, v in med.items() if m != "fingerprint")
        # the lookup returns training positions: exact wherever it recalls a test call
        at_training = results[dataset]["test_calls_at_training_positions"]
        assert 0.0 <= at_training <= 1.0
        if at_training == 0.0:
            assert med["fingerprint"] > 0
        assert set(results[dataset]["ece"]) == {"single", "ensemble", "ensemble_t"}
        temperature = results[dataset]["ensemble_t_temperature"]
        assert 0.05 <= temperature <= 50  # the fitted covariance scale, within its bounds
        assert med["ensemble_t"] == pytest.approx(med["ensemble"])  # scaling moves no mean
        assert len(results[dataset]["errors_mm"]["muse"]) == results[dataset]["n_test_calls"]
    # headline test calls sit at positions no model trained on (an offset speaker grid,
    # other robot and animal walks); the on-grid held-out calls are reported as recall
    for dataset in ("speaker", "robot", "animal"):
        assert results[dataset]["test_calls_at_training_positions"] == 0.0
        assert results[dataset]["median_nearest_training_position_mm"] > 0.0
    assert results["speaker"]["median_nearest_training_position_mm"] >= 10.0 - 1e-6
    grid = results["speaker"]["on_grid_recall"]
    assert grid["test_calls_at_training_positions"] == 1.0
    assert grid["median_error_mm"]["fingerprint"] >= 0.0
    assert np.array(results["dataset_matrix"]["median_error_mm"]).shape == (4, 3)
    assert len(results["scaling"]["median_error_mm"]) == 2
    # data-engine panels: learning curve over distinct positions, shift matrix
    curve = results["learning_curve"]
    assert [p["positions"] for p in curve["points"]] == list(SCALES["smoke"].curve_sizes)
    assert all(p["median_error_mm"] > 0 for p in curve["points"])
    assert set(curve["power_law"]) >= {"a", "b", "positions_for_10mm", "positions_for_5mm"}
    rows = results["shift"]["rows"]
    assert set(rows) == {
        "in_distribution", "cage", "damped", "reverberant", "bare", "mic_positions", "cage_size"
    }  # fmt: skip
    assert rows["in_distribution"]["ratio_to_in_distribution"] == pytest.approx(1.0)
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert results["scale"]["speaker_calls"] == SCALES["smoke"].speaker_calls
    # attribution panel: every method on the same simulated 2- and 3-animal sessions
    panel = results["attribution"]
    assert set(panel["methods"]) == {"srp", "mixture", "combined"}
    assert panel["default_method"] in panel["methods"]
    for row in panel["methods"].values():
        assert set(row["by_distance_cm"]) == {"0-5", "5-10", "10-20", "20+"}
        assert sum(b["n"] for b in row["by_distance_cm"].values()) == row["n"] > 0
        assert all(set(b) == {"n", "assigned", "right"} for b in row["by_distance_cm"].values())
        assert row["assigned"] is None or 0.0 <= row["assigned"] <= 1.0
    # two axes: room x caller; the headline is the worst row with plausible callers
    assert set(panel["physics"]) == {"paper / plausible", "paper / cardioid"}
    for row in panel["physics"].values():
        assert set(row) >= {"cage", "caller", "2_animals", "3_animals", "muse_median_error_mm"}
    assert all(w["caller"] == "plausible" for w in panel["worst"].values())
    assert "## Attribution: which animal called" in report_text(out)
    assert (out / "attribution.png").stat().st_size > 1000
    assert len(results["checks"]) == 2
    report = (out / "report.md").read_text()
    assert "`ensemble_t` is the ensemble with one covariance scale" in report
    assert "## Recall or localization?" in report
    assert "recall of trained positions, not localization" in report
    assert "## Shift matrix" in report and "## Learning curve (tables)" in report
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert len(images) >= 9
    for image in images:
        assert (out / image).stat().st_size > 1000
    assert "PASS" in capsys.readouterr().out or "FAIL" in report


def report_text(out):
    return (out / "report.md").read_text()


@pytest.mark.slow
def test_full_scale_settings_run_in_miniature(tmp_path):
    """The --full settings at a tiny size, so that a GPU run does not fail hours in.

    SGD without clipping, 18-class stimulus matrix, four baselines.
    """
    scale = SCALES["full"].replace(
        speaker_calls=72, robot_calls=16, animal_calls=16, test_fraction=0.25, epochs=1,
        preset="tiny", n_members=2, aux_epochs=1, scaling_sizes=(6,), n_examples=2,
        curve_sizes=(32,), curve_preset="tiny", curve_epochs=1, curve_test_calls=32,
        attribution_duration_s=6.0, attribution_calibration_calls=64,
    )  # fmt: skip
    results = run_benchmark(tmp_path, scale)
    methods = set(results["speaker"]["median_error_mm"])
    assert methods >= {"muse", "muse_jackknife", "srp_phat", "gcc_phat", "ensemble"}
    matrix = results["stimulus_matrix"]
    assert matrix["groups"] == "class" and matrix["train"]  # some class has 3 calls
    assert set(matrix["train"]) <= set(STIMULUS_CLASSES)  # rows are classes, not types
    shape = (len(matrix["train"]), len(matrix["test"]))
    assert np.asarray(matrix["median_error_mm"]).shape == shape
    assert (tmp_path / "stimulus_matrix.png").exists()
    assert results["scale"]["optimizer"] == "sgd" and results["scale"]["clip_grad_norm"] == 0.0
