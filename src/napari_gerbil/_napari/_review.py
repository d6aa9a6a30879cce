"""Review state of one session, free of Qt: edits, undo/redo, states, review queue.

Every edit is written to the session file at once, atomically
(:func:`napari_gerbil.io.session.save_session`): nothing is lost on a crash.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session import (
    AMBIGUOUS,
    NOT_REVIEWED,
    UNASSIGNED,
    CallTable,
    PredictedAttribution,
    Predictions,
    Session,
    UserAttribution,
    load_session,
    save_session,
)


@dataclasses.dataclass(frozen=True)
class Edit:
    """One user edit of a call's attribution (enough to undo and redo it)."""

    index: int
    before_animal: int
    before_time_s: float
    after_animal: int
    after_time_s: float


@dataclasses.dataclass(frozen=True)
class CallsEdit:
    """An edit of the calls themselves (add, delete, bounds): the per-call state of the
    session before and after it (calls, predictions, predicted and user attribution)."""

    index: int | None
    before: tuple
    after: tuple


def code_name(code: int, animal_names: list[str]) -> str:
    """Readable name of an attribution code."""
    if code >= 0:
        return animal_names[code] if code < len(animal_names) else f"animal {code}"
    return {UNASSIGNED: "unassigned", AMBIGUOUS: "ambiguous", NOT_REVIEWED: "-"}.get(code, "?")


