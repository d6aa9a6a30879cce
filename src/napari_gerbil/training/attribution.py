"""Fit the attribution calibration of a model on fresh simulated calls in its cage.

Each simulated call gets the candidates a session would give: the caller's tracked
position (the true source plus pose noise) and the other animals' (uniform over the
floor, or 2-30 cm from the caller, half each). The scales of
:class:`~napari_gerbil.attribute.AttributionCalibration` are fitted by maximum
likelihood (softmax over the candidates) on one half of the calls; every method is then
judged on the other half, and the one with the lowest held-out negative log-likelihood
is chosen.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.attribute import (
    ATTRIBUTION_METHODS,
    CALIBRATION_FILE,
    AttributionCalibration,
    assign,
    band_khz,
    candidate_logits,
    softmax_probabilities,
)
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.scorer import SCORER_FILE
from napari_gerbil.progress import CancelCheck, ProgressCallback, check_cancel, report

#: Standard deviation (mm) of the pose error added to every candidate.
POSE_NOISE_MM = 4.0
#: Standard deviation (rad) of the heading error of every candidate's pose.
HEADING_NOISE_RAD = float(np.radians(15.0))
#: Range (mm) of the distance of a "near" other animal from the caller.
NEAR_RANGE_MM = (20.0, 300.0)


@dataclasses.dataclass
class CandidateScores:
    """Scores of simulated calls at their candidates; candidate 0 is the caller.

    Attributes
    ----------
    steered_response, log_density
        (n, K) scores (``log_density`` None without an ensemble).
    bandwidth_khz
        (n,) each call's band.
    distance_mm
        (n, K - 1) distance of each other candidate from the caller's candidate.
    stimulus_classes
        (n,) class of each call.
    scorer_score
        (n, K) the learned scorer's scores (None without a scorer).
    """

    steered_response: np.ndarray
    log_density: np.ndarray | None
    bandwidth_khz: np.ndarray
    distance_mm: np.ndarray
    stimulus_classes: np.ndarray
    scorer_score: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> CandidateScores:
        """The scores of some calls."""
        return CandidateScores(
            self.steered_response[rows],
            None if self.log_density is None else self.log_density[rows],
            self.bandwidth_khz[rows],
            self.distance_mm[rows],
            self.stimulus_classes[rows],
            None if self.scorer_score is None else self.scorer_score[rows],
        )


def simulated_candidate_scores(
    cage: Any,
    n_calls: int,
    *,
    ensemble: Any = None,
    scorer: Any = None,
    n_others: int = 1,
    seed: int = 1,
    engine_config: Any = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> CandidateScores:
    """Render ``n_calls`` fresh calls in ``cage`` and score them at their candidates.

    ``engine_config`` (an :class:`~napari_gerbil.simulate.engine.EngineConfig`) sets what
    is drawn; by default mouths 10-90 mm high, every caller directional (an animal faces
    somewhere: measured, omnidirectional callers make attribution look easier than it is
    on simulated sessions) and the engine's randomization. With a ``scorer``
    (:class:`~napari_gerbil.model.scorer.CandidateScorer`), its scores too: the caller's
    heading from the engine plus pose noise, the others' drawn at random.
    """
    from napari_gerbil.baselines.candidates import candidate_correlations
    from napari_gerbil.simulate.engine import DataEngine, EngineConfig, Randomization

    if n_calls < 2:
        raise InvalidInputError(None, "n_calls", ">= 2", str(n_calls))
    config = engine_config or EngineConfig(
        height_mm=(10.0, 90.0), randomization=Randomization(directional_fraction=1.0)
    )
    engine = DataEngine(cage, config, seed=seed)
    rng = np.random.default_rng([seed, 0xA771])
    half = engine.cage.dims[:2] / 2.0 - engine.config.margin_mm
    srp, dens, bandwidth, dist, classes, learned = [], [], [], [], [], []
    done, index = 0, 0
    while done < n_calls:
        check_cancel(cancel, "attribution calibration")
        batch = engine.batch(index, min(engine.config.calls_per_room, n_calls - done))
        n = len(batch.audio)
        caller = batch.locations_mm[:, :2]
        others = []
        for _ in range(n_others):
            near = rng.random(n) < 0.5
            angle = rng.uniform(0, 2 * np.pi, n)
            lo_hi = np.log(NEAR_RANGE_MM)
            r = np.exp(rng.uniform(lo_hi[0], lo_hi[1], n))
            p = np.where(
                near[:, None],
                caller + r[:, None] * np.c_[np.cos(angle), np.sin(angle)],
                rng.uniform(-half, half, (n, 2)),
            )
            others.append(np.clip(p, -half, half))
        cand = np.stack([caller, *others], axis=1)
        cand = cand + rng.normal(0.0, POSE_NOISE_MM, cand.shape)
        cc = candidate_correlations(
            batch.audio, engine.cage.mics, engine.config.sample_rate_hz, cand
        )
        srp.append(cc.steered_response)
        bandwidth.append(band_khz(cc.bands_hz))
        if scorer is not None:
            from napari_gerbil.baselines.candidate_features import candidate_features
            from napari_gerbil.model.scorer import score_candidates

            heads = np.c_[
                batch.headings_rad + rng.normal(0.0, HEADING_NOISE_RAD, n),
                rng.uniform(-np.pi, np.pi, (n, n_others)),
            ]
            feats = candidate_features(
                batch.audio, engine.cage.mics, engine.config.sample_rate_hz, cand, heads
            )
            learned.append(score_candidates(scorer, feats.features, feats.valid))
        if ensemble is not None:
            pred = ensemble.predict(batch.audio)
            dens.append(pred.log_density(cand))
        dist.append(np.linalg.norm(cand[:, 1:] - cand[:, :1], axis=-1))
        classes += batch.stimulus_classes
        done, index = done + n, index + 1
        report(progress, done / n_calls, f"calibrating attribution: {done}/{n_calls} calls")
    return CandidateScores(
        np.concatenate(srp),
        np.concatenate(dens) if dens else None,
        np.concatenate(bandwidth),
        np.concatenate(dist),
        np.asarray(classes),
        np.concatenate(learned) if learned else None,
    )


def _logits(calibration: AttributionCalibration, scores: CandidateScores) -> np.ndarray:
    return candidate_logits(
        calibration,
        scores.steered_response,
        scores.log_density,
        scores.bandwidth_khz,
        scores.scorer_score,
    )


def _nll(calibration: AttributionCalibration, scores: CandidateScores) -> float:
    logits = _logits(calibration, scores)
    logits = np.nan_to_num(logits, nan=-1e9)
    top = logits.max(axis=1)
    log_z = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return float(np.mean(log_z - logits[:, 0]))


def fit_method(method: str, scores: CandidateScores) -> AttributionCalibration:
    """Maximum-likelihood scales of ``method`` on ``scores`` (candidate 0 the caller)."""
    from scipy.optimize import minimize

    def make(x: np.ndarray) -> AttributionCalibration:
        x = np.clip(np.asarray(x, float), 0.0, 1e4)
        if method == "scorer":
            return AttributionCalibration(method=method, scorer_scale=float(x[0]))
        srp, per_khz, density = (x[0], x[1], 0.0) if method == "srp" else (0.0, 0.0, x[0])
        if method == "combined":
            srp, per_khz, density = x
        return AttributionCalibration(
            method=method,
            srp_scale=float(srp),
            srp_scale_per_khz=float(per_khz),
            density_scale=float(density),
        )

    x0 = {"srp": [20.0, 0.0], "mixture": [1.0], "combined": [20.0, 0.0, 0.5],
          "scorer": [1.0]}[method]  # fmt: skip
    bounds = [(0.0, 1e4)] * len(x0)
    best = minimize(lambda x: _nll(make(x), scores), x0, method="L-BFGS-B", bounds=bounds)
    return _calibrate_tail(make(best.x), scores)


def _calibrate_tail(calibration: AttributionCalibration, scores: CandidateScores):
    """Soften the scales until the calls assigned (p >= 0.95) are >= 95% right.

    The likelihood fit calibrates the probabilities on average; the decision is made in
    the tail, where a temperature fitted on all calls can still be overconfident.
    """
    target = calibration.assign_probability
    trial = calibration
    for factor in np.linspace(1.0, 0.2, 33):
        trial = dataclasses.replace(
            calibration,
            srp_scale=float(calibration.srp_scale * factor),
            srp_scale_per_khz=float(calibration.srp_scale_per_khz * factor),
            density_scale=float(calibration.density_scale * factor),
            scorer_scale=float(calibration.scorer_scale * factor),
        )
        figures = judge(trial, scores)
        if not np.isfinite(figures["right"]) or figures["right"] >= target:
            return trial
    return trial


def judge(calibration: AttributionCalibration, scores: CandidateScores) -> dict[str, float]:
    """Held-out figures: NLL, share picked right, share assigned and right at p >= 0.95."""
    logits = _logits(calibration, scores)
    probs = softmax_probabilities(logits)
    codes = assign(probs, calibration.assign_probability)
    assigned = codes >= 0
    return {
        "nll": _nll(calibration, scores),
        "picked_right": float(np.mean(np.nanargmax(np.nan_to_num(probs, nan=-1), 1) == 0)),
        "assigned": float(assigned.mean()),
        "right": float(np.mean(codes[assigned] == 0)) if assigned.any() else float("nan"),
        "n": int(len(codes)),
    }


def fit_calibration(
    scores: CandidateScores, methods: tuple[str, ...] | None = None
) -> tuple[AttributionCalibration, dict[str, dict[str, float]]]:
    """Fit every method on half the calls, judge on the other half; return the best.

    The chosen method is refitted on all calls. Returns it and the held-out figures of
    every method.
    """
    if methods is None:
        methods = tuple(
            m for m in ATTRIBUTION_METHODS
            if (m in ("srp", "scorer") or scores.log_density is not None)
            and (m != "scorer" or scores.scorer_score is not None)
        )  # fmt: skip
    n = len(scores.steered_response)
    fit_rows, test_rows = np.arange(0, n, 2), np.arange(1, n, 2)
    figures = {}
    for method in methods:
        calibration = fit_method(method, scores.take(fit_rows))
        figures[method] = judge(calibration, scores.take(test_rows))
    chosen = min(figures, key=lambda m: figures[m]["nll"])
    final = fit_method(chosen, scores)
    final.fitted_on = (
        f"{n} simulated calls; held-out NLL {figures[chosen]['nll']:.3f}, "
        f"assigned {figures[chosen]['assigned']:.3f}, right {figures[chosen]['right']:.3f}"
    )
    return final, figures


def write_calibration(
    model_dir: str | os.PathLike,
    cage: Any,
    n_calls: int,
    *,
    seed: int = 7,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> dict[str, dict[str, float]]:
    """Fit a model's attribution calibration in ``cage``; write ``attribution.yaml``.

    The model must fit the cage (microphones, arena). With a learned scorer in the model
    directory (``scorer.pt``, trained for that rig), method ``scorer`` competes too.

    Returns the held-out figures of every method (see
    :func:`napari_gerbil.training.attribution.fit_calibration`).
    """
    from napari_gerbil.model.ensemble import load_ensemble

    path = Path(model_dir) / CALIBRATION_FILE
    if path.exists() and not overwrite:
        raise InvalidInputError(
            path, "output", "a new file", "an existing calibration", hint="Pass --overwrite."
        )
    ensemble = load_ensemble(model_dir)
    ensemble.check_compatible(
        n_channels=cage.n_mics, arena_dims_mm=cage.dims, mic_positions_mm=cage.mics,
        source=cage.name,
    )  # fmt: skip
    scorer = None
    if (Path(model_dir) / SCORER_FILE).is_file():
        from napari_gerbil.model.scorer import load_model_scorer

        scorer = load_model_scorer(
            model_dir, cage.mics, ensemble.metadata.sample_rate_hz, cage.name
        )
    scores = simulated_candidate_scores(
        cage, n_calls, ensemble=ensemble, scorer=scorer, seed=seed, progress=progress,
        cancel=cancel,
    )  # fmt: skip
    calibration, figures = fit_calibration(scores)
    calibration.replace(fitted_cage=cage.name).save(path)
    return figures
