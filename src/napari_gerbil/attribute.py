"""Attribute calls to animals: which of the tracked animals made each call.

The tracks give the candidates: each animal's ``node`` (nose by default) at the call,
in mm (:func:`animal_positions_at_calls`). Each candidate gets a logit

    logit_a = (srp_scale + srp_scale_per_khz * bandwidth_khz) * steered_response_a
              + density_scale * log_density_a

- ``steered_response_a``: how well the call's pairwise GCC-PHAT fits a source near
  animal ``a`` (:func:`napari_gerbil.baselines.candidates.candidate_correlations`);
- ``bandwidth_khz``: the call's band (a wide-band call pins the time differences; a
  narrow low one does not, measured: docs/attribution.md);
- ``log_density_a``: the ensemble mixture's log density at animal ``a``.

Method ``"scorer"`` uses instead ``logit_a = scorer_scale * score_a``, the learned
audio-pose scorer's score (:mod:`napari_gerbil.model.scorer`): time differences, the
levels between microphones and the animal's heading.

``probabilities`` are the softmax of the logits over the tracked animals; the scales
are an :class:`AttributionCalibration`, fitted on held-out simulated calls so that the
probabilities are calibrated (``method`` ``"srp"``, ``"mixture"`` or ``"combined"``
fixes which terms are used). A call is assigned to the animal whose probability is at
least ``assign_probability`` (0.95), when every animal is tracked at the call;
otherwise it is AMBIGUOUS (-2) with several animals, UNASSIGNED (-1) with none. The 95%
confidence set stays the picture of uncertainty; it is not the rule.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.animals import animal_positions_at_calls  # noqa: F401  (re-export)
from napari_gerbil.io.session import AMBIGUOUS, UNASSIGNED
from napari_gerbil.model.mixture import MixturePrediction

#: Scoring methods of :class:`AttributionCalibration`.
ATTRIBUTION_METHODS = ("srp", "mixture", "combined", "scorer")
#: File of a model directory holding its attribution calibration.
CALIBRATION_FILE = "attribution.yaml"


@dataclasses.dataclass
class AttributionCalibration(Config):
    """How candidate scores become calibrated probabilities.

    Parameters
    ----------
    method
        ``"srp"`` (steered response only), ``"mixture"`` (the ensemble's density only),
        ``"combined"`` (both) or ``"scorer"`` (the learned scorer, ``scorer.pt``).
    srp_scale
        Logit per unit of steered response (mean GCC-PHAT over pairs).
    srp_scale_per_khz
        Added to ``srp_scale`` per kHz of the call's band.
    density_scale
        Logit per nat of mixture log density.
    scorer_scale
        Logit per unit of the learned scorer's score (its temperature's inverse).
    assign_probability
        A call is assigned to an animal with at least this probability.
    fitted_on
        What the scales were fitted on (provenance, free text).
    fitted_cage
        The cage the scales were fitted in (``builtin:NAME`` or a cage file; empty in
        files written before it was recorded, and for the default scales).
    """

    method: str = "srp"
    srp_scale: float = 40.0
    srp_scale_per_khz: float = 0.0
    density_scale: float = 0.0
    scorer_scale: float = 0.0
    assign_probability: float = 0.95
    fitted_on: str = "default scales (not fitted)"
    fitted_cage: str = ""

    def __post_init__(self) -> None:
        if self.method not in ATTRIBUTION_METHODS:
            raise InvalidInputError(None, "method", f"one of {ATTRIBUTION_METHODS}", self.method)
        for name in ("srp_scale", "srp_scale_per_khz", "density_scale", "scorer_scale"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= 1e4):
                raise InvalidInputError(None, name, "a number in 0 .. 10000", str(value))
        if not 0.5 < self.assign_probability < 1.0:
            raise InvalidInputError(
                None,
                "assign_probability",
                "a probability in (0.5, 1)",
                str(self.assign_probability),
            )
        if self.method != "scorer":
            self.scorer_scale = 0.0
        if self.method in ("srp", "scorer"):
            self.density_scale = 0.0
        if self.method in ("mixture", "scorer"):
            self.srp_scale = self.srp_scale_per_khz = 0.0

    @property
    def uses_srp(self) -> bool:
        """Whether the steered response enters the logits."""
        return self.method in ("srp", "combined")

    @property
    def uses_mixture(self) -> bool:
        """Whether the mixture density enters the logits."""
        return self.method in ("mixture", "combined")

    @property
    def uses_scorer(self) -> bool:
        """Whether the learned scorer makes the logits."""
        return self.method == "scorer"


def load_calibration(model_dir: str | os.PathLike | None) -> AttributionCalibration:
    """The model directory's calibration (``attribution.yaml``), or the default one."""
    if model_dir is None:
        return AttributionCalibration()
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.exists():
        return AttributionCalibration()
    if not path.is_file():
        raise InvalidInputError(path, "<file>", "a calibration file (YAML)", "not a regular file")
    try:
        return AttributionCalibration.load(path)
    except InvalidInputError as exc:
        if exc.source is not None:
            raise
        # the ranges are checked by the dataclass, which does not know the file
        raise InvalidInputError(path, exc.field, exc.expected, exc.found, exc.hint) from None


