"""The attribution panel: which animal called, scored on simulated sessions, room x caller.

Two axes of physics nobody measured for a user's cage: the room (each cage of
:data:`napari_gerbil.io.cage.PHYSICS_PANEL`) and the caller (how the animal radiates,
:data:`napari_gerbil.simulate.caller.CALLERS`: ``plausible`` a mouth on a rigid head,
``cardioid`` the harsh former engine caller with a null behind, ``omni``). For each row,
2- and 3-animal sessions are simulated with seeds no model trained on, and every
attribution method (:data:`napari_gerbil.attribute.ATTRIBUTION_METHODS`) attributes the
same calls:

- its scales are fitted on fresh simulated calls in that cage, with plausible callers
  (:mod:`napari_gerbil.training.attribution`), never on the sessions: the calibration
  does not know which caller a row uses;
- ``mixture`` and ``combined`` need an ensemble whose microphones match the cage; in the
  other cages only ``srp`` runs.

Reported per method: the share of calls assigned (p >= 0.95), the share of those right,
both by distance from the caller to the nearest other animal; and MUSE's median
localization error on the session calls, the physics row. A method is only as good as
its worst row; the headline is the worst row with plausible callers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import GerbilError
from napari_gerbil.progress import ProgressCallback, report


def row_name(cage: str, caller: str) -> str:
    """The panel's name of a room x caller row (a cage file is named by its stem)."""
    return f"{Path(cage).stem if Path(cage).suffix else cage} / {caller}"


def _session(
    out: Path, cage: str, n_animals: int, duration_s: float, seed: int, caller: str = "plausible"
) -> Path:
    """A simulated session, reused when its settings are the same."""
    from napari_gerbil.simulate.render import RenderConfig
    from napari_gerbil.simulate.session import SessionConfig, simulate_session

    cfg = SessionConfig(
        n_animals=n_animals, duration_s=duration_s, seed=seed, cage=str(cage),
        render=RenderConfig(caller=caller),
    )  # fmt: skip
    stem = row_name(str(cage), caller).replace(" / ", "_")
    folder = out / f"{stem}_{n_animals}animals_seed{seed}"
    sidecar = folder / "settings.yaml"
    done = (folder / "session.gerbil.h5").is_file() and sidecar.is_file()
    if done and SessionConfig.load(sidecar) == cfg:
        return folder
    simulate_session(folder, cfg)
    cfg.save(sidecar)
    return folder


def _session_scores(folder: Path, ensemble: Any, scorer: Any = None) -> dict[str, Any]:
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
    poses = load_poses(session.tracks.path)
    xy = animal_positions_at_calls(session, poses)
    clips = session.read_calls_audio(np.arange(session.n_calls))
    mics, rate = session.arena.mic_positions_mm, session.audio.sample_rate_hz
    candidates = candidate_correlations(clips, mics, rate, xy)
    srp, bandwidth = candidates.steered_response, band_khz(candidates.bands_hz)
    log_density = scorer_score = None
    if scorer is not None and session.n_calls:
        from napari_gerbil.baselines.candidate_features import candidate_features
        from napari_gerbil.io.animals import animal_headings_at_calls
        from napari_gerbil.model.scorer import score_candidates

        heads = animal_headings_at_calls(session, poses)
        feats = candidate_features(clips, mics, rate, xy, heads)
        scorer_score = score_candidates(scorer, feats.features, feats.valid)
    if session.n_calls == 0:
        empty = np.zeros((0, xy.shape[1]))
        return {"session": session, "truth": truth, "xy": xy, "srp": empty,
                "bandwidth_khz": np.zeros(0),
                "log_density": empty if ensemble is not None else None,
                "scorer_score": empty if scorer is not None else None,
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
            "scorer_score": scorer_score, "muse_errors_mm": err}  # fmt: skip


