"""The attribution panel: which animal called, scored on simulated sessions per acoustics.

For each cage of the physics panel (:data:`napari_gerbil.io.cage.PHYSICS_PANEL`), 2- and
3-animal sessions are simulated with seeds no model trained on, and every attribution
method (:data:`napari_gerbil.attribute.ATTRIBUTION_METHODS`) attributes the same calls:

- its scales are fitted on fresh simulated calls in that cage
  (:mod:`napari_gerbil.training.attribution`), never on the sessions;
- ``mixture`` and ``combined`` need an ensemble whose microphones match the cage; in the
  other cages only ``srp`` runs.

Reported per method: the share of calls assigned (p >= 0.95), the share of those right,
both by distance from the caller to the nearest other animal; and MUSE's median
localization error on the session calls, the physics row. A method is only as good as
its worst row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import GerbilError


def _session(out: Path, cage: str, n_animals: int, duration_s: float, seed: int) -> Path:
    """A simulated session, reused when its settings are the same."""
    from napari_gerbil.simulate.session import SessionConfig, simulate_session

    cfg = SessionConfig(n_animals=n_animals, duration_s=duration_s, seed=seed, cage=cage)
    folder = out / f"{cage}_{n_animals}animals_seed{seed}"
    sidecar = folder / "settings.yaml"
    done = (folder / "session.gerbil.h5").is_file() and sidecar.is_file()
    if done and SessionConfig.load(sidecar) == cfg:
        return folder
    simulate_session(folder, cfg)
    cfg.save(sidecar)
    return folder


def _session_scores(folder: Path, ensemble: Any) -> dict[str, Any]:
    """Candidate scores of every call of a session, and MUSE's error."""
    from napari_gerbil.attribute import animal_positions_at_calls, band_khz
    from napari_gerbil.baselines.candidates import candidate_correlations
    from napari_gerbil.baselines.localize import localize
    from napari_gerbil.io.session import load_session
    from napari_gerbil.io.tracks import load_poses
    from napari_gerbil.simulate.truth import load_truth

    session = load_session(folder / "session.gerbil.h5")
    truth = load_truth(folder / "session.truth.h5")
    assert session.tracks is not None
    xy = animal_positions_at_calls(session, load_poses(session.tracks.path))
    clips = session.read_calls_audio(np.arange(session.n_calls))
    mics, rate = session.arena.mic_positions_mm, session.audio.sample_rate_hz
    candidates = candidate_correlations(clips, mics, rate, xy)
    srp, bandwidth = candidates.steered_response, band_khz(candidates.bands_hz)
    log_density = None
    if session.n_calls == 0:
        empty = np.zeros((0, xy.shape[1]))
        return {"session": session, "truth": truth, "xy": xy, "srp": empty,
                "bandwidth_khz": np.zeros(0),
                "log_density": empty if ensemble is not None else None,
                "muse_errors_mm": np.zeros(0)}  # fmt: skip
    if ensemble is not None:
        tracked = np.all(np.isfinite(xy), axis=-1)
        pred = ensemble.predict(clips)
        log_density = pred.log_density(np.where(tracked[..., None], xy, 0.0))
    muse = localize("muse", clips, mics, rate, session.arena.dims_mm, source_height_mm=40.0,
                    resolution_mm=2.0)  # fmt: skip
    from napari_gerbil.evaluate.attribution import match_truth_calls

    match = match_truth_calls(session, truth)
    ok = match >= 0
    err = np.linalg.norm(muse.point_mm[ok] - truth.source_mm[match[ok], :2], axis=1)
    return {"session": session, "truth": truth, "xy": xy, "srp": srp,
            "bandwidth_khz": bandwidth, "log_density": log_density,
            "muse_errors_mm": err}  # fmt: skip


