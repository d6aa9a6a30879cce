"""Microphone positions and the speed of sound from direct-path time differences.

With every source position known, each microphone pair's time difference
``(|s - m_i| - |s - m_j|) / c(T)`` constrains the microphones and the temperature. The
fit is a robust nonlinear least squares (scipy ``least_squares``, Cauchy loss: echoes
that beat the direct path in a few calls do not pull it), its uncertainty a bootstrap
over positions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import least_squares

from napari_gerbil.cagefit.features import mic_pairs
from napari_gerbil.physics import speed_of_sound_m_s

#: Robust scale (samples) of a time-difference residual.
TDOA_SCALE_SAMPLES = 0.5
#: Prior width (mm) on each microphone's move from the start cage (keeps directions the
#: data cannot see, such as a microphone's height when all sources lie on the floor,
#: near where the lab put it).
MIC_PRIOR_MM = 30.0
#: Bootstrap resamples of the positions.
N_BOOTSTRAP = 100


@dataclasses.dataclass
class GeometryFit:
    """Result of :func:`fit_geometry` (arena mm, degrees C, samples)."""

    mics_mm: np.ndarray  # (n_mics, 3)
    temperature_c: float
    mics_sd_mm: np.ndarray  # (n_mics, 3) bootstrap standard deviation
    temperature_sd_c: float
    measured_samples: np.ndarray  # (n_positions, n_pairs) median measured TDOA
    start_samples: np.ndarray  # the start cage's prediction
    fitted_samples: np.ndarray  # the fitted cage's prediction
    success: bool
    message: str

    @property
    def rms_start_samples(self) -> float:
        """RMS time-difference residual of the start cage."""
        return _rms(self.measured_samples - self.start_samples)

    @property
    def rms_fitted_samples(self) -> float:
        """RMS time-difference residual of the fitted cage."""
        return _rms(self.measured_samples - self.fitted_samples)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean(x**2)))


def predict_tdoa_samples(
    sources_mm: np.ndarray, mics_mm: np.ndarray, temperature_c: float, fs_hz: float
) -> np.ndarray:
    """(n_sources, n_pairs) direct-path time differences ``t_i - t_j`` in samples."""
    pairs = mic_pairs(len(mics_mm))
    d = np.linalg.norm(sources_mm[:, None, :] - mics_mm[None, :, :], axis=2) / 1000.0
    c = speed_of_sound_m_s(temperature_c)
    return (d[:, pairs[:, 0]] - d[:, pairs[:, 1]]) / c * fs_hz


def position_medians(values: np.ndarray, call_position: np.ndarray, n_positions: int):
    """(n_positions, ...) median over the calls at each position (NaN where none)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: NaN
        return np.stack(
            [np.nanmedian(values[call_position == p], axis=0) for p in range(n_positions)]
        )


def fit_geometry(
    measured_samples: np.ndarray,
    sources_mm: np.ndarray,
    start_mics_mm: np.ndarray,
    start_temperature_c: float,
    fs_hz: float,
    fit_mics: bool = True,
    fit_temperature: bool = True,
    seed: int = 0,
    n_bootstrap: int = N_BOOTSTRAP,
) -> GeometryFit:
    """Fit microphone positions and temperature to per-position time differences.

    Parameters
    ----------
    measured_samples
        (n_positions, n_pairs) measured time differences (samples; NaN = unmeasured).
    sources_mm
        (n_positions, 3) source positions.
    start_mics_mm, start_temperature_c
        The start cage's values (and the prior's centre).
    fit_mics, fit_temperature
        Which to fit (the other is held at the start value).
    n_bootstrap
        Resamples of the positions for the standard deviations (0: none, sd NaN).
    """
    n_mics = len(start_mics_mm)

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, float]:
        mics = start_mics_mm + (theta[: 3 * n_mics].reshape(n_mics, 3) if fit_mics else 0.0)
        temp = start_temperature_c + (theta[-1] if fit_temperature else 0.0)
        return mics, temp

    n_theta = 3 * n_mics * fit_mics + fit_temperature

    def residuals(theta: np.ndarray, rows: np.ndarray) -> np.ndarray:
        mics, temp = unpack(theta)
        pred = predict_tdoa_samples(sources_mm[rows], mics, temp, fs_hz)
        r = (pred - measured_samples[rows]).reshape(-1)
        r = np.nan_to_num(r) / TDOA_SCALE_SAMPLES
        prior = theta[: 3 * n_mics] / MIC_PRIOR_MM if fit_mics else np.zeros(0)
        return np.r_[r, prior]

    def solve(rows: np.ndarray, x0: np.ndarray):
        return least_squares(
            residuals,
            x0,
            args=(rows,),
            loss="cauchy",
            f_scale=1.0,
            x_scale="jac",
            bounds=_bounds(n_mics, fit_mics, fit_temperature, start_temperature_c),
        )

    all_rows = np.arange(len(sources_mm))
    start_pred = predict_tdoa_samples(sources_mm, start_mics_mm, start_temperature_c, fs_hz)
    if n_theta == 0:
        return GeometryFit(
            start_mics_mm,
            start_temperature_c,
            np.zeros_like(start_mics_mm),
            0.0,
            measured_samples,
            start_pred,
            start_pred,
            True,
            "nothing to fit",
        )
    best = solve(all_rows, np.zeros(n_theta))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        rows = rng.integers(len(all_rows), size=len(all_rows))
        draws.append(solve(rows, best.x).x)
    spread = np.std(draws, axis=0) if draws else np.full(n_theta, np.nan)
    mics, temp = unpack(best.x)
    mics_sd = spread[: 3 * n_mics].reshape(n_mics, 3) if fit_mics else np.zeros_like(mics)
    temp_sd = float(spread[-1]) if fit_temperature else 0.0
    fitted = predict_tdoa_samples(sources_mm, mics, temp, fs_hz)
    return GeometryFit(
        mics,
        float(temp),
        mics_sd,
        temp_sd,
        measured_samples,
        start_pred,
        fitted,
        bool(best.success),
        str(best.message),
    )


def _bounds(n_mics: int, fit_mics: bool, fit_temperature: bool, start_c: float):
    lo = [-100.0] * (3 * n_mics) if fit_mics else []
    hi = [100.0] * (3 * n_mics) if fit_mics else []
    if fit_temperature:
        lo.append(-20.0 - start_c)
        hi.append(50.0 - start_c)
    return np.asarray(lo), np.asarray(hi)
