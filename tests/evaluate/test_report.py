"""Benchmark figures and the report writer."""

from __future__ import annotations

import json

import numpy as np
from matplotlib.image import imread

from napari_gerbil.evaluate import plots
from napari_gerbil.evaluate.metrics import power_law_fit
from napari_gerbil.evaluate.report import acceptance_checks, write_report_md, write_results_json


def _png_ok(path):
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # something was drawn


def test_every_figure_renders(tmp_path, rng):
    errors = {"ensemble": rng.gamma(2, 3, 200), "muse": rng.gamma(2, 30, 200)}
    _png_ok(plots.plot_error_cdfs(errors, tmp_path / "cdf.png", "speaker"))
    nominal = np.linspace(0, 1, 21)
    curves = {"single": (nominal, nominal**2), "ensemble": (nominal, nominal)}
    _png_ok(plots.plot_calibration(curves, tmp_path / "cal.png"))
    square = np.array([[0, 0], [30, 0], [30, 20], [0, 20]], dtype=float)
    example = {
        "true_mm": np.array([10.0, 10.0]),
        "single": {"polygons_mm": [square], "means_mm": np.zeros((1, 2)), "area_mm2": 600.0},
        "ensemble": {
            "polygons_mm": [square * 2],
            "means_mm": rng.normal(size=(5, 2)),
            "area_mm2": 2400.0,
        },
    }
    _png_ok(plots.plot_confidence_sets([example, example], (600, 400), tmp_path / "sets.png"))
    matrix = rng.uniform(1, 100, (3, 4))
    matrix[0, 1] = np.nan
    _png_ok(plots.plot_matrix(matrix, list("abc"), list("wxyz"), tmp_path / "m.png", "gen"))
    n = np.array([100, 200, 400, 800])
    e = 80 * n**-0.5
    _png_ok(plots.plot_scaling(n, e, power_law_fit(n, e), tmp_path / "scaling.png"))


def _results(ens_med, ens_ece):
    return {
        "scale_name": "smoke",
        "scale": {"calls": 10},
        "speaker": {
            "median_error_mm": {"single": 5.0, "ensemble": ens_med, "muse": 30.0, "gcc_phat": 20.0},
            "ece": {"single": 0.2, "ensemble": ens_ece},
            "p90_error_mm": {"single": 9.0, "ensemble": np.float64(8.0), "muse": np.nan},
        },
        "dataset_matrix": {
            "train": ["speaker", "all"],
            "test": ["speaker", "robot"],
            "median_error_mm": np.array([[4.0, 50.0], [5.0, 9.0]]),
        },
    }


def test_acceptance_checks_follow_the_numbers():
    good = acceptance_checks(_results(4.0, 0.05))
    assert [c["passed"] for c in good] == [True, True]
    bad = acceptance_checks(_results(12.0, 0.3))
    assert [c["passed"] for c in bad] == [False, False]
    assert "2.50x" in bad[0]["measured"]
    with_intervals = _results(12.0, 0.3)
    with_intervals["speaker"]["bootstrap_95"] = {
        "muse_over_ensemble_median": [1.5, 3.5], "ece_ensemble_minus_single": [-0.02, 0.2]
    }  # fmt: skip
    measured = [c["measured"] for c in acceptance_checks(with_intervals)]
    assert "(95% bootstrap interval 1.50-3.50x)" in measured[0]
    assert "difference +0.100, 95% bootstrap interval -0.020 to +0.200" in measured[1]


def test_results_json_and_report(tmp_path):
    results = _results(12.0, 0.05)
    results["checks"] = acceptance_checks(results)
    path = write_results_json(results, tmp_path / "results.json")
    loaded = json.loads(path.read_text())
    assert loaded["speaker"]["median_error_mm"]["muse"] == 30.0
    assert loaded["speaker"]["p90_error_mm"]["muse"] is None  # NaN -> null
    assert loaded["dataset_matrix"]["median_error_mm"] == [[4.0, 50.0], [5.0, 9.0]]
    (tmp_path / "m.png").write_bytes(b"")
    report = write_report_md(results, {"dataset_matrix": "m.png"}, tmp_path / "report.md")
    text = report.read_text()
    assert "**FAIL** speaker: ensemble median error >= 3x below MUSE" in text
    assert "**PASS** speaker: ensemble ECE below single-model ECE" in text
    assert "![dataset_matrix](m.png)" in text
    assert "| speaker | 5.0 | 12.0 | 30.0 | 20.0 |" in text
    assert "| all | 5.0 | 9.0 |" in text
