"""Localization metrics: errors, error CDFs, calibration (coverage) curves, ECE, scaling fits.

Calibration follows the paper (Fig. 2E) and is computed by
:mod:`napari_gerbil.model.calibration`: for each call the *level* is the smallest
nominal mass p whose highest-density p-set contains the true position; the observed
coverage at p is ``mean(level <= p)``; the ECE is the mean gap to the diagonal.
"""

from __future__ import annotations

import numpy as np

from napari_gerbil.errors import InvalidInputError


def _xy(points, name: str) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InvalidInputError(None, name, "an array of shape (n, 2) in mm", f"shape {arr.shape}")
    return arr


def localization_errors_mm(predicted_mm, true_mm) -> np.ndarray:
    """Euclidean distance between predicted and true (x, y) positions, (n,) mm."""
    pred = _xy(predicted_mm, "predicted_mm")
    true = _xy(np.asarray(true_mm)[..., :2], "true_mm")
    if pred.shape != true.shape:
        raise InvalidInputError(
            None, "predicted_mm", f"as many points as true_mm ({len(true)})", f"{len(pred)}"
        )
    return np.linalg.norm(pred - true, axis=1)


def error_summary(errors_mm) -> dict[str, float]:
    """Median, mean, 90th/95th percentiles and fractions within 5/10/20/50 mm."""
    err = np.asarray(errors_mm, dtype=float).ravel()
    if err.size == 0 or np.any(~np.isfinite(err)) or np.any(err < 0):
        raise InvalidInputError(None, "errors_mm", "finite errors >= 0, at least one", "other")
    out = {
        "n": int(err.size),
        "median_mm": float(np.median(err)),
        "mean_mm": float(err.mean()),
        "p90_mm": float(np.percentile(err, 90)),
        "p95_mm": float(np.percentile(err, 95)),
    }
    for radius in (5, 10, 20, 50):
        out[f"within_{radius}_mm"] = float(np.mean(err <= radius))
    return out


def error_cdf(errors_mm) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF of the errors: sorted errors (n,) and fractions (n,) in (0, 1]."""
    err = np.sort(np.asarray(errors_mm, dtype=float).ravel())
    return err, np.arange(1, err.size + 1) / err.size


def mixture_calibration(prediction, true_mm, arena_dims_mm, mass: float = 0.95) -> dict:
    """Calibration and set-size metrics of Gaussian-mixture predictions.

    Parameters
    ----------
    prediction
        :class:`napari_gerbil.model.mixture.MixturePrediction` of n calls.
    true_mm
        (n, 2) true positions.
    arena_dims_mm
        Arena (length, width[, height]).
    mass
        Nominal mass of the reported confidence sets.

    Returns
    -------
    dict with ``levels`` (n,), ``nominal`` and ``coverage`` (the calibration curve),
    ``ece``, ``coverage_at_mass`` and ``set_area_mm2`` (n,) of the ``mass``-sets.
    """
    from napari_gerbil.model.calibration import NOMINAL, coverage_curve, expected_calibration_error
    from napari_gerbil.model.confidence import confidence_sets, hdr_levels

    true = _xy(np.asarray(true_mm)[..., :2], "true_mm")
    levels = hdr_levels(prediction, true, arena_dims_mm)
    coverage = coverage_curve(levels)
    areas = np.array([s.area_mm2 for s in confidence_sets(prediction, arena_dims_mm, mass)])
    return {
        "levels": levels,
        "nominal": NOMINAL.copy(),
        "coverage": coverage,
        "ece": expected_calibration_error(levels),
        "coverage_at_mass": float(np.mean(levels <= mass)),
        "set_area_mm2": areas,
    }


def paired_bootstrap_interval(
    statistic, samples, n_resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*samples)``.

    The samples are per-call values of the same calls (errors or calibration levels of
    two methods), so each resample draws the calls once for all of them (paired).

    Parameters
    ----------
    statistic
        Function of the resampled arrays returning one number.
    samples
        Arrays of equal length n (one per method).
    n_resamples, level, seed
        Number of resamples, interval mass, random seed.

    Returns
    -------
    (low, high) bounds.
    """
    arrays = [np.asarray(a, dtype=float).ravel() for a in samples]
    n = arrays[0].size
    if n == 0 or any(a.size != n for a in arrays):
        raise InvalidInputError(None, "samples", "non-empty arrays of equal length", "other")
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for k in range(n_resamples):
        pick = rng.integers(0, n, n)
        values[k] = statistic(*(a[pick] for a in arrays))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def power_law_fit(n_train, errors_mm) -> dict[str, float]:
    """Least-squares fit of ``error = a * n ** (-b)`` in log-log space.

    Returns ``a``, ``b`` (the exponent, > 0 when error falls with more data) and
    ``r2`` of the log-log fit.
    """
    n = np.asarray(n_train, dtype=float).ravel()
    e = np.asarray(errors_mm, dtype=float).ravel()
    if n.size != e.size or n.size < 2 or np.any(n <= 0) or np.any(e <= 0):
        raise InvalidInputError(
            None, "n_train / errors_mm", "at least 2 positive pairs of equal length", "other"
        )
    x, y = np.log(n), np.log(e)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return {"a": float(np.exp(intercept)), "b": float(-slope), "r2": r2}