def attribution_panel(
    out_dir: str | Path,
    cages: Sequence[str] | None = None,
    *,
    callers: Sequence[str] = ("plausible", "cardioid", "omni"),
    n_animals: Sequence[int] = (2, 3),
    duration_s: float = 120.0,
    seed: int = 500,
    calibration_calls: int = 768,
    ensemble: Any = None,
    scorer: Any = None,
    log: Callable[[str], None] | None = print,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Score every attribution method on simulated sessions in every cage.

    Parameters
    ----------
    out_dir
        Where the sessions are simulated (reused when their settings match).
    cages
        Built-in cage names or cage files (default: the physics panel); the first is the
        default.
    callers
        How the simulated animals radiate (:data:`~napari_gerbil.simulate.caller.CALLERS`);
        the first is the default row's, ``plausible`` rows make the headline.
    n_animals
        Animals per session (one session each).
    duration_s, seed
        Session length, and the seed of the first session (new positions and walks).
    calibration_calls
        Fresh simulated calls each method's scales are fitted on, per cage.
    ensemble
        A loaded ensemble (or a model directory) for the ``mixture`` and ``combined``
        methods, used in the cages whose microphones it fits; its directory's
        ``scorer.pt`` too, when there is one.
    scorer
        A scorer file (``scorer.pt``), or a loaded scorer with its record ``(scorer,
        record)``, for method ``scorer`` in the cages whose rig it was trained for.
    log
        Called with a line per step.
    progress
        Called with the share of steps done (each cage's calibration, each session).

    Returns
    -------
    ``{"default_method", "methods": {name: {"assigned", "right", "n", "by_distance_cm"}},
    "physics": {"<cage> / <caller>": {"cage", "caller", "<k>_animals": {method: ...},
    "muse_median_error_mm": x}}, "worst": {method: {"row", "cage", "caller", "assigned",
    "right"}}}``; ``methods`` is the default row's 2-animal sessions; ``worst`` the worst
    row with plausible callers (every row when there is none), ``physics`` lists the rows
    worst first (by the default method).
    """
    from napari_gerbil.attribute import AttributionCalibration
    from napari_gerbil.io.cage import PHYSICS_PANEL, load_cage
    from napari_gerbil.training.attribution import fit_method, simulated_candidate_scores

    say = log or (lambda _: None)
    out = Path(out_dir)
    cages = list(cages or PHYSICS_PANEL)
    if isinstance(ensemble, (str, Path)):
        from napari_gerbil.model.ensemble import load_ensemble

        ensemble = load_ensemble(ensemble)
    if scorer is None and ensemble is not None and getattr(ensemble, "path", None):
        from napari_gerbil.model.scorer import SCORER_FILE

        if (Path(ensemble.path) / SCORER_FILE).is_file():
            scorer = Path(ensemble.path) / SCORER_FILE
    if isinstance(scorer, (str, Path)):
        from napari_gerbil.model.scorer import load_scorer

        scorer = load_scorer(scorer)
    physics: dict[str, Any] = {}
    n_steps, step = len(cages) * (1 + len(callers) * len(n_animals)), 0
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
        scorer_fits = None
        if scorer is not None:
            from napari_gerbil.model.scorer import check_rig

            try:
                check_rig(scorer[1], cage.mics, 125000.0, cage_name)
                scorer_fits = scorer[0]
            except GerbilError:
                say(f"attribution: the scorer was not trained for cage {cage_name}")
        calib_scores = simulated_candidate_scores(
            cage, calibration_calls, ensemble=fits, scorer=scorer_fits,
            seed=seed + 1000 + c_index,
        )  # fmt: skip
        step += 1
        report(progress, step / n_steps, f"{cage_name}: calibrated on {calibration_calls} calls")
        methods: tuple[str, ...] = ("srp", "mixture", "combined") if fits is not None else ("srp",)
        methods += ("scorer",) if scorer_fits is not None else ()
        calibrations: dict[str, AttributionCalibration] = {
            m: fit_method(m, calib_scores) for m in methods
        }
        calibration_dicts = {m: c.to_dict() for m, c in calibrations.items()}
        for caller in callers:
            name = row_name(str(cage_name), caller)
            row: dict[str, Any] = {"cage": str(cage_name), "caller": caller,
                                   "calibration": calibration_dicts}  # fmt: skip
            muse_errors = []
            for k in n_animals:
                folder = _session(
                    out, cage_name, int(k), duration_s, seed + 10 * c_index + int(k), caller
                )
                scores = _session_scores(folder, fits, scorer_fits)
                muse_errors.append(scores["muse_errors_mm"])
                per_method = {}
                for m, calibration in calibrations.items():
                    per_method[m] = _summary(_outcome(scores, calibration))
                    say(
                        f"attribution {name}, {k} animals, {m}: "
                        f"{per_method[m]['assigned']:.1%} assigned, "
                        f"{per_method[m]['right']:.1%} right"
                    )
                row[f"{k}_animals"] = per_method
                step += 1
                report(progress, step / n_steps, f"{name}: {k}-animal session scored")
            errors = np.concatenate(muse_errors)
            row["muse_median_error_mm"] = float(np.median(errors)) if len(errors) else None
            physics[name] = row
    first = f"{n_animals[0]}_animals"
    default = physics[row_name(str(cages[0]), callers[0])][first]
    default_method = _best_method(default)
    headline = [n for n, r in physics.items() if r["caller"] == "plausible"] or list(physics)
    worst = {}
    for m in ("srp", "mixture", "combined", "scorer"):
        rows = [(n, physics[n][first][m]) for n in headline if m in physics[n][first]]
        if rows:
            n, r = min(rows, key=lambda nr: _rank(nr[1]))
            worst[m] = {"row": n, "cage": physics[n]["cage"], "caller": physics[n]["caller"],
                        "assigned": r["assigned"], "right": r["right"]}  # fmt: skip

    def default_rank(name: str) -> float:
        methods = physics[name][first]
        return _rank(methods.get(default_method, methods["srp"]))

    order = sorted(physics, key=default_rank)
    return {
        "default_method": default_method,
        "methods": default,
        "physics": {n: physics[n] for n in order},
        "worst": worst,
        "cages": [str(c) for c in cages],
        "callers": list(callers),
        "n_animals": list(n_animals),
        "duration_s": duration_s,
    }


def _outcome(scores: dict[str, Any], calibration: Any) -> Any:
    """Attribution outcomes of a session's calls under one method's calibration."""
    from napari_gerbil.attribute import assign, candidate_logits, softmax_probabilities
    from napari_gerbil.evaluate.attribution import attribution_outcomes

    tracked = np.all(np.isfinite(scores["xy"]), axis=-1)
    logits = candidate_logits(
        calibration, scores["srp"], scores["log_density"], scores["bandwidth_khz"],
        scores["scorer_score"],
    )  # fmt: skip
    probs = softmax_probabilities(np.where(tracked, logits, np.nan))
    codes = assign(probs, calibration.assign_probability)
    return attribution_outcomes(scores["session"], scores["truth"], codes)


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