@dataclasses.dataclass
class Attribution:
    """Assigned codes (n,) and probabilities (n, A) of calls (NaN for untracked animals)."""

    animal: np.ndarray
    probabilities: np.ndarray


def candidate_logits(
    calibration: AttributionCalibration,
    steered_response: np.ndarray | None = None,
    log_density: np.ndarray | None = None,
    bandwidth_khz: np.ndarray | None = None,
    scorer_score: np.ndarray | None = None,
) -> np.ndarray:
    """(n, A) logits of the candidates from their scores (NaN scores stay NaN).

    ``bandwidth_khz`` (n,): each call's band, needed when ``srp_scale_per_khz`` is set;
    ``scorer_score`` (n, A): the learned scorer's scores (method ``scorer``).
    """
    if calibration.uses_scorer:
        if scorer_score is None:
            raise InvalidInputError(None, "scorer_score", "the scorer's scores", "none")
        return calibration.scorer_scale * np.asarray(scorer_score, float)
    logits = None
    if calibration.uses_srp:
        if steered_response is None:
            raise InvalidInputError(None, "steered_response", "scores for method srp", "none")
        scale = np.full(len(steered_response), calibration.srp_scale)
        if calibration.srp_scale_per_khz:
            if bandwidth_khz is None:
                raise InvalidInputError(None, "bandwidth_khz", "each call's band", "none")
            scale = scale + calibration.srp_scale_per_khz * np.asarray(bandwidth_khz, float)
        logits = scale[:, None] * np.asarray(steered_response, float)
    if calibration.uses_mixture:
        if log_density is None:
            raise InvalidInputError(None, "log_density", "mixture densities", "none")
        term = calibration.density_scale * np.asarray(log_density, float)
        logits = term if logits is None else logits + term
    assert logits is not None
    return logits


def band_khz(bands_hz: np.ndarray) -> np.ndarray:
    """(n,) width of each call's band in kHz from (n, 2) ``(f_lo, f_hi)`` in Hz."""
    bands = np.asarray(bands_hz, float).reshape(-1, 2)
    return (bands[:, 1] - bands[:, 0]) / 1000.0