def attribution_panel(
    out_dir: str | Path,
    cages: Sequence[str] | None = None,
    *,
    n_animals: Sequence[int] = (2, 3),
    duration_s: float = 120.0,
    seed: int = 500,
    calibration_calls: int = 768,
    ensemble: Any = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Score every attribution method on simulated sessions in every cage.

    Parameters
    ----------
    out_dir
        Where the sessions are simulated (reused when their settings match).
    cages
        Built-in cage names (default: the physics panel); the first is the default.
    n_animals
        Animals per session (one session each).
    duration_s, seed
        Session length, and the seed of the first session (new positions and walks).
    calibration_calls
        Fresh simulated calls each method's scales are fitted on, per cage.
    ensemble
        A loaded ensemble (or a model directory) for the ``mixture`` and ``combined``
        methods, used in the cages whose microphones it fits.
    log
        Called with a line per step.

    Returns
    -------
    ``{"default_method", "methods": {name: {"assigned", "right", "n", "by_distance_cm"}},
    "physics": {cage: {"<k>_animals": {method: ...}, "muse_median_error_mm": x}},
    "worst": {method: {"cage", "assigned", "right"}}}``; ``methods`` is the default cage's
    2-animal sessions.
    """
    from napari_gerbil.attribute import (
        AttributionCalibration,
        assign,
        candidate_logits,
        softmax_probabilities,
    )
    from napari_gerbil.evaluate.attribution import attribution_outcomes
    from napari_gerbil.io.cage import PHYSICS_PANEL, load_cage
    from napari_gerbil.training.attribution import fit_method, simulated_candidate_scores

    say = log or (lambda _: None)
    out = Path(out_dir)
    cages = list(cages or PHYSICS_PANEL)
    if isinstance(ensemble, (str, Path)):
        from napari_gerbil.model.ensemble import load_ensemble

        ensemble = load_ensemble(ensemble)
    physics: dict[str, Any] = {}
    for c_index, cage_name in enumerate(cages):
        cage = load_cage(cage_name)
        fits = None
        if ensemble is not None:
            try:
                ensemble.check_compatible(
                    n_channels=cage.n_mics, arena_dims_mm=cage.dims, mic_positions_mm=cage.mics
                )
                fits = ensemble
            except GerbilError:
                say(f"attribution: the ensemble does not fit cage {cage_name}: srp only")
        calib_scores = simulated_candidate_scores(
            cage, calibration_calls, ensemble=fits, seed=seed + 1000 + c_index
        )
        methods = ("srp", "mixture", "combined") if fits is not None else ("srp",)
        calibrations: dict[str, AttributionCalibration] = {
            m: fit_method(m, calib_scores) for m in methods
        }
        row: dict[str, Any] = {"calibration": {m: c.to_dict() for m, c in calibrations.items()}}
        muse_errors = []
        for k in n_animals:
            folder = _session(out, cage_name, int(k), duration_s, seed + 10 * c_index + int(k))
            scores = _session_scores(folder, fits)
            muse_errors.append(scores["muse_errors_mm"])
            tracked = np.all(np.isfinite(scores["xy"]), axis=-1)
            per_method = {}
            for m, calibration in calibrations.items():
                logits = candidate_logits(
                    calibration, scores["srp"], scores["log_density"], scores["bandwidth_khz"]
                )
                probs = softmax_probabilities(np.where(tracked, logits, np.nan))
                codes = assign(probs, calibration.assign_probability)
                outcome = attribution_outcomes(scores["session"], scores["truth"], codes)
                per_method[m] = _summary(outcome)
                say(
                    f"attribution {cage_name}, {k} animals, {m}: "
                    f"{per_method[m]['assigned']:.1%} assigned, {per_method[m]['right']:.1%} right"
                )
            row[f"{k}_animals"] = per_method
        row["muse_median_error_mm"] = float(np.median(np.concatenate(muse_errors)))
        physics[cage_name] = row
    default = physics[cages[0]][f"{n_animals[0]}_animals"]
    default_method = _best_method(default)
    worst = {}
    for m in ("srp", "mixture", "combined"):
        rows = [(c, physics[c][f"{n_animals[0]}_animals"][m]) for c in cages
                if m in physics[c][f"{n_animals[0]}_animals"]]  # fmt: skip
        if rows:
            c, r = min(rows, key=lambda cr: _rank(cr[1]))
            worst[m] = {"cage": c, "assigned": r["assigned"], "right": r["right"]}
    return {
        "default_method": default_method,
        "methods": default,
        "physics": physics,
        "worst": worst,
        "cages": cages,
        "n_animals": list(n_animals),
        "duration_s": duration_s,
    }


def _summary(outcome: Any) -> dict[str, Any]:
    score = outcome.score()
    return {
        "assigned": score.assigned_fraction,
        "right": score.right_fraction,
        "n": score.n_localized,
        "by_distance_cm": score.by_distance_cm,
    }


def _rank(r: dict[str, Any]) -> float:
    """Calls assigned right per call: what a user gets (NaN counts as nothing)."""
    a, w = r["assigned"], r["right"]
    return 0.0 if not (np.isfinite(a) and np.isfinite(w)) else a * w - 10 * max(0.0, 0.95 - w)


def _best_method(per_method: dict[str, dict[str, Any]]) -> str:
    """The method that assigns the most calls right (penalized below 95% right)."""
    return max(per_method, key=lambda m: _rank(per_method[m]))
