"""Evaluation metrics: errors, CDFs, calibration curves / ECE, power-law fits."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.evaluate.metrics import (
    error_cdf,
    error_summary,
    localization_errors_mm,
    mixture_calibration,
    paired_bootstrap_interval,
    power_law_fit,
)
from napari_gerbil.model.mixture import MixturePrediction

ARENA_MM = (600.0, 400.0, 350.0)


def test_errors_and_summary():
    pred = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    true = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 5.0], [0.0, 0.0, 5.0]])  # z is ignored
    err = localization_errors_mm(pred, true)
    assert np.allclose(err, [0.0, 5.0, 10.0])
    summary = error_summary(err)
    assert summary["median_mm"] == 5.0 and summary["n"] == 3
    assert summary["within_5_mm"] == pytest.approx(2 / 3)
    assert summary["p90_mm"] == pytest.approx(9.0)
    x, f = error_cdf([3.0, 1.0, 2.0])
    assert np.allclose(x, [1, 2, 3]) and np.allclose(f, [1 / 3, 2 / 3, 1])


def test_metric_inputs_are_checked():
    with pytest.raises(InvalidInputError, match="predicted_mm"):
        localization_errors_mm(np.zeros((3, 3, 2)), np.zeros((3, 2)))
    with pytest.raises(InvalidInputError, match="predicted_mm"):
        localization_errors_mm(np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(InvalidInputError, match="errors_mm"):
        error_summary([])
    with pytest.raises(InvalidInputError):
        power_law_fit([1, 2], [1.0, -1.0])


def _mixture_case(rng, n, shrink):
    """Truth drawn from a 3-member mixture; the prediction's covariances scaled by shrink."""
    centre = np.c_[rng.uniform(-200, 200, n), rng.uniform(-120, 120, n)]
    means = centre[:, None] + rng.normal(0, 4, (n, 3, 2))
    chol = np.zeros((n, 3, 2, 2))
    chol[..., 0, 0] = rng.uniform(5, 10, (n, 3))
    chol[..., 1, 1] = rng.uniform(5, 10, (n, 3))
    chol[..., 1, 0] = rng.uniform(-3, 3, (n, 3))
    truth = MixturePrediction(means, chol).sample(1, rng)[:, 0]
    return MixturePrediction(means, chol * shrink), truth


def test_mixture_calibration_detects_overconfidence(rng):
    good, truth = _mixture_case(rng, 300, 1.0)
    calibrated = mixture_calibration(good, truth, ARENA_MM)
    assert calibrated["ece"] < 0.05
    assert abs(calibrated["coverage_at_mass"] - 0.95) < 0.04
    assert calibrated["levels"].shape == (300,) and calibrated["set_area_mm2"].shape == (300,)
    over = mixture_calibration(
        MixturePrediction(good.means_mm, good.chol_mm * 0.4), truth, ARENA_MM
    )
    assert over["ece"] > calibrated["ece"] + 0.15
    assert over["coverage_at_mass"] < 0.8
    assert np.median(over["set_area_mm2"]) < 0.3 * np.median(calibrated["set_area_mm2"])


def test_power_law_fit_recovers_exponent():
    n = np.array([100, 300, 1000, 3000, 10000])
    fit = power_law_fit(n, 50.0 * n**-0.4)
    assert fit["a"] == pytest.approx(50.0) and fit["b"] == pytest.approx(0.4)
    assert fit["r2"] == pytest.approx(1.0)


def test_paired_bootstrap_interval_covers_the_truth_and_pairs_the_calls(rng):
    # the median of 400 standard normal draws: the interval holds 0 and is about
    # +-1.96 * 1.2533 / sqrt(400) = +-0.12 wide
    low, high = paired_bootstrap_interval(np.median, [rng.normal(size=400)])
    assert low < 0 < high and 0.15 < high - low < 0.35
    # paired: b = a + 1 call by call, so every resample's mean difference is exactly 1
    a = rng.normal(size=50)
    low, high = paired_bootstrap_interval(lambda x, y: np.mean(y - x), [a, a + 1.0])
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="samples"):
        paired_bootstrap_interval(np.mean, [np.ones(3), np.ones(4)])
