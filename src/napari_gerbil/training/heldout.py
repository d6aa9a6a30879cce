"""Judge a fine-tuned ensemble on reviewed calls it was not trained on, and keep it
calibrated.

Fine-tuning on a handful of reviewed calls shrinks the members' covariances: the
median error hardly moves while the 95% sets collapse and stop containing the source
(measured on a 22-call session: coverage 20/22 before, 8/22 after). So a fine-tune is
reported on the held-out reviewed calls (number, median error, 95% coverage, median set
area, before vs after), and the new ensemble's covariance temperature is fitted on those
calls (:func:`napari_gerbil.model.calibration.fit_temperature`) and written into its
manifest. The coverage reported for the calibrated model is cross-fitted (temperature
fitted on one half of the held-out calls, coverage counted on the other, and the other
way round) so that it is not the calls' own fit.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from napari_gerbil.errors import InvalidInputError

#: Reviewed calls (attributed to a tracked animal) needed before fine-tuning.
MIN_REVIEWED_CALLS = 10
#: 95% sets.
MASS = 0.95


@dataclasses.dataclass(frozen=True)
class HeldoutScore:
    """One ensemble on the held-out calls."""

    n_calls: int
    median_error_mm: float
    coverage_95: float  # share of calls whose source lies in the 95% set
    median_set_area_cm2: float
    temperature: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FinetuneReport:
    """Before vs after a fine-tune, on the same held-out reviewed calls."""

    before: HeldoutScore
    after_raw: HeldoutScore  # the fine-tuned members as trained (temperature 1)
    after: HeldoutScore  # with the temperature fitted on the held-out calls
    temperature: float

    def to_dict(self) -> dict:
        return {
            "before": self.before.to_dict(),
            "after_raw": self.after_raw.to_dict(),
            "after": self.after.to_dict(),
            "temperature": self.temperature,
        }

    def summary(self) -> str:
        """Three lines for people."""
        b, r, a = self.before, self.after_raw, self.after

        def line(name: str, s: HeldoutScore) -> str:
            return (
                f"{name}: median error {s.median_error_mm:.0f} mm, 95% set holds "
                f"{100 * s.coverage_95:.0f}% of sources, median set {s.median_set_area_cm2:.0f} cm²"
            )

        return "\n".join(
            [
                f"on {b.n_calls} held-out reviewed calls",
                line("before", b),
                line("after (as trained)", r),
                line(f"after (calibrated, temperature {self.temperature:.2f})", a),
            ]
        )


def check_enough_reviewed(n_reviewed: int, minimum: int = MIN_REVIEWED_CALLS) -> None:
    """Refuse to fine-tune on fewer than ``minimum`` reviewed calls, saying how many more."""
    if n_reviewed < minimum:
        raise InvalidInputError(
            None,
            "reviewed calls",
            f"at least {minimum} confirmed or corrected calls attributed to tracked animals",
            str(n_reviewed),
            hint=f"Review {minimum - n_reviewed} more (keys 1-9, a), then fine-tune.",
        )


def score(prediction, truth_mm: np.ndarray, arena_dims_mm, temperature: float = 1.0):
    """:class:`HeldoutScore` of a mixture prediction against known sources (B, 2) mm."""
    from napari_gerbil.model.confidence import confidence_sets, hdr_levels

    pred = prediction if temperature == 1.0 else prediction.with_temperature(temperature)
    truth = np.asarray(truth_mm, float).reshape(-1, 2)
    errors = np.linalg.norm(pred.point_mm - truth, axis=1)
    levels = hdr_levels(pred, truth, arena_dims_mm)
    areas = np.array([s.area_mm2 for s in confidence_sets(pred, arena_dims_mm, mass=MASS)])
    return HeldoutScore(
        n_calls=len(truth),
        median_error_mm=float(np.median(errors)),
        coverage_95=float(np.mean(levels <= MASS)),
        median_set_area_cm2=float(np.median(areas) / 100.0),
        temperature=float(temperature),
    )


def cross_fitted_coverage(prediction, truth_mm, arena_dims_mm) -> float:
    """95% coverage with the temperature fitted on the other half of the calls."""
    from napari_gerbil.model.calibration import fit_temperature
    from napari_gerbil.model.confidence import hdr_levels

    truth = np.asarray(truth_mm, float).reshape(-1, 2)
    n = len(truth)
    if n < 4:  # too few to split: the in-sample fit
        t = fit_temperature(prediction, truth)
        return float(
            np.mean(hdr_levels(prediction.with_temperature(t), truth, arena_dims_mm) <= MASS)
        )
    halves = (np.arange(n) % 2 == 0, np.arange(n) % 2 == 1)
    inside = []
    for fit_on, test_on in (halves, halves[::-1]):
        fit_idx, test_idx = np.flatnonzero(fit_on), np.flatnonzero(test_on)
        t = fit_temperature(_take(prediction, fit_idx), truth[fit_idx])
        test = _take(prediction, test_idx).with_temperature(t)
        inside.append(hdr_levels(test, truth[test_idx], arena_dims_mm) <= MASS)
    return float(np.mean(np.concatenate(inside)))


def _take(prediction, indices):
    from napari_gerbil.model.mixture import MixturePrediction

    return MixturePrediction(prediction.means_mm[indices], prediction.chol_mm[indices])


def compare_on_heldout(old_ensemble, new_ensemble, clips, truth_mm, arena_dims_mm):
    """Score both ensembles on the held-out ``clips`` (list of (T, C) calls) whose sources
    are ``truth_mm`` (B, 2), and fit the new ensemble's temperature on them.

    Returns
    -------
    FinetuneReport
    """
    from napari_gerbil.model.calibration import fit_temperature

    if len(clips) == 0:
        raise InvalidInputError(None, "held-out calls", "at least one", "none")
    truth = np.asarray(truth_mm, float).reshape(-1, 2)
    before = score(old_ensemble.predict(clips), truth, arena_dims_mm)
    raw = new_ensemble.predict(clips, temperature=1.0)
    after_raw = score(raw, truth, arena_dims_mm)
    t = fit_temperature(raw, truth)
    after = score(raw, truth, arena_dims_mm, temperature=t)
    after = dataclasses.replace(after, coverage_95=cross_fitted_coverage(raw, truth, arena_dims_mm))
    return FinetuneReport(before, after_raw, after, float(t))


def write_temperature(model_dir: str | os.PathLike, temperature: float, report: dict) -> None:
    """Store ``temperature`` (and the held-out report) in the model's manifest, atomically."""
    from napari_gerbil.io.atomic import atomic_write_text

    path = Path(model_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["temperature"] = float(temperature)
    manifest["heldout_calibration"] = report
    atomic_write_text(path, json.dumps(manifest, indent=2))
