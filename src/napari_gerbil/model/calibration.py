"""Calibration: observed vs nominal coverage of the confidence sets, ECE, temperature.

For each call with a known source we find the smallest p whose p-set contains it
(:func:`~napari_gerbil.model.confidence.hdr_levels`); the observed coverage at nominal
p is the fraction of calls with level <= p. A calibrated model has observed = nominal.
The expected calibration error (ECE) is the mean absolute gap over nominal p in
[0, 1]. An optional temperature ``t`` scales every member covariance by ``t``; it is
fitted by minimizing the mixture's negative log-likelihood of the validation sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from napari_gerbil.model.confidence import DEFAULT_RESOLUTION_MM, hdr_levels
from napari_gerbil.model.mixture import MixturePrediction

#: Nominal probabilities of the coverage curve.
NOMINAL = np.linspace(0.0, 1.0, 101)


@dataclass
class CalibrationReport:
    """Coverage curve and summary numbers of a set of predictions."""

    nominal: np.ndarray  # (P,)
    observed: np.ndarray  # (P,)
    ece: float
    coverage_95: float
    n_calls: int

    def to_dict(self) -> dict:
        """Plain types (JSON)."""
        return {
            "nominal": self.nominal.round(4).tolist(),
            "observed": self.observed.round(4).tolist(),
            "ece": float(self.ece),
            "coverage_95": float(self.coverage_95),
            "n_calls": int(self.n_calls),
        }


def coverage_curve(levels: np.ndarray, nominal: np.ndarray = NOMINAL) -> np.ndarray:
    """Observed coverage at each nominal p: fraction of ``levels`` <= p."""
    levels = np.sort(np.asarray(levels, dtype=float))
    if levels.size == 0:
        return np.full(len(nominal), np.nan)
    return np.searchsorted(levels, nominal, side="right") / levels.size


def expected_calibration_error(levels: np.ndarray, nominal: np.ndarray = NOMINAL) -> float:
    """Mean |observed - nominal| coverage over ``nominal``."""
    return float(np.mean(np.abs(coverage_curve(levels, nominal) - nominal)))


def calibration_report(
    prediction: MixturePrediction,
    truth_mm: np.ndarray,
    arena_dims_mm,
    resolution_mm: float = DEFAULT_RESOLUTION_MM,
) -> CalibrationReport:
    """Coverage curve, ECE and 95% coverage of predictions against known sources (B, 2)."""
    levels = hdr_levels(prediction, truth_mm, arena_dims_mm, resolution_mm)
    observed = coverage_curve(levels)
    return CalibrationReport(
        NOMINAL,
        observed,
        float(np.mean(np.abs(observed - NOMINAL))),
        float(np.mean(levels <= 0.95)),
        len(levels),
    )


def mixture_nll(prediction: MixturePrediction, truth_mm: np.ndarray) -> float:
    """Mean negative log density (mm) of the sources under their mixtures."""
    truth = np.asarray(truth_mm, dtype=float).reshape(-1, 1, 2)
    return float(-prediction.log_density(truth).mean())


def fit_temperature(
    prediction: MixturePrediction, truth_mm: np.ndarray, bounds: tuple[float, float] = (0.05, 50)
) -> float:
    """Covariance scale minimizing the mixture NLL of the known sources."""
    result = minimize_scalar(
        lambda log_t: mixture_nll(prediction.with_temperature(float(np.exp(log_t))), truth_mm),
        bounds=(np.log(bounds[0]), np.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-3},
    )
    return float(np.exp(result.x))
