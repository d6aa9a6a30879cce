"""Train the learned audio-pose scorer (:mod:`napari_gerbil.model.scorer`) for one rig.

Training calls come from the data engine with plausible callers (every caller faces
somewhere: :mod:`napari_gerbil.simulate.caller`), in randomly perturbed copies of the
cage. Each call gets :data:`N_CANDIDATES` candidates, the caller first:

- the caller's tracked pose: the true mouth plus pose noise, its heading plus noise;
- hard negatives: poses 1-30 cm from the caller (log-uniform), any heading; a curriculum
  shows only the far ones first and all of them from half-way through;
- poses from other calls' frames: anywhere on the floor, any heading.

The loss is the cross-entropy of the caller among its candidates (a contrastive loss
with one positive). Reviewed calls from sessions are strong labels of the same kind
(:func:`reviewed_candidate_set`): their candidates are the tracked animals.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_gerbil.training.attribution import HEADING_NOISE_RAD, POSE_NOISE_MM

#: Candidates per training call: the caller, hard negatives, poses from other frames.
N_CANDIDATES = 6
N_NEAR = 3
#: Distance range (mm) of the hard negatives from the caller.
NEAR_RANGE_MM = (10.0, 300.0)


@dataclasses.dataclass
class CandidateSet:
    """Features of calls at their candidates; candidate 0 is the caller.

    Attributes
    ----------
    features
        (n, K, F) float32.
    valid
        (n, K) tracked candidates.
    distance_mm
        (n, K) distance of each candidate from the caller's (0 for the caller).
    steered_response
        (n, K) the classical score.
    bandwidth_khz
        (n,) each call's band.
    stimulus_classes
        (n,) class of each call.
    """

    features: np.ndarray
    valid: np.ndarray
    distance_mm: np.ndarray
    steered_response: np.ndarray
    bandwidth_khz: np.ndarray
    stimulus_classes: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    def take(self, rows: np.ndarray) -> CandidateSet:
        """The calls ``rows``."""
        return CandidateSet(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))

    @classmethod
    def concatenate(cls, parts: list[CandidateSet]) -> CandidateSet:
        """Calls of several sets (same K and F)."""
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts])
                     for f in dataclasses.fields(cls)))  # fmt: skip


def draw_candidates(
    caller_xy_mm: np.ndarray,
    caller_heading_rad: np.ndarray,
    half_floor_mm: np.ndarray,
    rng: np.random.Generator,
    n_near: int = N_NEAR,
    n_far: int = N_CANDIDATES - 1 - N_NEAR,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, K, 2) candidate positions and (n, K) headings; candidate 0 the caller's pose."""
    n = len(caller_xy_mm)
    xy = [caller_xy_mm + rng.normal(0.0, POSE_NOISE_MM, (n, 2))]
    heads = [np.asarray(caller_heading_rad, float) + rng.normal(0.0, HEADING_NOISE_RAD, n)]
    lo, hi = np.log(NEAR_RANGE_MM)
    for _ in range(n_near):
        r = np.exp(rng.uniform(lo, hi, n))
        angle = rng.uniform(-np.pi, np.pi, n)
        xy.append(caller_xy_mm + r[:, None] * np.c_[np.cos(angle), np.sin(angle)])
        heads.append(rng.uniform(-np.pi, np.pi, n))
    for _ in range(n_far):
        xy.append(rng.uniform(-half_floor_mm, half_floor_mm, (n, 2)))
        heads.append(rng.uniform(-np.pi, np.pi, n))
    cand = np.clip(np.stack(xy, axis=1), -half_floor_mm, half_floor_mm)
    return cand, np.stack(heads, axis=1)


