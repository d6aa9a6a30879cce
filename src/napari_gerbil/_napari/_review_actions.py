"""What the review dock does when the user acts.

Select, attribute, undo, edit calls, zoom, listen. The buttons, the keys and the clicks all
call these methods (a mixin of :class:`~._widget.ReviewWidget`); each edit is saved by the
core review model at once and said in the status line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_gerbil._napari._evidence import add_steered_response, call_evidence, plural
from napari_gerbil._napari._layers import arena_to_canvas
from napari_gerbil._napari._table import table_rows
from napari_gerbil.errors import GerbilError
from napari_gerbil.review import code_name


class ReviewActions:
    """The review actions of the dock (needs the dock's attributes, see ``_widget``)."""

    # provided by the dock (:class:`~._widget.ReviewWidget`)
    review: Any
    current: int | None
    audio: Any
    poses: Any
    viewer: Any
    table: Any
    spectrogram: Any
    overlays: Any
    calls_section: Any
    session_section: Any
    evidence_section: Any
    model_section: Any
    jobs: Any
    notify: Callable[[str], None]
    error: Callable[[BaseException], None]
    update_overlays: Callable[..., None]
    refresh_calls: Callable[[], None]
    current_frame: Callable[[], int]
    _has_frames: Callable[[], bool]
    _spectrogram_calls: Callable[[], None]

    # -- selection and navigation -------------------------------------------------------
    def select_call(self, index: int) -> None:
        """Make call ``index`` current.

        Jump to its frame, centre the spectrogram, show its set filled and labelled.
        """
        if self.review is None:
            return
        self.current = int(index)
        start_s, stop_s = self.review.call_time_s(self.current)
        self.calls_section.show_bounds((start_s, stop_s))
        self.table.select_call(self.current)
        self._spectrogram_calls()
        # centre the spectrogram first: the frame step below then only moves its playhead
        self.spectrogram.set_time((start_s + stop_s) / 2, center=True)
        if self._has_frames():
            self.viewer.dims.set_current_step(0, self.review.call_frame(self.current))
        self.update_overlays()  # drawn once: the step above drew them unless on this frame
        self.show_evidence()

    def assign_probability(self) -> float:
        """The rule's probability: the chosen ensemble's calibration, else the default."""
        from napari_gerbil.attribute import AttributionCalibration, load_calibration

        text = self.model_section.model_dir.text().strip()
        try:
            return load_calibration(text or None).assign_probability
        except (GerbilError, OSError, ValueError):
            return AttributionCalibration().assign_probability

    def show_evidence(self) -> None:
        """Show the selected call's per-animal evidence in the dock and on the video."""
        if self.review is None or self.current is None:
            self.evidence_section.show_evidence(None)
            self.overlays.draw_evidence(None, None)
            return
        index, session = self.current, self.review.session
        localized = bool(self.review.localized()[index])
        cs = self.overlays.confidence_set(session, index) if localized else None
        evidence = call_evidence(self.review, self.poses, index, cs, self.assign_probability())
        if localized:
            # on failure what the method saw stays unsaid; the stored probabilities show
            with contextlib.suppress(GerbilError, ValueError, OSError):
                add_steered_response(evidence, self.review, self.audio, index)
        self.evidence_section.show_evidence(evidence)
        self.overlays.draw_evidence(session, evidence)

    def step_call(self, direction: int) -> None:
        """Select the next (+1) or previous (-1) call in the table's order and filter.

        From the selected call, also after an edit took it out of the filter.
        """
        if self.review is None:
            return
        index = self.table.neighbour(self.current, direction)
        if index is None:
            self.notify("no calls shown")
            return
        self.select_call(index)

    def next_uncertain(self) -> None:
        """Select the most uncertain call not reviewed yet."""
        if self.review is None:
            return
        index = self.review.next_uncertain()
        if index is None:
            self.notify("every localized call is reviewed")
            return
        self.select_call(index)

    # -- attributions -------------------------------------------------------------------
    def describe(self, index: int) -> str:
        """'call 3 -> gerbil A, corrected' for the status line."""
        session = self.review.session
        animal = int(session.effective_attribution()[index])
        state = self.review.states()[index]
        call_id = int(session.calls.call_id[index])
        return f"call {call_id} → {code_name(animal, session.animal_names)}, {state}"

    def _selected(self) -> int | None:
        if self.review is None:
            return None
        if self.current is None:
            self.notify("select a call first (click a row, or n)")
        return self.current

    def _after_edit(self, index: int | None) -> None:
        if index is None:
            return
        self.table.update_calls([index], table_rows(self.review))
        self.update_overlays()  # its set is restyled (the polygons are kept)
        if index == self.current:
            self.show_evidence()

    def assign_current(self, animal: int) -> None:
        """Attribute the current call to ``animal`` (-1 unassigned); saved at once."""
        index = self._selected()
        if index is None:
            return
        if animal >= len(self.review.session.animal_names):
            self.notify(f"no animal {animal + 1} in this session")
            return
        self.review.assign(index, animal)
        self._after_edit(index)
        self.notify(self.describe(index))

    def accept_current(self) -> None:
        """Confirm the predicted attribution of the current call (localized calls only)."""
        index = self._selected()
        if index is None:
            return
        if not self.review.localized()[index]:
            call_id = int(self.review.session.calls.call_id[index])
            self.notify(
                f"call {call_id} is not localized: nothing to accept "
                "(localize it, or press 0 for unassigned)"
            )
            return
        self.review.accept(index)
        self._after_edit(index)
        self.notify(self.describe(index))

    def undo(self) -> None:
        """Undo the last edit (saved at once)."""
        if self.review is not None:
            self._undo_redo(self.review.undo, "undone")

    def redo(self) -> None:
        """Redo the last undone edit (saved at once)."""
        if self.review is not None:
            self._undo_redo(self.review.redo, "redone")

    def _undo_redo(self, action, verb: str) -> None:
        version = self.review.calls_version
        ids_before = set(self.review.session.calls.call_id.tolist())
        index = action()
        if self.review.calls_version == version:
            if index is None:
                self.notify(f"nothing to {verb.removesuffix('ne')}")
                return
            self._after_edit(index)
            self.notify(f"{verb}: {self.describe(index)}")
            return
        ids = self.review.session.calls.call_id
        if index is None and set(ids.tolist()) == ids_before:  # a localization: stay
            index = self.current
        elif index is None:  # a delete undone (or an add redone): select the call back
            back = np.flatnonzero(~np.isin(ids, list(ids_before)))
            index = int(back[0]) if back.size else None
        self._after_calls_changed(index)
        self.notify(f"{verb}: {self.review.n_calls} calls")

    # -- the calls themselves: add, delete, bounds --------------------------------------
    def _samples(self, time_s: float) -> int:
        return int(round(time_s * self.review.session.audio.sample_rate_hz))

    def _after_calls_changed(self, select: int | None) -> None:
        """Calls were added, deleted or re-bounded: indices may have moved."""
        self.overlays.forget()
        self.current = self.table.pinned = None
        self.calls_section.show_bounds(None)
        self.refresh_calls()
        if select is not None and select < self.review.n_calls:
            self.select_call(select)
        else:
            self.update_overlays()
            self.show_evidence()

    def _refused(self, exc: GerbilError, start_s: float, stop_s: float) -> None:
        rate = self.review.session.audio.sample_rate_hz
        calls = self.review.session.calls
        start, stop = self._samples(start_s), self._samples(stop_s)
        overlap = np.flatnonzero((calls.start_sample < stop) & (calls.stop_sample > start))
        if overlap.size:  # say it in seconds, as the user sees the calls
            k = int(overlap[0])
            self.notify(
                f"{start_s:.3f}–{stop_s:.3f} s overlaps call {int(calls.call_id[k])} "
                f"({calls.start_sample[k] / rate:.3f}–{calls.stop_sample[k] / rate:.3f} s): "
                "calls may not overlap"
            )
        else:
            self.error(exc)

    def add_call_s(self, start_s: float, stop_s: float) -> int | None:
        """Add the call [start_s, stop_s), e.g. dragged on the spectrogram, and select it.

        Returns its index; None (and a message) if it overlaps a call.
        """
        if self.review is None:
            return None
        try:
            index = self.review.add_call(self._samples(start_s), self._samples(stop_s))
        except GerbilError as exc:
            self._refused(exc, start_s, stop_s)
            return None
        self._after_calls_changed(index)
        self.notify(f"added call {int(self.review.session.calls.call_id[index])}")
        return index

    def add_calls(self, starts, stops) -> int:
        """Add detected or imported calls (those overlapping a call are skipped)."""
        if self.review is None:
            return 0
        added = self.review.add_calls(starts, stops)
        self.overlays.forget()
        self.refresh_calls()
        self.update_overlays()
        self.session_section.show_session(self.review, self.audio)
        skipped = len(starts) - added
        self.notify(f"added {plural(added, 'call')} ({skipped} overlapped existing ones)")
        return added

    def delete_current(self) -> None:
        """Delete the selected call (saved at once; undo restores it)."""
        index = self._selected()
        if index is None:
            return
        call_id = int(self.review.session.calls.call_id[index])
        self.review.delete_call(index)
        n = self.review.n_calls
        self._after_calls_changed(min(index, n - 1) if n else None)
        self.notify(f"deleted call {call_id} (u to undo)")

    def set_bounds_s(self, index: int, start_s: float, stop_s: float) -> bool:
        """Move the bounds of call ``index`` (its prediction is dropped: localize again)."""
        if self.review is None:
            return False
        if not start_s < stop_s:
            self.notify(f"start ({start_s:.4f} s) must be before stop ({stop_s:.4f} s)")
            return False
        try:
            self.review.set_bounds(index, self._samples(start_s), self._samples(stop_s))
        except GerbilError as exc:
            self._refused(exc, start_s, stop_s)
            return False
        self._after_calls_changed(index)
        call_id = int(self.review.session.calls.call_id[index])
        self.notify(f"call {call_id} now {start_s:.4f}–{stop_s:.4f} s (localize it again)")
        return True

    # -- localization results (from the worker, applied in the GUI thread) ---------------
    def apply_localization(self, batch, localized: list[int]) -> None:
        """Store one batch of predictions (a worker's yield); none after *Cancel*."""
        if self.review is None or self.jobs.cancel_token.cancelled:
            return
        self.review.apply_localization(batch)
        localized.extend(int(i) for i in batch.indices)
        self.overlays.forget(batch.indices)

    def after_localization(self, localized: list[int], before: Any = None) -> None:
        """Save once (one undoable edit, ``before``: the snapshot); refresh rows and drawing."""
        if self.review is None or not localized:
            return
        was = self.review.localized()
        if before is None:
            self.review.save()
        else:
            old = before[0]  # the predictions before the run
            was = np.zeros_like(was) if old is None else np.isfinite(old.point_mm).all(axis=1)
            self.review.record_localization(before, localized)
        changed = set(localized) | set(np.flatnonzero(was != self.review.localized()).tolist())
        self.table.update_calls(sorted(changed), table_rows(self.review))
        self.overlays.forget(sorted(changed))
        self.update_overlays()
        self.show_evidence()
        self.notify(f"localized {plural(len(localized), 'call')} (u to undo)")

    # -- view and sound -----------------------------------------------------------------
    def zoom_to_call(self) -> None:
        """Fit the view to the selected call's 95% set and the animals at its frame."""
        from napari_gerbil._napari._layers import pose_points_at

        index = self._selected()
        if index is None:
            return
        session = self.review.session
        points: list[np.ndarray] = [np.zeros((0, 2))]
        if self.review.localized()[index]:
            points += self.overlays.set_polygons_px(session, index)
            points.append(arena_to_canvas(session.arena, session.predictions.point_mm[index]))
        if self.poses is not None:
            points.append(pose_points_at(self.poses, self.current_frame())[0])
        every = np.concatenate(points)
        if not len(every):
            every = arena_to_canvas(session.arena, session.arena.corners_mm())
        self.overlays.zoom_to(every)

    def play_current(self) -> None:
        """Play the selected call slowed down or heterodyned (the *Listen* choice)."""
        from napari_gerbil._napari._playback import play
        from napari_gerbil.signal.playback import audible_buffer

        index = self._selected()
        if index is None:
            return
        calls = self.review.session.calls
        audio = self.audio.read(int(calls.start_sample[index]), int(calls.stop_sample[index]))
        mode, factor = self.calls_section.playback()
        channel = self.spectrogram.selected_channel()
        buffer = audible_buffer(
            audio, self.audio.sample_rate_hz, mode, factor=factor, channel=channel
        )
        call_id = int(calls.call_id[index])
        self.notify(play(buffer, f"call {call_id}"))
