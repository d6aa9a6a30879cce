"""Judge a fine-tuned ensemble on held-out reviewed calls, and keep it calibrated.

Fine-tuning on a handful of reviewed calls shrinks the members' covariances: the
median error hardly moves while the 95% sets collapse and stop containing the source
(measured on a 22-call session: coverage 20/22 before, 8/22 after). So a fine-tune is
reported on the held-out reviewed calls (number, median error, 95% coverage, median set
area, before vs after), and the new ensemble's covariance temperature is fitted on those
calls (:func:`fit_heldout_temperature`) and written into its manifest. The temperature
is never below 1 (a few held-out calls may widen the sets, not narrow them), and the
sets may shrink only as much as the held-out errors do. The coverage reported for the
calibrated model is cross-fitted (temperature fitted on one half of the held-out calls,
coverage counted on the other, and the other way round) so that it is not the calls' own fit.
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
#: Fewest held-out calls on which a before/after comparison is judged at all.
MIN_HELDOUT_CALLS = 10
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
        """Plain numbers (JSON)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FinetuneReport:
    """Before vs after a fine-tune, on the same held-out reviewed calls."""

    before: HeldoutScore
    after_raw: HeldoutScore  # the fine-tuned members as trained (temperature 1)
    after: HeldoutScore  # with the temperature fitted on the held-out calls
    temperature: float

    def to_dict(self) -> dict:
        """Plain numbers (JSON)."""
        return {
            "before": self.before.to_dict(),
            "after_raw": self.after_raw.to_dict(),
            "after": self.after.to_dict(),
            "temperature": self.temperature,
        }

    @property
    def judged(self) -> bool:
        """Enough held-out calls (:data:`MIN_HELDOUT_CALLS`) to judge the comparison."""
        return self.before.n_calls >= MIN_HELDOUT_CALLS

    def summary(self) -> str:
        """Four lines for people (the verdict withheld on too few held-out calls)."""
        b, r, a = self.before, self.after_raw, self.after

        def line(name: str, s: HeldoutScore) -> str:
            return (
                f"{name}: median error {s.median_error_mm:.0f} mm, 95% set holds "
                f"{100 * s.coverage_95:.0f}% of sources, median set {s.median_set_area_cm2:.0f} cm²"
            )

        if self.judged:
            head = f"on {b.n_calls} held-out reviewed calls"
        else:
            head = (
                f"on {b.n_calls} held-out reviewed calls: too few held-out calls to judge "
                f"(fewer than {MIN_HELDOUT_CALLS}; every 5th reviewed call is held out, "
                f"review {5 * MIN_HELDOUT_CALLS - 5 * b.n_calls} more)"
            )
        return "\n".join(
            [
                head,
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


def coverage_temperature(prediction, truth_mm, arena_dims_mm, target: float = MASS) -> float:
    """Covariance temperature whose 95% sets hold a new source with probability ``target``.

    Each known source's smallest sufficient temperature (bisection on log t), then their
    split-conformal quantile.
    """
    from napari_gerbil.model.confidence import hdr_levels

    truth = np.asarray(truth_mm, float).reshape(-1, 2)
    needed = np.empty(len(truth))
    for i in range(len(truth)):
        call = _take(prediction, [i])
        low, high = np.log(0.05), np.log(100.0)
        for _ in range(14):
            mid = (low + high) / 2
            inside = hdr_levels(call.with_temperature(float(np.exp(mid))), truth[i : i + 1],
                                arena_dims_mm)[0] <= MASS  # fmt: skip
            low, high = (low, mid) if inside else (mid, high)
        needed[i] = np.exp(high)
    # split-conformal quantile: ceil((n + 1) target)-th smallest, so that a new call is
    # inside with probability >= target (the largest one when n < 1 / (1 - target) - 1)
    k = min(len(needed) - 1, int(np.ceil((len(needed) + 1) * target)) - 1)
    return float(np.sort(needed)[max(k, 0)])


def _median_area_cm2(prediction, arena_dims_mm) -> float:
    from napari_gerbil.model.confidence import confidence_sets

    return float(np.median([s.area_mm2 for s in confidence_sets(prediction, arena_dims_mm)]) / 100)


def area_temperature(prediction, arena_dims_mm, target_cm2: float) -> float:
    """Smallest temperature (>= 1) whose median 95% set area reaches ``target_cm2``.

    Bisection on log t; the arena caps the area.
    """
    if _median_area_cm2(prediction, arena_dims_mm) >= target_cm2:
        return 1.0
    low, high = 0.0, np.log(100.0)
    for _ in range(8):
        mid = (low + high) / 2
        big = _median_area_cm2(prediction.with_temperature(float(np.exp(mid))), arena_dims_mm)
        low, high = (low, mid) if big >= target_cm2 else (mid, high)
    return float(np.exp(high))


def fit_heldout_temperature(
    prediction, truth_mm, arena_dims_mm, min_temperature: float = 1.0
) -> float:
    """The temperature kept for a fine-tuned ensemble.

    The largest of ``min_temperature`` (at least 1), the NLL fit
    (:func:`~napari_gerbil.model.calibration.fit_temperature`) and the one whose 95% sets
    hold 95% of the sources (:func:`coverage_temperature`). Held-out reviewed calls are few,
    so they may widen the sets of an overconfident model but never narrow them.
    """
    from napari_gerbil.model.calibration import fit_temperature

    return max(
        1.0,
        float(min_temperature),
        fit_temperature(prediction, truth_mm),
        coverage_temperature(prediction, truth_mm, arena_dims_mm),
    )


def cross_fitted_coverage(prediction, truth_mm, arena_dims_mm, min_temperature=1.0) -> float:
    """95% coverage with the temperature fitted on the other half of the calls.

    Halves drawn at random with a fixed seed: calls in id order alternate between animals.
    """
    from napari_gerbil.model.confidence import hdr_levels

    truth = np.asarray(truth_mm, float).reshape(-1, 2)
    n = len(truth)
    if n < 4:  # too few to split: the in-sample fit
        t = fit_heldout_temperature(prediction, truth, arena_dims_mm, min_temperature)
        levels = hdr_levels(prediction.with_temperature(t), truth, arena_dims_mm)
        return float(np.mean(levels <= MASS))
    first = np.zeros(n, bool)
    first[np.random.default_rng(0).permutation(n)[: n // 2]] = True
    halves = (first, ~first)
    inside = []
    for fit_on, test_on in (halves, halves[::-1]):
        fit_idx, test_idx = np.flatnonzero(fit_on), np.flatnonzero(test_on)
        t = fit_heldout_temperature(
            _take(prediction, fit_idx), truth[fit_idx], arena_dims_mm, min_temperature
        )
        test = _take(prediction, test_idx).with_temperature(t)
        inside.append(hdr_levels(test, truth[test_idx], arena_dims_mm) <= MASS)
    return float(np.mean(np.concatenate(inside)))


def _take(prediction, indices):
    from napari_gerbil.model.mixture import MixturePrediction

    return MixturePrediction(prediction.means_mm[indices], prediction.chol_mm[indices])


def compare_on_heldout(old_ensemble, new_ensemble, clips, truth_mm, arena_dims_mm):
    """Score both ensembles on held-out calls and fit the new one's temperature there.

    ``clips`` is a list of (T, C) calls whose sources are ``truth_mm`` (B, 2).

    Returns
    -------
    FinetuneReport
    """
    if len(clips) == 0:
        raise InvalidInputError(None, "held-out calls", "at least one", "none")
    truth = np.asarray(truth_mm, float).reshape(-1, 2)
    before = score(old_ensemble.predict(clips), truth, arena_dims_mm)
    raw = new_ensemble.predict(clips, temperature=1.0)
    after_raw = score(raw, truth, arena_dims_mm)
    # the sets may shrink only as much as the errors do: (error ratio)^2 of the old area
    shrink = (after_raw.median_error_mm / max(before.median_error_mm, 1e-9)) ** 2
    t_area = area_temperature(raw, arena_dims_mm, before.median_set_area_cm2 * min(shrink, 1.0))
    t = fit_heldout_temperature(raw, truth, arena_dims_mm, min_temperature=t_area)
    after = score(raw, truth, arena_dims_mm, temperature=t)
    coverage = cross_fitted_coverage(raw, truth, arena_dims_mm, min_temperature=t_area)
    after = dataclasses.replace(after, coverage_95=coverage)
    return FinetuneReport(before, after_raw, after, float(t))


def write_temperature(model_dir: str | os.PathLike, temperature: float, report: dict) -> None:
    """Store ``temperature`` (and the held-out report) in the model's manifest, atomically."""
    from napari_gerbil.io.atomic import atomic_write_text

    path = Path(model_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["temperature"] = float(temperature)
    manifest["heldout_calibration"] = report
    atomic_write_text(path, json.dumps(manifest, indent=2))
