"""The review state: :class:`ReviewModel`, its edits and their undo / redo log.

Every edit is written to the session file at once, atomically
(:func:`napari_gerbil.io.session.save_session`): nothing is lost on a crash.
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
from napari_gerbil.io.session import NOT_REVIEWED, Session, load_session, save_session
from napari_gerbil.review.queries import (
    call_states,
    code_name,
    predicted_animal,
    set_area_mm2,
    top_probability,
    uncertainty_order,
)


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