#: Per-call arrays of :class:`Predictions`.
_PREDICTION_FIELDS = ("point_mm", "member_means_mm", "member_chol_mm", "set_area_mm2")


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
        self.undo_stack: list[Edit | CallsEdit] = []
        self.redo_stack: list[Edit | CallsEdit] = []
        self.n_saves = 0
        #: Incremented whenever calls are added, deleted or re-bounded (indices may change).
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
        before = (int(user.animal[index]), float(user.edit_time_s[index]))
        self.session.set_user_attribution(index, int(animal), now=time.time())
        edit = Edit(index, *before, int(user.animal[index]), float(user.edit_time_s[index]))
        self.undo_stack.append(edit)
        self.redo_stack.clear()
        self.save()
        return edit

    def accept(self, index: int) -> Edit:
        """Confirm the predicted attribution of call ``index`` (unassigned if none)."""
        index = self._check_index(index)
        predicted = self.session.predicted
        animal = UNASSIGNED if predicted is None else int(predicted.animal[index])
        return self.assign(index, animal)

    def _apply(self, edit: Edit | CallsEdit, undo: bool) -> int | None:
        if isinstance(edit, CallsEdit):
            self._restore(edit.before if undo else edit.after)
        else:
            animal, time_s = (
                (edit.before_animal, edit.before_time_s)
                if undo
                else (edit.after_animal, edit.after_time_s)
            )
            self.session.user.animal[edit.index] = animal
            self.session.user.edit_time_s[edit.index] = time_s
        self.save()
        return edit.index

    def undo(self) -> int | None:
        """Undo the last edit; returns the call index it touched (None if nothing to undo,
        or if it touched no single call)."""
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
    def _snapshot(self) -> tuple:
        s = self.session
        return copy.deepcopy((s.calls, s.predictions, s.predicted, s.user))

    def _restore(self, state: tuple) -> None:
        s = self.session
        s.calls, s.predictions, s.predicted, s.user = copy.deepcopy(state)
        s.check()
        self.calls_version += 1

    def _record(self, before: tuple, index: int | None) -> CallsEdit:
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

        Raises InvalidInputError if it is outside the audio or overlaps a call."""
        start, stop = int(start_sample), int(stop_sample)
        self._check_bounds(start, stop)
        before = self._snapshot()
        self._append_calls(np.array([start]), np.array([stop]))
        self._record(before, self.n_calls - 1)
        return self.n_calls - 1

    def delete_call(self, index: int) -> CallsEdit:
        """Delete call ``index`` with its prediction and attributions; saves (undoable)."""
        index = self._check_index(index)
        before = self._snapshot()
        keep = np.ones(self.n_calls, bool)
        keep[index] = False
        s = self.session
        s.calls = CallTable(
            *(a[keep] for a in (s.calls.call_id, s.calls.start_sample, s.calls.stop_sample))
        )
        if s.predictions is not None:
            p = s.predictions
            s.predictions = Predictions(
                *(getattr(p, k)[keep] for k in _PREDICTION_FIELDS), model_version=p.model_version
            )
        if s.predicted is not None:
            s.predicted = PredictedAttribution(
                s.predicted.animal[keep], s.predicted.probabilities[keep]
            )
        s.user = UserAttribution(s.user.animal[keep], s.user.edit_time_s[keep])
        return self._record(before, None)

    def set_bounds(self, index: int, start_sample: int, stop_sample: int) -> CallsEdit:
        """Move the bounds of call ``index``; its prediction is dropped (the audio changed;
        localize it again), its user attribution kept. Saves (undoable)."""
        index = self._check_index(index)
        start, stop = int(start_sample), int(stop_sample)
        self._check_bounds(start, stop, ignore=index)
        before = self._snapshot()
        s = self.session
        s.calls.start_sample[index] = start
        s.calls.stop_sample[index] = stop
        if s.predictions is not None:
            empty = Predictions.empty(1, s.predictions.n_members)
            for k in _PREDICTION_FIELDS:
                getattr(s.predictions, k)[index] = getattr(empty, k)[0]
        if s.predicted is not None:
            s.predicted.animal[index] = UNASSIGNED
            s.predicted.probabilities[index] = np.nan
        return self._record(before, index)

    # -- calls and predictions ----------------------------------------------------------
    def add_calls(self, start_samples, stop_samples) -> int:
        """Append calls that overlap no existing call; saves (one undoable edit); returns
        how many were added."""
        s = self.session
        starts = np.asarray(start_samples, np.int64).reshape(-1)
        stops = np.asarray(stop_samples, np.int64).reshape(-1)
        old_start, old_stop = s.calls.start_sample, s.calls.stop_sample
        keep = np.array(
            [
                not np.any((old_start < b) & (old_stop > a))
                for a, b in zip(starts, stops, strict=True)
            ],
            dtype=bool,
        )
        if not keep.any():
            return 0
        before = self._snapshot()
        self._append_calls(starts[keep], stops[keep])
        self._record(before, None)
        return int(keep.sum())

    def _append_calls(self, starts: np.ndarray, stops: np.ndarray) -> None:
        """Append calls with no prediction and no review (in memory)."""
        s = self.session
        n_new = len(starts)
        first_id = int(s.calls.call_id.max()) + 1 if s.n_calls else 0
        s.calls = CallTable(
            np.concatenate([s.calls.call_id, first_id + np.arange(n_new)]),
            np.concatenate([s.calls.start_sample, starts]),
            np.concatenate([s.calls.stop_sample, stops]),
        )
        if s.predictions is not None:
            p, empty = s.predictions, Predictions.empty(n_new, s.predictions.n_members)
            s.predictions = Predictions(
                *(np.concatenate([getattr(p, k), getattr(empty, k)]) for k in _PREDICTION_FIELDS),
                model_version=p.model_version,
            )
        if s.predicted is not None:
            n_animals = s.predicted.probabilities.shape[1]
            s.predicted = PredictedAttribution(
                np.concatenate([s.predicted.animal, np.full(n_new, UNASSIGNED)]),
                np.concatenate([s.predicted.probabilities, np.full((n_new, n_animals), np.nan)]),
            )
        s.user = UserAttribution(
            np.concatenate([s.user.animal, np.full(n_new, NOT_REVIEWED)]),
            np.concatenate([s.user.edit_time_s, np.full(n_new, np.nan)]),
        )

    def apply_localization(self, batch) -> None:
        """Store a batch of predictions and predicted attributions (in memory; call
        :meth:`save` after the last batch)."""
        s = self.session
        idx = np.asarray(batch.indices, np.int64)
        n_members = batch.means_mm.shape[1]
        if s.predictions is None or s.predictions.n_members != n_members:
            s.predictions = Predictions.empty(s.n_calls, n_members)
        p = s.predictions
        p.point_mm[idx] = batch.point_mm
        p.member_means_mm[idx] = batch.means_mm
        p.member_chol_mm[idx] = batch.chol_mm
        p.set_area_mm2[idx] = batch.set_area_mm2
        p.model_version = batch.model_version
        n_animals = len(s.animal_names)
        if s.predicted is None:
            s.predicted = PredictedAttribution(
                np.full(s.n_calls, UNASSIGNED), np.full((s.n_calls, n_animals), np.nan)
            )
        s.predicted.animal[idx] = batch.animal
        s.predicted.probabilities[idx] = batch.probabilities

    # -- derived views ----------------------------------------------------------------
    def localized(self) -> np.ndarray:
        """(n,) bool: the call has a prediction."""
        pred = self.session.predictions
        if pred is None:
            return np.zeros(self.n_calls, bool)
        return np.isfinite(pred.point_mm).all(axis=1)

    def predicted_animal(self) -> np.ndarray:
        """(n,) predicted code (UNASSIGNED where nothing was predicted)."""
        predicted = self.session.predicted
        if predicted is None:
            return np.full(self.n_calls, UNASSIGNED, np.int64)
        return predicted.animal

    def states(self) -> np.ndarray:
        """(n,) state of each call, one of :data:`napari_gerbil._napari._table.STATES`."""
        user = self.session.user
        predicted = self.predicted_animal()
        localized = self.localized()
        out = np.empty(self.n_calls, dtype=object)
        out[:] = "predicted"
        out[predicted == UNASSIGNED] = "unassigned"
        out[predicted == AMBIGUOUS] = "ambiguous"
        out[~localized & ~user.reviewed] = "not localized"
        out[user.reviewed & (user.animal == predicted)] = "confirmed"
        out[user.reviewed & (user.animal != predicted)] = "corrected"
        return out

    def edited(self) -> np.ndarray:
        """(n,) bool: the user decided on the call (confirmed or corrected)."""
        return self.session.user.reviewed.copy()

    def top_probability(self) -> np.ndarray:
        """(n,) highest animal probability (NaN where unknown)."""
        predicted = self.session.predicted
        if predicted is None or predicted.probabilities.shape[1] == 0:
            return np.full(self.n_calls, np.nan)
        probs = predicted.probabilities
        top = np.full(self.n_calls, np.nan)
        finite = np.isfinite(probs).any(axis=1)
        top[finite] = np.nanmax(probs[finite], axis=1)
        return top

    def set_area_mm2(self) -> np.ndarray:
        """(n,) area of the 95% set (NaN where not localized)."""
        pred = self.session.predictions
        return np.full(self.n_calls, np.nan) if pred is None else pred.set_area_mm2

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
        """Call indices, most uncertain first: not yet reviewed, ambiguous first, then by
        the entropy of the animal probabilities and the area of the 95% set."""
        predicted = self.predicted_animal()
        probs = (
            self.session.predicted.probabilities
            if self.session.predicted is not None
            else np.full((self.n_calls, 0), np.nan)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.nan_to_num(probs, nan=0.0)
            total = p.sum(axis=1, keepdims=True)
            p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.0)
            entropy = -(np.where(p > 0, p * np.log(p), 0.0)).sum(axis=1)
        area = np.nan_to_num(self.set_area_mm2(), nan=-1.0)
        candidates = np.flatnonzero(~self.session.user.reviewed & self.localized())
        # lexsort: last key is primary
        keys = (
            -area[candidates],
            -entropy[candidates],
            (predicted[candidates] != AMBIGUOUS).astype(int),
        )
        return candidates[np.lexsort(keys)]

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


def animal_positions_mm(session: Session, poses, indices, node: int | str = 0) -> np.ndarray:
    """(b, n_animals, 2) arena position (mm) of each animal's ``node`` at calls ``indices``,
    by :func:`napari_gerbil.attribute.animal_positions_at_calls` (frame of the call's
    start). NaN where the animal is not tracked, or everywhere without poses."""
    from napari_gerbil.attribute import animal_positions_at_calls

    indices = np.asarray(indices, np.int64).reshape(-1)
    if poses is None or session.arena.arena_to_pixels is None:
        return np.full((len(indices), len(session.animal_names), 2), np.nan)
    return animal_positions_at_calls(session, poses, node)[indices]


#: Every HELDOUT_EVERY-th reviewed call (by call id) is kept out of exports, to measure
#: the error of old and new models on calls neither was trained on.
HELDOUT_EVERY = 5


def reviewed_calls(model: ReviewModel, poses, node: int | str = 0):
    """Reviewed calls attributed to an animal whose pose is known at call time.

    Returns
    -------
    train, heldout : ndarray of call rows
    positions_mm : dict row -> (2,) position of the attributed animal's node
    """
    s = model.session
    user = s.user.animal
    rows = np.flatnonzero(s.user.reviewed & (user >= 0))
    pos = animal_positions_mm(s, poses, rows, node)
    chosen = pos[np.arange(len(rows)), user[rows]] if len(rows) else np.zeros((0, 2))
    known = np.isfinite(chosen).all(axis=1)
    rows, chosen = rows[known], chosen[known]
    order = np.argsort(s.calls.call_id[rows], kind="stable")
    rows, chosen = rows[order], chosen[order]
    held = (np.arange(len(rows)) % HELDOUT_EVERY) == HELDOUT_EVERY - 1
    positions = {int(r): c for r, c in zip(rows, chosen, strict=True)}
    return rows[~held], rows[held], positions


def export_reviewed(
    model: ReviewModel,
    audio,
    poses,
    out_path: str | os.PathLike,
    training_set: str | os.PathLike | None = None,
    node: int | str = 0,
) -> tuple[Path, int]:
    """Write the confirmed/corrected calls as a VCL training file.

    Locations are the attributed animal's ``node`` at the call's middle frame (mm).
    Held-out calls (see :data:`HELDOUT_EVERY`) are left out. With ``training_set`` the
    result is that set merged with the new calls (node names and location shape taken
    from it). Returns (path, number of new calls).
    """
    from napari_gerbil.io.vcl import VCLDataset, merge_vcl, write_vcl

    out_path = Path(out_path)
    s = model.session
    train, _, positions = reviewed_calls(model, poses, node)
    if not len(train):
        raise InvalidInputError(
            model.path,
            "attribution/user",
            "reviewed calls attributed to tracked animals",
            "none",
            hint="Confirm or correct some calls first (keys 1-9, a).",
        )
    clips = [audio.read(int(s.calls.start_sample[i]), int(s.calls.stop_sample[i])) for i in train]
    xy = np.array([positions[int(i)] for i in train])
    node_names = [poses.node_names[poses.node_index(node)]]
    locations = xy[:, None, :]
    if training_set is not None:
        with VCLDataset(training_set) as base:
            if base.locations_mm is None or base.is_multi_animal:
                raise InvalidInputError(
                    training_set, "/locations", "single-animal labelled calls", "other"
                )
            node_names = base.node_names
            n_nodes, dims = base.locations_mm.shape[1:]
        locations = np.zeros((len(train), n_nodes, dims))
        locations[:, :, :2] = xy[:, None, :]  # z (if any) = floor level
    provenance = {
        "source": "napari-gerbil review export",
        "session": str(model.path),
        "call_ids": s.calls.call_id[train].tolist(),
        "node": str(node),
        "exported_at_unix_s": time.time(),
    }
    kwargs = dict(
        node_names=node_names,
        sample_rate_hz=s.audio.sample_rate_hz,
        arena_dims_mm=s.arena.dims_mm,
        mic_positions_mm=s.arena.mic_positions_mm,
        scenario="reviewed",
        provenance=provenance,
    )
    if training_set is None:
        write_vcl(out_path, clips, locations, **kwargs)
    else:
        new_calls = out_path.with_name(out_path.stem + ".new_calls.h5")
        write_vcl(new_calls, clips, locations, **kwargs)
        merge_vcl([training_set, new_calls], out_path, provenance=provenance)
    return out_path, len(train)


def heldout_errors(model: ReviewModel, old_ensemble, new_ensemble, audio, poses, node=0):
    """Median distance (mm) between each ensemble's point estimate and the attributed
    animal's position on the held-out reviewed calls (all reviewed calls if none held out).
    """
    s = model.session
    train, held, positions = reviewed_calls(model, poses, node)
    rows = held if len(held) else train
    out = {"n_heldout": int(len(rows)), "in_sample": not len(held)}
    if not len(rows):
        return {**out, "old_median_mm": float("nan"), "new_median_mm": float("nan")}
    clips = [audio.read(int(s.calls.start_sample[i]), int(s.calls.stop_sample[i])) for i in rows]
    truth = np.array([positions[int(i)] for i in rows])
    for name, ensemble in (("old", old_ensemble), ("new", new_ensemble)):
        point = ensemble.predict(clips).point_mm
        out[f"{name}_median_mm"] = float(np.median(np.linalg.norm(point - truth, axis=1)))
    return out
