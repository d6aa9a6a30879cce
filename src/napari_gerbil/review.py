"""Review of a session, free of Qt.

Edits with undo/redo, call states, the review queue, export of reviewed calls as
training data and held-out evaluation.

The napari dock and the command line (``napari-gerbil export``, ``review-status``) both
use this module. Every edit of a :class:`ReviewModel` is written to the session file at
once, atomically (:func:`napari_gerbil.io.session.save_session`): nothing is lost on a
crash.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session import (
    AMBIGUOUS,
    NOT_REVIEWED,
    UNASSIGNED,
    Session,
    load_session,
    save_session,
)
from napari_gerbil.progress import CancelCheck, ProgressCallback, check_cancel, report

#: Every state a call can be in (see :func:`call_states`).
STATES = ("predicted", "confirmed", "corrected", "unassigned", "ambiguous", "not localized")
#: Which calls :func:`export_calls` writes.
EXPORT_SELECTIONS = ("reviewed", "confident", "all")
#: Every HELDOUT_EVERY-th reviewed call (by call id) is kept out of exports, to measure
#: the error of old and new models on calls neither was trained on.
HELDOUT_EVERY = 5
#: Default lowest top animal probability of a "confident" predicted call.
CONFIDENT_PROBABILITY = 0.9


@dataclasses.dataclass(frozen=True)
class Edit:
    """One user edit of a call's attribution (enough to undo and redo it)."""

    index: int
    before_animal: int
    before_time_s: float
    after_animal: int
    after_time_s: float
    before_decided_against: int = NOT_REVIEWED
    after_decided_against: int = NOT_REVIEWED


@dataclasses.dataclass(frozen=True)
class CallsEdit:
    """An edit of the calls themselves (add, delete, bounds).

    Holds the per-call tables of the session (calls, predictions, predicted and user
    attribution) before and after it.
    """

    index: int | None
    before: tuple[Any, ...]
    after: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class PredictionsEdit:
    """A localization run: the session's predictions before and after it (undoable).

    ``indices``: the calls it localized.
    """

    indices: tuple[int, ...]
    before: tuple[Any, ...]
    after: tuple[Any, ...]
    index: None = None


def code_name(code: int, animal_names: list[str]) -> str:
    """Readable name of an attribution code."""
    if code >= 0:
        return animal_names[code] if code < len(animal_names) else f"animal {code}"
    return {UNASSIGNED: "unassigned", AMBIGUOUS: "ambiguous", NOT_REVIEWED: "-"}.get(code, "?")


# -- per-call views of a session (no review state needed) ---------------------------------
def predicted_animal(session: Session) -> np.ndarray:
    """(n,) predicted code (UNASSIGNED where nothing was predicted)."""
    if session.predicted is None:
        return np.full(session.n_calls, UNASSIGNED, np.int64)
    return session.predicted.animal


def call_states(session: Session) -> np.ndarray:
    """(n,) state of each call, one of :data:`STATES` (object array of str)."""
    user = session.user
    predicted = predicted_animal(session)
    localized = session.localized()
    out = np.empty(session.n_calls, dtype=object)
    out[:] = "predicted"
    out[predicted == UNASSIGNED] = "unassigned"
    out[predicted == AMBIGUOUS] = "ambiguous"
    out[~localized & ~user.reviewed] = "not localized"
    # the prediction the user decided against (the current one for older files): a
    # re-localization never turns a correction into a confirmation
    against = user.decided_against
    against = (
        predicted if against is None else np.where(against == NOT_REVIEWED, predicted, against)
    )
    out[user.reviewed & (user.animal == against)] = "confirmed"
    out[user.reviewed & (user.animal != against)] = "corrected"
    return out


def top_probability(session: Session) -> np.ndarray:
    """(n,) highest animal probability (NaN where unknown)."""
    predicted = session.predicted
    if predicted is None or predicted.probabilities.shape[1] == 0:
        return np.full(session.n_calls, np.nan)
    probs = predicted.probabilities
    top = np.full(session.n_calls, np.nan)
    finite = np.isfinite(probs).any(axis=1)
    top[finite] = np.nanmax(probs[finite], axis=1)
    return top


def set_area_mm2(session: Session) -> np.ndarray:
    """(n,) area of the 95% set (NaN where not localized)."""
    pred = session.predictions
    return np.full(session.n_calls, np.nan) if pred is None else pred.set_area_mm2