def softmax_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the finite entries of each row; NaN elsewhere (all NaN: no animal)."""
    logits = np.asarray(logits, float)
    ok = np.isfinite(logits)
    probs = np.full(logits.shape, np.nan)
    rows = ok.any(axis=1)
    if rows.any():
        z = np.where(ok[rows], logits[rows], -np.inf)
        w = np.exp(z - z.max(axis=1, keepdims=True))
        probs[rows] = np.where(ok[rows], w / w.sum(axis=1, keepdims=True), np.nan)
    return probs


def assign(probabilities: np.ndarray, assign_probability: float = 0.95) -> np.ndarray:
    """(n,) codes: the animal with p >= ``assign_probability`` when every animal is tracked.

    AMBIGUOUS when no animal reaches it, or when an untracked animal could be the
    caller; UNASSIGNED when no animal is tracked (or the session has none).
    """
    probs = np.asarray(probabilities, float)
    n, n_animals = probs.shape
    out = np.full(n, UNASSIGNED, dtype=np.int64)
    if n_animals == 0:
        return out
    tracked = np.isfinite(probs)
    any_tracked = tracked.any(axis=1)
    best = np.argmax(np.where(tracked, probs, -1.0), axis=1)
    p_best = np.where(any_tracked, probs[np.arange(n), best], 0.0)
    sure = any_tracked & tracked.all(axis=1) & (np.nan_to_num(p_best) >= assign_probability)
    out[any_tracked] = AMBIGUOUS
    out[sure] = best[sure]
    return out


def attribute_calls(
    animal_xy_mm: np.ndarray,
    calibration: AttributionCalibration | None = None,
    *,
    calls=None,
    mic_positions_mm=None,
    sample_rate_hz: float | None = None,
    prediction: MixturePrediction | None = None,
    headings_rad: np.ndarray | None = None,
    scorer=None,
) -> Attribution:
    """Attribute each call to one of the animals tracked at its time.

    Parameters
    ----------
    animal_xy_mm
        (n, A, 2) animal positions at each call, NaN where not tracked.
    calibration
        Method and scales (default :class:`AttributionCalibration`).
    calls, mic_positions_mm, sample_rate_hz
        The calls' audio (n arrays (T_i, C)) and the microphones: needed by the
        steered response (methods ``srp`` and ``combined``).
    prediction
        The ensemble's mixtures of the n calls (methods ``mixture`` and ``combined``).
    headings_rad
        (n, A) direction each animal faces (NaN: unknown); used by the scorer.
    scorer
        A :class:`~napari_gerbil.model.scorer.CandidateScorer` (method ``scorer``).
    """
    calibration = calibration or AttributionCalibration()
    xy = np.asarray(animal_xy_mm, dtype=float)
    if xy.ndim != 3 or xy.shape[2] != 2:
        raise InvalidInputError(None, "animal_xy_mm", "shape (n, n_animals, 2)", f"{xy.shape}")
    n, n_animals = xy.shape[:2]
    if n_animals == 0 or n == 0:
        return Attribution(np.full(n, UNASSIGNED, np.int64), np.full((n, n_animals), np.nan))
    tracked = np.all(np.isfinite(xy), axis=-1)
    if not tracked.any():  # no animal at any of these calls: nothing to score
        return Attribution(np.full(n, UNASSIGNED, np.int64), np.full((n, n_animals), np.nan))
    srp = log_d = bandwidth = scores_learned = None
    if calibration.uses_scorer:
        if scorer is None or calls is None or mic_positions_mm is None or not sample_rate_hz:
            raise InvalidInputError(
                None, "scorer", "the scorer, the calls' audio and the microphones", "none"
            )
        from napari_gerbil.baselines.candidate_features import candidate_features
        from napari_gerbil.model.scorer import score_candidates

        feats = candidate_features(calls, mic_positions_mm, sample_rate_hz, xy, headings_rad)
        scores_learned = score_candidates(scorer, feats.features, feats.valid)
    if calibration.uses_srp:
        if calls is None or mic_positions_mm is None or sample_rate_hz is None:
            raise InvalidInputError(
                None, "calls", "the calls' audio and microphones (steered response)", "none"
            )
        from napari_gerbil.baselines.candidates import candidate_correlations

        scores = candidate_correlations(calls, mic_positions_mm, sample_rate_hz, xy)
        srp, bandwidth = scores.steered_response, band_khz(scores.bands_hz)
    if calibration.uses_mixture:
        if prediction is None:
            raise InvalidInputError(None, "prediction", "the ensemble's mixtures", "none")
        log_d = prediction.log_density(np.where(tracked[..., None], xy, 0.0))
    logits = candidate_logits(calibration, srp, log_d, bandwidth, scores_learned)
    logits = np.where(tracked, logits, np.nan)
    probs = softmax_probabilities(logits)
    return Attribution(assign(probs, calibration.assign_probability), probs)
