"""Temperature (covariance scale) fitting and the calibration report."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.model.calibration import calibration_report, fit_temperature
from napari_gerbil.model.mixture import MixturePrediction


def test_fitted_temperature_undoes_an_overconfident_covariance(rng):
    n = 300
    means = rng.uniform(-200, 200, (n, 2, 2))
    chol = np.tile(np.eye(2) * 12.0, (n, 2, 1, 1))
    truth_model = MixturePrediction(means, chol)
    truth = truth_model.sample(1, rng)[:, 0]
    overconfident = truth_model.with_temperature(0.25)  # covariances 4x too small
    t = fit_temperature(overconfident, truth)
    assert t == pytest.approx(4.0, rel=0.2)
    before = calibration_report(overconfident, truth, (600, 400, 350))
    after = calibration_report(overconfident.with_temperature(t), truth, (600, 400, 350))
    assert before.coverage_95 < 0.8 and abs(after.coverage_95 - 0.95) < 0.05
    assert after.ece < before.ece