def uncertainty_order(session: Session) -> np.ndarray:
    """Call rows, most uncertain first.

    Only localized calls not reviewed yet: ambiguous first, then by the entropy of the
    animal probabilities and the area of the 95% set.
    """
    n = session.n_calls
    predicted = predicted_animal(session)
    probs = (
        session.predicted.probabilities
        if session.predicted is not None
        else np.full((n, 0), np.nan)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.nan_to_num(probs, nan=0.0)
        total = p.sum(axis=1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.0)
        entropy = -(np.where(p > 0, p * np.log(p), 0.0)).sum(axis=1)
    area = np.nan_to_num(set_area_mm2(session), nan=-1.0)
    candidates = np.flatnonzero(~session.user.reviewed & session.localized())
    # lexsort: last key is primary
    keys = (
        -area[candidates],
        -entropy[candidates],
        (predicted[candidates] != AMBIGUOUS).astype(int),
    )
    return candidates[np.lexsort(keys)]


def _finite_or_none(value: float) -> float | None:
    """``value`` as a float, None when unknown (NaN): plain JSON."""
    return float(value) if np.isfinite(value) else None


def review_status(session: Session, n_uncertain: int = 10) -> dict[str, Any]:
    """Counts of calls by state and the most uncertain calls not reviewed yet.

    Returns
    -------
    dict
        ``n_calls``, ``n_localized``, ``n_reviewed``, ``states`` ({state: count}),
        ``model_version`` and ``most_uncertain`` (list of dicts: ``row``, ``call_id``,
        ``start_s``, ``state``, ``predicted``, ``top_probability``, ``set_area_cm2``;
        None where unknown).
    """
    states = call_states(session)
    top = top_probability(session)
    area = set_area_mm2(session)
    predicted = predicted_animal(session)
    rate = session.audio.sample_rate_hz
    uncertain = []
    for row in uncertainty_order(session)[:n_uncertain]:
        r = int(row)
        uncertain.append(
            {
                "row": r,
                "call_id": int(session.calls.call_id[r]),
                "start_s": float(session.calls.start_sample[r] / rate),
                "state": str(states[r]),
                "predicted": code_name(int(predicted[r]), session.animal_names),
                "top_probability": _finite_or_none(top[r]),
                "set_area_cm2": _finite_or_none(area[r] / 100.0),
            }
        )
    return {
        "n_calls": session.n_calls,
        "n_localized": int(session.localized().sum()),
        "n_reviewed": int(session.user.reviewed.sum()),
        "states": {state: int((states == state).sum()) for state in STATES},
        "model_version": None if session.predictions is None else session.predictions.model_version,
        "most_uncertain": uncertain,
    }


class ReviewModel:
    """A session under review and the file it is saved to after every edit.

    Parameters
    ----------
    session
        The session (edited in place).
    path
        Session file; defaults to ``session.path``.
    """

    def __init__(self, session: Session, path: str | os.PathLike | None = None) -> None:
        path = path if path is not None else session.path
        if path is None:
            raise InvalidInputError(None, "path", "a session file path", "None")
        self.session = session
        self.path = Path(path).absolute()
        self.undo_stack: list[Edit | CallsEdit | PredictionsEdit] = []
        self.redo_stack: list[Edit | CallsEdit | PredictionsEdit] = []
        self.n_saves = 0
        #: Incremented whenever calls are added, deleted or re-bounded (indices may change)
        #: or a localization is recorded, undone or redone (many rows change).
        self.calls_version = 0

    @classmethod
    def open(cls, path: str | os.PathLike) -> ReviewModel:
        """Load a session file for review."""
        return cls(load_session(path), path)

    @property
    def n_calls(self) -> int:
        """Number of calls."""
        return self.session.n_calls

    def save(self) -> None:
        """Write the session file atomically."""
        save_session(self.session, self.path)
        self.n_saves += 1

    # -- edits ------------------------------------------------------------------------
    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.n_calls:
            raise InvalidInputError(self.path, "call index", f"0..{self.n_calls - 1}", str(index))
        return int(index)

    def assign(self, index: int, animal: int) -> Edit:
        """Set the user attribution of call ``index`` (animal index, -1 or -2) and save."""
        index = self._check_index(index)
        user = self.session.user
        assert user.decided_against is not None
        before = (int(user.animal[index]), float(user.edit_time_s[index]))
        against = int(user.decided_against[index])
        self.session.set_user_attribution(index, int(animal), now=time.time())
        edit = Edit(
            index,
            *before,
            int(user.animal[index]),
            float(user.edit_time_s[index]),
            before_decided_against=against,
            after_decided_against=int(user.decided_against[index]),
        )
        self.undo_stack.append(edit)
        self.redo_stack.clear()
        self.save()
        return edit

    def accept(self, index: int) -> Edit:
        """Confirm the predicted attribution of call ``index`` (unassigned if none)."""
        index = self._check_index(index)
        return self.assign(index, int(predicted_animal(self.session)[index]))

    def _apply(self, edit: Edit | CallsEdit | PredictionsEdit, undo: bool) -> int | None:
        if isinstance(edit, CallsEdit):
            self._restore(edit.before if undo else edit.after)
        elif isinstance(edit, PredictionsEdit):
            state = edit.before if undo else edit.after
            self.session.predictions, self.session.predicted = copy.deepcopy(state)
            self.session.check()
            self.calls_version += 1
        else:
            animal, time_s, against = (
                (edit.before_animal, edit.before_time_s, edit.before_decided_against)
                if undo
                else (edit.after_animal, edit.after_time_s, edit.after_decided_against)
            )
            user = self.session.user
            assert user.decided_against is not None
            user.animal[edit.index] = animal
            user.edit_time_s[edit.index] = time_s
            user.decided_against[edit.index] = against
        self.save()
        return edit.index

    def undo(self) -> int | None:
        """Undo the last edit.

        Returns the call index it touched (None if nothing to undo, or if it touched no
        single call).
        """
        if not self.undo_stack:
            return None
        edit = self.undo_stack.pop()
        self.redo_stack.append(edit)
        return self._apply(edit, undo=True)

    def redo(self) -> int | None:
        """Redo the last undone edit; returns its call index (None if nothing to redo)."""
        if not self.redo_stack:
            return None
        edit = self.redo_stack.pop()
        self.undo_stack.append(edit)
        return self._apply(edit, undo=False)

    # -- edits of the calls themselves ----------------------------------------------------
    def _snapshot(self) -> tuple[Any, ...]:
        s = self.session
        return copy.deepcopy((s.calls, s.predictions, s.predicted, s.user))

    def _restore(self, state: tuple[Any, ...]) -> None:
        s = self.session
        s.calls, s.predictions, s.predicted, s.user = copy.deepcopy(state)
        s.check()
        self.calls_version += 1

    def _record(self, before: tuple[Any, ...], index: int | None) -> CallsEdit:
        self.session.check()
        edit = CallsEdit(index, before, self._snapshot())
        self.undo_stack.append(edit)
        self.redo_stack.clear()
        self.calls_version += 1
        self.save()
        return edit

    def _check_bounds(self, start: int, stop: int, ignore: int | None = None) -> None:
        s = self.session
        n_samples = s.audio.n_samples
        if not 0 <= start < stop <= n_samples:
            raise InvalidInputError(
                self.path,
                "call bounds",
                f"0 <= start < stop <= {n_samples} samples",
                f"[{start}, {stop})",
            )
        overlap = (s.calls.start_sample < stop) & (s.calls.stop_sample > start)
        if ignore is not None:
            overlap[ignore] = False
        if overlap.any():
            other = int(s.calls.call_id[np.argmax(overlap)])
            raise InvalidInputError(
                self.path,
                "call bounds",
                "no overlap with other calls",
                f"[{start}, {stop}) overlaps call {other}",
            )

    def add_call(self, start_sample: int, stop_sample: int) -> int:
        """Add one call (no prediction until localized); saves; returns its index.

        Raises InvalidInputError if it is outside the audio or overlaps a call.
        """
        start, stop = int(start_sample), int(stop_sample)
        self._check_bounds(start, stop)
        before = self._snapshot()
        self.session.append_calls([start], [stop])
        self._record(before, self.n_calls - 1)
        return self.n_calls - 1

    def delete_call(self, index: int) -> CallsEdit:
        """Delete call ``index`` with its prediction and attributions; saves (undoable)."""
        index = self._check_index(index)
        before = self._snapshot()
        self.session.delete_calls([index])
        return self._record(before, None)

    def set_bounds(self, index: int, start_sample: int, stop_sample: int) -> CallsEdit:
        """Move the bounds of call ``index``; saves (undoable).

        Its prediction is dropped (the audio changed; localize it again), its user
        attribution kept.
        """
        index = self._check_index(index)
        start, stop = int(start_sample), int(stop_sample)
        self._check_bounds(start, stop, ignore=index)
        before = self._snapshot()
        s = self.session
        s.calls.start_sample[index] = start
        s.calls.stop_sample[index] = stop
        s.clear_predictions([index])
        return self._record(before, index)

    def add_calls(self, start_samples: Any, stop_samples: Any) -> int:
        """Append calls that overlap no existing call; saves (one undoable edit).

        Returns how many were added.
        """
        before = self._snapshot()
        added = add_new_calls(self.session, start_samples, stop_samples)
        if added:
            self._record(before, None)
        return added

    # -- calls and predictions ----------------------------------------------------------
    def apply_localization(self, batch: Any) -> None:
        """Store a :class:`napari_gerbil.pipeline.LocalizedBatch` in the session.

        In memory; call :meth:`record_localization` (or :meth:`save`) after the last batch.
        """
        self.session.set_predictions(batch.indices, **batch.session_fields())

    def predictions_snapshot(self) -> tuple[Any, ...]:
        """A copy of the predictions, taken before a localization run."""
        return copy.deepcopy((self.session.predictions, self.session.predicted))

    def record_localization(self, before: tuple[Any, ...], indices: Any) -> PredictionsEdit | None:
        """Save a localization run as one undoable edit (``before``: its snapshot).

        Undo gives back every earlier prediction, those it replaced and those it dropped.
        Returns the edit (None if nothing was localized).
        """
        idx = tuple(sorted({int(i) for i in np.asarray(indices).reshape(-1)}))
        if not idx:
            return None
        edit = PredictionsEdit(idx, before, self.predictions_snapshot())
        self.undo_stack.append(edit)
        self.redo_stack.clear()
        self.calls_version += 1
        self.save()
        return edit

    # -- derived views ----------------------------------------------------------------
    def localized(self) -> np.ndarray:
        """(n,) bool: the call has a prediction."""
        return self.session.localized()

    def predicted_animal(self) -> np.ndarray:
        """(n,) predicted code (UNASSIGNED where nothing was predicted)."""
        return predicted_animal(self.session)

    def states(self) -> np.ndarray:
        """(n,) state of each call, one of :data:`STATES`."""
        return call_states(self.session)

    def edited(self) -> np.ndarray:
        """(n,) bool: the user decided on the call (confirmed or corrected)."""
        return self.session.user.reviewed.copy()

    def top_probability(self) -> np.ndarray:
        """(n,) highest animal probability (NaN where unknown)."""
        return top_probability(self.session)

    def set_area_mm2(self) -> np.ndarray:
        """(n,) area of the 95% set (NaN where not localized)."""
        return set_area_mm2(self.session)

    def rows(self) -> dict[str, np.ndarray]:
        """Columns of the calls table."""
        s = self.session
        rate = s.audio.sample_rate_hz
        names = s.animal_names
        animal = s.effective_attribution()
        return {
            "call_id": s.calls.call_id,
            "time_s": s.calls.start_sample / rate,
            "duration_ms": (s.calls.stop_sample - s.calls.start_sample) / rate * 1000.0,
            "area_cm2": self.set_area_mm2() / 100.0,
            "top_probability": self.top_probability(),
            "animal_name": np.array([code_name(int(a), names) for a in animal], dtype=object),
            "state": self.states(),
        }

    def uncertainty_order(self) -> np.ndarray:
        """Call indices, most uncertain first (see :func:`uncertainty_order`)."""
        return uncertainty_order(self.session)

    def next_uncertain(self) -> int | None:
        """The most uncertain call not reviewed yet (None when all are reviewed)."""
        order = self.uncertainty_order()
        return int(order[0]) if order.size else None

    def call_time_s(self, index: int) -> tuple[float, float]:
        """(start, stop) of call ``index`` in recording seconds."""
        rate = self.session.audio.sample_rate_hz
        calls = self.session.calls
        return calls.start_sample[index] / rate, calls.stop_sample[index] / rate

    def call_frame(self, index: int) -> int:
        """Video frame at the middle of call ``index``."""
        calls = self.session.calls
        middle = (calls.start_sample[index] + calls.stop_sample[index]) // 2
        return int(self.session.frame_of_sample(middle))


def add_new_calls(session: Session, start_samples: Any, stop_samples: Any) -> int:
    """Append the calls that overlap no existing call (in memory); returns how many."""
    starts = np.asarray(start_samples, np.int64).reshape(-1)
    stops = np.asarray(stop_samples, np.int64).reshape(-1)
    if starts.shape != stops.shape:
        raise InvalidInputError(
            session.path, "calls", "as many stops as starts", f"{len(starts)} vs {len(stops)}"
        )
    old_start, old_stop = session.calls.start_sample, session.calls.stop_sample
    order = np.argsort(old_start)
    sorted_start, stop_max = old_start[order], np.maximum.accumulate(old_stop[order])
    # a new call [a, b) overlaps an old one iff some old start < b has its stop > a
    below = np.searchsorted(sorted_start, stops, side="left")
    overlaps = np.zeros(len(starts), bool)
    has = below > 0
    overlaps[has] = stop_max[below[has] - 1] > starts[has]
    keep = ~overlaps
    if not keep.any():
        return 0
    session.append_calls(starts[keep], stops[keep])
    return int(keep.sum())


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
    from napari_gerbil.io.vcl import VCLDataset, VCLWriter, call_identities, merge_vcl

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
