"""Export reviewed (or confident) calls as VCL training data; held-out errors.

Every :data:`HELDOUT_EVERY`-th reviewed call (by call id) is kept out of exports, to
measure the error of old and new models on calls neither was trained on.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session import Session
from napari_gerbil.progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_gerbil.review.queries import predicted_animal, top_probability
from napari_gerbil.review.state import ReviewModel

#: Which calls :func:`export_calls` writes.
EXPORT_SELECTIONS = ("reviewed", "confident", "all")
#: Every HELDOUT_EVERY-th reviewed call (by call id) is kept out of exports, to measure
#: the error of old and new models on calls neither was trained on.
HELDOUT_EVERY = 5
#: Default lowest top animal probability of a "confident" predicted call.
CONFIDENT_PROBABILITY = 0.9


def animal_positions_mm(
    session: Session, poses: Any, indices: Any, node: int | str = 0
) -> np.ndarray:
    """(b, n_animals, 2) arena position (mm) of each animal's ``node`` at calls ``indices``.

    Computed by :func:`napari_gerbil.attribute.animal_positions_at_calls` (frame of the
    call's start). NaN where the animal is not tracked, or everywhere without poses.
    """
    from napari_gerbil.attribute import animal_positions_at_calls

    indices = np.asarray(indices, np.int64).reshape(-1)
    if poses is None or session.arena.arena_to_pixels is None:
        return np.full((len(indices), len(session.animal_names), 2), np.nan)
    # only these calls: a batch costs the same at the start and the end of hours of calls
    return animal_positions_at_calls(session.take(indices), poses, node)


def _positions_of(session: Session, poses: Any, rows: np.ndarray, animal: np.ndarray, node):
    """(len(rows), 2) position of ``animal[k]`` at call ``rows[k]`` (NaN if unknown)."""
    if not len(rows):
        return np.zeros((0, 2))
    pos = animal_positions_mm(session, poses, rows, node)
    return pos[np.arange(len(rows)), animal]


def reviewed_calls(
    model: ReviewModel | Session, poses: Any, node: int | str = 0
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Reviewed calls attributed to an animal whose pose is known at call time.

    Returns
    -------
    train, heldout : ndarray of call rows
        Every :data:`HELDOUT_EVERY`-th one (by call id) is held out.
    positions_mm : dict row -> (2,) position of the attributed animal's node
    """
    s = model.session if isinstance(model, ReviewModel) else model
    user = s.user.animal
    rows = np.flatnonzero(s.user.reviewed & (user >= 0))
    chosen = _positions_of(s, poses, rows, user[rows], node)
    known = np.isfinite(chosen).all(axis=1)
    rows, chosen = rows[known], chosen[known]
    order = np.argsort(s.calls.call_id[rows], kind="stable")
    rows, chosen = rows[order], chosen[order]
    held = (np.arange(len(rows)) % HELDOUT_EVERY) == HELDOUT_EVERY - 1
    positions = {int(r): c for r, c in zip(rows, chosen, strict=True)}
    return rows[~held], rows[held], positions


@dataclasses.dataclass
class ExportSelection:
    """The calls an export writes and the animal each one is labelled with."""

    rows: np.ndarray  # (k,) call rows, by call id
    animal: np.ndarray  # (k,) the animal whose node is the label
    positions_mm: np.ndarray  # (k, 2) that animal's node at the call
    n_heldout: int  # reviewed calls kept out for evaluation
    n_skipped: int  # candidate calls without a known position
    n_duplicates: int = 0  # calls already in the training set (its copy is replaced)


def select_export_calls(
    session: Session,
    poses: Any,
    calls: str = "reviewed",
    *,
    node: int | str = 0,
    min_probability: float = CONFIDENT_PROBABILITY,
    hold_out: bool = True,
) -> ExportSelection:
    """Pick the calls of an export and label each with an animal.

    Parameters
    ----------
    session, poses
        The session and its pose tracks.
    calls
        ``reviewed``: calls the user attributed to an animal; ``confident``: those plus
        calls not reviewed assigned to one animal (p >= 0.95 by the attribution) with a
        probability >= ``min_probability``; ``all``: every localized or reviewed call,
        labelled with the user's animal, else the predicted one, else the most probable.
    node
        Pose node whose position is the label.
    min_probability
        Lowest top probability of a confident predicted call.
    hold_out
        Keep every :data:`HELDOUT_EVERY`-th reviewed call out (for evaluation).
    """
    if calls not in EXPORT_SELECTIONS:
        raise InvalidInputError(session.path, "calls", f"one of {EXPORT_SELECTIONS}", repr(calls))
    if not 0.0 <= float(min_probability) <= 1.0:  # also refuses NaN
        raise InvalidInputError(
            None, "min_probability", "a probability in [0, 1]", repr(min_probability)
        )
    n = session.n_calls
    user = session.user.animal
    reviewed = session.user.reviewed & (user >= 0)
    predicted = predicted_animal(session)
    animal = np.where(reviewed, user, -1)
    candidates = reviewed.copy()
    if calls in ("confident", "all") and session.predicted is not None:
        not_reviewed = ~session.user.reviewed & session.localized()
        top = np.nan_to_num(top_probability(session), nan=0.0)
        confident = not_reviewed & (predicted >= 0) & (top >= min_probability)
        animal = np.where(confident, predicted, animal)
        candidates |= confident
        if calls == "all":
            probs = np.nan_to_num(session.predicted.probabilities, nan=-1.0)
            best = probs.argmax(axis=1) if probs.shape[1] else np.full(n, -1)
            best = np.where(probs.max(axis=1, initial=-1.0) >= 0, best, -1)
            fallback = np.where(predicted >= 0, predicted, best)
            rest = not_reviewed & ~confident & (fallback >= 0)
            animal = np.where(rest, fallback, animal)
            candidates |= rest
    rows = np.flatnonzero(candidates)
    positions = _positions_of(session, poses, rows, animal[rows], node)
    known = np.isfinite(positions).all(axis=1)
    n_skipped = int((~known).sum())
    rows, positions = rows[known], positions[known]
    order = np.argsort(session.calls.call_id[rows], kind="stable")
    rows, positions = rows[order], positions[order]
    keep = np.ones(len(rows), bool)
    if hold_out:
        user_rows = reviewed[rows]
        rank = np.cumsum(user_rows) - 1
        keep = ~(user_rows & (rank % HELDOUT_EVERY == HELDOUT_EVERY - 1))
    return ExportSelection(
        rows[keep], animal[rows[keep]], positions[keep], int((~keep).sum()), n_skipped
    )


def _load_poses(session: Session) -> Any:
    from napari_gerbil.io.tracks import load_poses

    if session.tracks is None:
        raise InvalidInputError(
            session.path,
            "tracks",
            "a pose file (training labels are the attributed animal's position)",
            "none",
        )
    return load_poses(session.tracks.path)


def export_calls(
    session: Session,
    out_path: str | os.PathLike,
    calls: str = "reviewed",
    *,
    poses: Any = None,
    audio: Any = None,
    node: int | str = 0,
    training_set: str | os.PathLike | None = None,
    min_probability: float = CONFIDENT_PROBABILITY,
    hold_out: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> tuple[Path, ExportSelection]:
    """Write calls of a session as a VCL training dataset (streamed, atomic).

    Locations are the labelled animal's ``node`` at the call's start frame (mm, (x, y)).
    With ``training_set`` the result is that set merged with the new calls (node names
    and location shape taken from it).

    Parameters
    ----------
    session
        The session (with pose tracks).
    out_path
        VCL file to write; must not be the session file or ``training_set``.
    calls
        Which calls: see :func:`select_export_calls`.
    poses, audio
        Loaded poses / opened audio (default: the session's).
    node, min_probability, hold_out
        See :func:`select_export_calls`.
    training_set
        Optional VCL file to merge the calls into.
    progress, cancel
        The :mod:`napari_gerbil.progress` protocol; cancelling leaves no file.

    Returns
    -------
    path, selection
        The file written and the calls in it.
    """
    from napari_gerbil.io.outputs import check_not_an_input
    from napari_gerbil.io.vcl import (
        LOCATION_TOLERANCE_MM,
        VCLDataset,
        VCLWriter,
        call_identities,
        check_locations,
        merge_vcl,
    )

    out_path = Path(out_path).absolute()
    # never the session, the training set, nor the audio / video / poses they refer to
    check_not_an_input(out_path, [session.path, training_set], "out")
    poses = _load_poses(session) if poses is None else poses
    selection = select_export_calls(
        session, poses, calls, node=node, min_probability=min_probability, hold_out=hold_out
    )
    if not len(selection.rows):
        raise InvalidInputError(
            session.path,
            "attribution",
            f"{calls} calls attributed to tracked animals",
            "none",
            hint="Confirm or correct some calls first (keys 1-9, a), or localize them.",
        )
    xy = selection.positions_mm
    node_names = [poses.node_names[poses.node_index(node)]]
    n_nodes, dims = 1, 2
    if training_set is not None:
        with VCLDataset(training_set) as base:
            if base.locations_mm is None or base.is_multi_animal:
                raise InvalidInputError(
                    training_set, "/locations", "single-animal labelled calls", "other"
                )
            # the same check as ``validate``: finite locations inside the arena
            arena = None if base.arena_dims_mm is None else np.asarray(base.arena_dims_mm, float)
            check_locations(
                Path(training_set), np.asarray(base.locations_mm, float), arena,
                LOCATION_TOLERANCE_MM,
            )  # fmt: skip
            node_names = base.node_names
            n_nodes, dims = base.locations_mm.shape[1:]
            already = set(call_identities(base))
        ours = {(str(session.path), int(c)) for c in session.calls.call_id[selection.rows]}
        selection = dataclasses.replace(selection, n_duplicates=len(ours & already))
    provenance = {
        "source": "napari-gerbil export",
        "calls": calls,
        "session": str(session.path),
        "call_ids": session.calls.call_id[selection.rows].tolist(),
        "node": str(node),
        "exported_at_unix_s": time.time(),
    }
    target = out_path.with_name(out_path.stem + ".new_calls.h5") if training_set else out_path
    source = session.audio.open() if audio is None else audio
    total = len(selection.rows)
    try:
        with VCLWriter(
            target,
            session.audio.n_channels,
            node_names=node_names,
            sample_rate_hz=session.audio.sample_rate_hz,
            arena_dims_mm=session.arena.dims_mm,
            mic_positions_mm=session.arena.mic_positions_mm,
            scenario="reviewed",
            provenance=provenance,
        ) as writer:
            for k, row in enumerate(selection.rows):
                check_cancel(cancel, "export")
                location = np.zeros((n_nodes, dims))
                location[:, :2] = xy[k]  # z (if any) = floor level
                writer.append(session.read_call_audio(int(row), source), location)
                if k % 64 == 0 or k == total - 1:
                    report(progress, (k + 1) / total, f"exporting call {k + 1}/{total}")
    finally:
        if audio is None:
            source.close()
    if training_set is not None:
        check_cancel(cancel, "export")
        try:
            merge_vcl([training_set, target], out_path, provenance=provenance)
        finally:
            target.unlink(missing_ok=True)
    return out_path, selection


def export_reviewed(
    model: ReviewModel,
    audio: Any,
    poses: Any,
    out_path: str | os.PathLike,
    training_set: str | os.PathLike | None = None,
    node: int | str = 0,
) -> tuple[Path, int]:
    """Write the confirmed/corrected calls as a VCL training file.

    :func:`export_calls` with ``calls="reviewed"``; held-out calls are left out.
    Returns (path, number of new calls).
    """
    path, selection = export_calls(
        model.session,
        out_path,
        "reviewed",
        poses=poses,
        audio=audio,
        node=node,
        training_set=training_set,
    )
    return path, len(selection.rows)


def heldout_errors(
    model: ReviewModel | Session,
    old_ensemble: Any,
    new_ensemble: Any,
    audio: Any,
    poses: Any,
    node: int | str = 0,
) -> dict[str, Any]:
    """Median distance (mm) from each ensemble's point estimate to the attributed animal.

    Measured on the held-out reviewed calls (all reviewed calls if none is held out:
    ``in_sample`` is then True). Heavy (two ensemble passes): run it in a worker.
    """
    s = model.session if isinstance(model, ReviewModel) else model
    train, held, positions = reviewed_calls(s, poses, node)
    rows = held if len(held) else train
    out: dict[str, Any] = {"n_heldout": int(len(rows)), "in_sample": not len(held)}
    if not len(rows):
        return {**out, "old_median_mm": float("nan"), "new_median_mm": float("nan")}
    clips = s.read_calls_audio(rows, audio)
    truth = np.array([positions[int(i)] for i in rows])
    for name, ensemble in (("old", old_ensemble), ("new", new_ensemble)):
        point = ensemble.predict(clips).point_mm
        out[f"{name}_median_mm"] = float(np.median(np.linalg.norm(point - truth, axis=1)))
    return out