def engine_candidate_set(
    cage: Any,
    n_calls: int,
    *,
    seed: int = 11,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> CandidateSet:
    """Render ``n_calls`` fresh engine calls (plausible callers) and their candidates."""
    from napari_gerbil.attribute import band_khz
    from napari_gerbil.baselines.candidate_features import candidate_features
    from napari_gerbil.simulate.engine import DataEngine, EngineConfig, Randomization

    if n_calls < 1:
        raise InvalidInputError(None, "n_calls", ">= 1", str(n_calls))
    config = EngineConfig(
        height_mm=(10.0, 90.0), randomization=Randomization(directional_fraction=1.0)
    )
    engine = DataEngine(cage, config, seed=seed, device=device)
    rng = np.random.default_rng([seed, 0x5C0E])
    half = engine.cage.dims[:2] / 2.0 - engine.config.margin_mm
    parts, done, index = [], 0, 0
    while done < n_calls:
        check_cancel(cancel, "scorer training calls")
        batch = engine.batch(index, min(engine.config.calls_per_room, n_calls - done))
        cand, heads = draw_candidates(batch.locations_mm[:, :2], batch.headings_rad, half, rng)
        feats = candidate_features(
            batch.audio, engine.cage.mics, engine.config.sample_rate_hz, cand, heads
        )
        parts.append(
            CandidateSet(
                feats.features,
                feats.valid,
                np.linalg.norm(cand - cand[:, :1], axis=-1),
                feats.steered_response,
                band_khz(feats.bands_hz),
                np.asarray(batch.stimulus_classes),
            )
        )
        done, index = done + len(batch.audio), index + 1
        report(progress, done / n_calls, f"scorer training calls: {done}/{n_calls}")
    return CandidateSet.concatenate(parts)


def train_scorer(
    train: CandidateSet,
    *,
    epochs: int = 20,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    hidden: tuple[int, ...] = (256, 128),
    curriculum: bool = True,
    init: Any = None,
    seed: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Any:
    """Fit a :class:`~napari_gerbil.model.scorer.CandidateScorer` on ``train``.

    ``init``: a scorer to fine-tune (its normalization is kept); otherwise a new one,
    standardized on ``train``. With ``curriculum``, negatives closer than a distance
    that falls from 100 mm to 0 over the first half of the epochs are hidden.
    """
    import torch

    from napari_gerbil.model.scorer import CandidateScorer

    if len(train) == 0:
        raise InvalidInputError(None, "calls", "at least one training call", "none")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if init is None:
        scorer = CandidateScorer(train.features.shape[-1], hidden)
        scorer.set_normalization(train.features, train.valid)
    else:
        scorer = init
    scorer.to(device)
    optimizer = torch.optim.AdamW(scorer.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps = max(1, math.ceil(len(train) / batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=epochs * steps
    )
    feats = torch.as_tensor(train.features)
    valid = torch.as_tensor(train.valid)
    dist = torch.as_tensor(train.distance_mm, dtype=torch.float32)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        scorer.train()
        min_mm = 100.0 * max(0.0, 1.0 - epoch / max(1.0, epochs / 2.0)) if curriculum else 0.0
        order = torch.as_tensor(rng.permutation(len(train)))
        total = 0.0
        for step in range(steps):
            check_cancel(cancel, "scorer training")
            rows = order[step * batch_size : (step + 1) * batch_size]
            shown = valid[rows] & ((dist[rows] >= min_mm) | (dist[rows] == 0))
            shown[:, 0] = True
            scores = scorer(feats[rows].to(device))
            scores = scores.masked_fill(~shown.to(device), -1e4)
            loss = torch.nn.functional.cross_entropy(
                scores, torch.zeros(len(rows), dtype=torch.long, device=device)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(rows)
        message = (
            f"scorer epoch {epoch + 1}/{epochs}: loss {total / len(train):.4f} "
            f"(negatives >= {min_mm:.0f} mm), {time.perf_counter() - t0:.0f} s"
        )
        if log is not None:
            log(message)
        report(progress, (epoch + 1) / epochs, message)
    scorer.to("cpu").eval()
    return scorer


def ranked_first(scores: np.ndarray) -> float:
    """Share of calls whose caller (candidate 0) has the highest score."""
    s = np.nan_to_num(np.asarray(scores, float), nan=-np.inf)
    return float(np.mean(np.argmax(s, axis=1) == 0))


def write_scorer(
    model_dir: Any,
    cage: Any,
    n_calls: int,
    *,
    epochs: int = 20,
    calibration_calls: int = 2048,
    seed: int = 11,
    device: str = "cpu",
    overwrite: bool = False,
    train_set: CandidateSet | None = None,
    log: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> dict[str, Any]:
    """Train a scorer for a model's rig, save ``scorer.pt`` and refit ``attribution.yaml``.

    The model must fit ``cage``. Nothing is replaced without ``overwrite``; the scorer is
    written only once trained, the calibration only once fitted. ``train_set``: calls
    already rendered (otherwise ``n_calls`` fresh engine calls).

    Returns
    -------
    ``{"figures": {method: held-out figures}, "n_calls", "epochs", "wall_s"}``.
    """
    from pathlib import Path

    from napari_gerbil.attribute import CALIBRATION_FILE
    from napari_gerbil.io.cage import load_cage
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.model.scorer import SCORER_FILE, save_scorer
    from napari_gerbil.progress import scaled
    from napari_gerbil.training.attribution import write_calibration

    model_dir = Path(model_dir)
    cage = load_cage(cage)
    for name in (SCORER_FILE, CALIBRATION_FILE):
        if (model_dir / name).exists() and not overwrite:
            raise InvalidInputError(
                model_dir / name, "output", "a new file", "an existing file",
                hint="Pass --overwrite to train the scorer again.",
            )  # fmt: skip
    ensemble = load_ensemble(model_dir)
    ensemble.check_compatible(
        n_channels=cage.n_mics, arena_dims_mm=cage.dims, mic_positions_mm=cage.mics,
        source=cage.name,
    )  # fmt: skip
    t0 = time.perf_counter()
    if train_set is None:
        train_set = engine_candidate_set(
            cage, n_calls, seed=seed, device=device, progress=scaled(progress, 0.0, 0.6),
            cancel=cancel,
        )  # fmt: skip
    scorer = train_scorer(
        train_set, epochs=epochs, seed=seed, device=device, log=log,
        progress=scaled(progress, 0.6, 0.8), cancel=cancel,
    )  # fmt: skip
    rate = ensemble.metadata.sample_rate_hz
    save_scorer(
        scorer,
        model_dir / SCORER_FILE,
        rig={"cage": cage.name, "mic_positions_mm": cage.mics, "dims_mm": cage.dims,
             "sample_rate_hz": rate},
        provenance={"calls": len(train_set), "epochs": epochs, "seed": seed,
                    "caller": "plausible", "wall_s": time.perf_counter() - t0},
    )  # fmt: skip
    figures = write_calibration(
        model_dir, cage, calibration_calls, seed=seed + 1, overwrite=True,
        progress=scaled(progress, 0.8, 1.0), cancel=cancel,
    )  # fmt: skip
    return {
        "figures": figures,
        "n_calls": len(train_set),
        "epochs": epochs,
        "wall_s": time.perf_counter() - t0,
    }


#: Every HELDOUT_EVERY-th reviewed call (by call id) is kept out of fine-tuning, as the
#: review export does (``napari_gerbil.review.export.HELDOUT_EVERY``; a test keeps them
#: equal), to judge old and new scorers on calls neither was trained on.
HELDOUT_EVERY = 5


def reviewed_rows(session: Any, poses: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reviewed calls given to a tracked animal: (train rows, held-out rows), by call id."""
    from napari_gerbil.io.animals import animal_positions_at_calls

    user = session.user.animal
    rows = np.flatnonzero(session.user.reviewed & (user >= 0))
    if len(rows):
        xy = animal_positions_at_calls(session.take(rows), poses)
        rows = rows[np.all(np.isfinite(xy[np.arange(len(rows)), user[rows]]), axis=-1)]
    rows = rows[np.argsort(session.calls.call_id[rows], kind="stable")]
    held = (np.arange(len(rows)) % HELDOUT_EVERY) == HELDOUT_EVERY - 1
    return rows[~held], rows[held]


def session_candidate_set(session: Any, poses: Any, rows: np.ndarray,
                          callers: np.ndarray) -> CandidateSet:  # fmt: skip
    """Calls ``rows`` with the tracked animals as candidates, ``callers[k]`` first.

    The strong labels of reviewed calls (or of a simulated session's truth).
    """
    from napari_gerbil.attribute import band_khz
    from napari_gerbil.baselines.candidate_features import candidate_features
    from napari_gerbil.io.animals import animal_headings_at_calls, animal_positions_at_calls

    rows = np.asarray(rows, np.int64)
    part = session.take(rows)
    xy = animal_positions_at_calls(part, poses)
    heads = animal_headings_at_calls(part, poses)
    n_animals = xy.shape[1]
    order = np.array([[c] + [a for a in range(n_animals) if a != c] for c in callers], np.int64)
    order = order.reshape(len(rows), n_animals)
    xy = np.take_along_axis(xy, order[..., None], axis=1)
    heads = np.take_along_axis(heads, order, axis=1)
    clips = session.read_calls_audio(rows)
    feats = candidate_features(
        clips, session.arena.mic_positions_mm, session.audio.sample_rate_hz, xy, heads
    )
    return CandidateSet(
        feats.features,
        feats.valid,
        np.linalg.norm(xy - xy[:, :1], axis=-1),
        feats.steered_response,
        band_khz(feats.bands_hz),
        np.full(len(rows), "reviewed"),
    )


def judge_scorer(scorer: Any, scale: float, calls: CandidateSet,
                 assign_probability: float = 0.95) -> dict[str, float]:  # fmt: skip
    """Share of ``calls`` assigned (p >= ``assign_probability``) and right; caller first."""
    from napari_gerbil.attribute import assign, softmax_probabilities
    from napari_gerbil.model.scorer import score_candidates

    if not len(calls):
        return {"n": 0, "assigned": float("nan"), "right": float("nan")}
    logits = scale * score_candidates(scorer, calls.features, calls.valid)
    codes = assign(softmax_probabilities(logits), assign_probability)
    done = codes >= 0
    return {
        "n": int(len(calls)),
        "assigned": float(done.mean()),
        "right": float(np.mean(codes[done] == 0)) if done.any() else float("nan"),
    }


def finetune_scorer(
    parent_dir: Any,
    out_dir: Any,
    sessions: list[Any],
    *,
    epochs: int = 10,
    learning_rate: float = 5e-4,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """Teach a model's scorer the reviewed calls of ``sessions``; write it to ``out_dir``.

    The parent's ``scorer.pt`` is fine-tuned on the reviewed calls (strong labels: the
    candidates are the tracked animals, the user's choice first), every
    :data:`HELDOUT_EVERY`-th held out. The verdict, the calls assigned and right on the
    held-out ones before and after, is returned and written to
    ``out_dir/scorer_finetune.json``. None (nothing written) when the parent has no
    scorer or the sessions no reviewed calls.
    """
    import copy
    import json
    from pathlib import Path

    from napari_gerbil.attribute import load_calibration
    from napari_gerbil.io.atomic import atomic_write_text
    from napari_gerbil.io.session import load_session
    from napari_gerbil.io.tracks import load_poses
    from napari_gerbil.model.scorer import SCORER_FILE, load_scorer, save_scorer

    parent_dir, out_dir = Path(parent_dir), Path(out_dir)
    if not (parent_dir / SCORER_FILE).is_file():
        return None
    scorer, record = load_scorer(parent_dir / SCORER_FILE)
    train_parts: list[CandidateSet] = []
    held_parts: list[CandidateSet] = []
    for path in dict.fromkeys(str(s) for s in sessions):
        session = load_session(path)
        if session.tracks is None or session.arena.arena_to_pixels is None:
            continue
        poses = load_poses(session.tracks.path)
        train_rows, held_rows = reviewed_rows(session, poses)
        user = session.user.animal
        for rows, parts in ((train_rows, train_parts), (held_rows, held_parts)):
            if len(rows):
                parts.append(session_candidate_set(session, poses, rows, user[rows]))
    if not train_parts:
        return None
    width = max(p.features.shape[1] for p in train_parts + held_parts)
    train = CandidateSet.concatenate([_padded_set(p, width) for p in train_parts])
    held = (CandidateSet.concatenate([_padded_set(p, width) for p in held_parts])
            if held_parts else None)  # fmt: skip
    calibration = load_calibration(parent_dir)
    scale = calibration.scorer_scale if calibration.uses_scorer else 1.0
    new = train_scorer(train, epochs=epochs, learning_rate=learning_rate, curriculum=False,
                       init=copy.deepcopy(scorer), batch_size=32)  # fmt: skip
    verdict: dict[str, Any] = {"n_train": len(train), "n_heldout": 0 if held is None else len(held)}
    if held is not None:
        verdict["before"] = judge_scorer(scorer, scale, held, calibration.assign_probability)
        verdict["after"] = judge_scorer(new, scale, held, calibration.assign_probability)
    provenance = dict(record.get("provenance", {}))
    provenance["finetuned_on"] = {"reviewed_calls": len(train), "sessions": list(sessions)}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_scorer(new, out_dir / SCORER_FILE, record.get("rig", {}), provenance)
    atomic_write_text(out_dir / "scorer_finetune.json", json.dumps(verdict, indent=1) + "\n")
    if log is not None:
        log(scorer_verdict(verdict))
    return verdict


def scorer_verdict(verdict: dict[str, Any]) -> str:
    """The fine-tune verdict in one sentence."""
    n = verdict["n_heldout"]
    if not n:
        return (f"scorer fine-tuned on {verdict['n_train']} reviewed calls; no held-out "
                "reviewed call to judge it on yet")  # fmt: skip
    b, a = verdict["before"], verdict["after"]

    def pct(x: float) -> str:
        return "-" if not np.isfinite(x) else f"{100 * x:.0f}%"

    return (
        f"scorer on {n} held-out reviewed call{'s' if n != 1 else ''}: assigned "
        f"{pct(b['assigned'])} -> {pct(a['assigned'])}, right {pct(b['right'])} -> "
        f"{pct(a['right'])} (fine-tuned on {verdict['n_train']})"
    )


def _padded_set(part: CandidateSet, width: int) -> CandidateSet:
    """The set with untracked candidates appended up to ``width`` per call."""
    extra = width - part.features.shape[1]
    if extra <= 0:
        return part
    n = len(part)
    return CandidateSet(
        np.concatenate(
            [part.features, np.zeros((n, extra, part.features.shape[2]), np.float32)], axis=1
        ),  # fmt: skip
        np.concatenate([part.valid, np.zeros((n, extra), bool)], axis=1),
        np.concatenate([part.distance_mm, np.full((n, extra), np.inf)], axis=1),
        np.concatenate([part.steered_response, np.full((n, extra), np.nan)], axis=1),
        part.bandwidth_khz,
        part.stimulus_classes,
    )
