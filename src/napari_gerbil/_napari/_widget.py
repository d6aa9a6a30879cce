"""The review dock: a container of sections that share one session under review.

Plugins > Review calls (Napari-gerbil). The dock owns the session (a core
``ReviewModel``), the selected call and the connections to the viewer; its sections
(:mod:`._sections`, :mod:`._evidence_section`, :mod:`._calls_section`,
:mod:`._finetune_section`, put together by :mod:`._dock_layout`) hold the controls,
:mod:`._overlays` draws, :mod:`._keys` binds the review keys, :mod:`._view_hooks` refits the
view on a window resize and puts the review keys in napari's status-bar hint. Every edit is
saved to the session file at once. Closing the dock (its title bar's close button)
closes its spectrogram dock and disconnects every event, key and callback; opening it
again gives one new live copy. Hiding it (Plugins > Review calls, its hide button) hides
the spectrogram dock too; while hidden its keys do nothing and do not reach napari.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QVBoxLayout, QWidget

from napari_gerbil._napari._controls import report_errors
from napari_gerbil._napari._dock_layout import build_sections, sections_area
from napari_gerbil._napari._jobs import JobPanel
from napari_gerbil._napari._keys import ReviewShortcuts, review_key_handlers
from napari_gerbil._napari._layers import SESSION_KEY, pose_points_at, track_points
from napari_gerbil._napari._overlays import ReviewOverlays
from napari_gerbil._napari._reader import prefer_this_reader
from napari_gerbil._napari._review_actions import ReviewActions
from napari_gerbil._napari._spectrogram import SpectrogramWidget
from napari_gerbil._napari._view_hooks import ReviewHelp, ViewRefit
from napari_gerbil.errors import GerbilError
from napari_gerbil.review import ReviewModel

#: Name of the spectrogram dock.
SPECTROGRAM_DOCK = "Spectrogram (napari-gerbil)"
#: The live review dock of each viewer (a new one retires the old one).
_LIVE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _dock_of(widget: QWidget) -> QDockWidget | None:
    """The dock widget holding ``widget`` (None while it is not docked)."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


class ReviewWidget(ReviewActions, QWidget):
    """Dock widget driving the review loop of one session (actions: :class:`ReviewActions`)."""

    def __init__(self, napari_viewer, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("gerbil_review_widget")
        prefer_this_reader()  # File > Open of a session: this plugin, no chooser
        self.viewer = napari_viewer
        self.review: ReviewModel | None = None
        self.audio: Any = None  # AudioSource of the open session
        self.poses: Any = None  # Poses of the open session
        self.current = None
        self.closed = False
        self._docked = False
        self._view_fitted = False
        self._spectrogram_hidden = False  # hidden with this dock: shown with it again
        previous = _LIVE.get(id(napari_viewer))
        if previous is not None and previous.viewer is napari_viewer and not previous.closed:
            previous.close_review(remove_dock=True)
        _LIVE[id(napari_viewer)] = self
        self.overlays = ReviewOverlays(napari_viewer)
        self.jobs = JobPanel(self.error)
        self._build_sections()
        self.spectrogram = SpectrogramWidget()
        self.spectrogram.seek_requested.connect(report_errors(self.seek_time))
        self.spectrogram.call_drawn.connect(report_errors(self.add_call_s))
        self.spectrogram.bounds_dragged.connect(report_errors(self.set_bounds_s))
        self.viewer.window.add_dock_widget(self.spectrogram, name=SPECTROGRAM_DOCK, area="bottom")
        window = self.spectrogram.window() or self  # the napari main window (public Qt API)
        if isinstance(window, QMainWindow):  # the right docks (this one) run the full height
            window.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.shortcuts = ReviewShortcuts(window, review_key_handlers(self))
        self.shortcuts.set_enabled(False)
        self.refit = ViewRefit(napari_viewer, window, lambda: self.review is not None)
        self.review_help = ReviewHelp(napari_viewer)  # the review keys in the status bar
        self._connections = [
            (self.viewer.dims.events.current_step, self._on_step),
            (self.viewer.layers.events.inserted, self._on_layer_inserted),
        ]
        for emitter, callback in self._connections:
            emitter.connect(callback)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self._adopt_session_from_layers()

    # -- layout -----------------------------------------------------------------------
    def _build_sections(self) -> None:
        self.sections = build_sections(self)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(sections_area(self.sections), 1)
        outer.addWidget(self.jobs)  # below the sections: visible whatever is folded

    # -- messages ---------------------------------------------------------------------
    def notify(self, message: str) -> None:
        """Say what happened: in the dock, the status bar and a notification."""
        from napari.utils.notifications import show_info

        self.calls_section.say(message)
        self.viewer.status = f"napari-gerbil: {message}"
        show_info(message)

    def error(self, exc: BaseException) -> None:
        """Show an error the user can act on."""
        from napari.utils.notifications import show_error

        self.calls_section.say(f"error: {exc}")
        show_error(f"napari-gerbil: {exc}")

    def ready_for_job(self) -> bool:
        """A session is open and no job runs (else say so)."""
        if self.review is None:
            self.notify("open a session first")
            return False
        if self.jobs.busy():
            self.notify("a job is running; cancel it first")
            return False
        return True

    # -- lifetime ---------------------------------------------------------------------
    def event(self, event) -> bool:  # noqa: D102 (Qt's)
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked:  # napari's close button took the widget out of its dock
                self.close_review()
        return super().event(event)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._sync_shortcuts()
        spectrogram = _dock_of(self.spectrogram)
        if self._spectrogram_hidden and spectrogram is not None and not self.closed:
            spectrogram.show()  # shown again with the review dock
        self._spectrogram_hidden = False
        if not self._view_fitted and self.review is not None:
            self._view_fitted = True  # fit once the dock has taken its width
            QTimer.singleShot(0, self._fit_view)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().hideEvent(event)
        dock, spectrogram = _dock_of(self), _dock_of(self.spectrogram)
        # hidden (Plugins > Review calls, the hide button), not a tab behind another one
        shown = spectrogram is not None and not spectrogram.isHidden()
        if dock is not None and dock.isHidden() and shown and not self.closed:
            spectrogram.hide()
            self._spectrogram_hidden = True
        if not self.closed:
            self.review_help.set_on(False)

    def _sync_shortcuts(self) -> None:
        # hidden, the keys stay claimed but do nothing (see _when_shown): no napari
        # layer mode switched by a review key the user thought live
        if not self.closed:
            self.shortcuts.set_enabled(self.review is not None)
            self.review_help.set_on(self.review is not None and self.isVisible())

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.close_review()
        super().closeEvent(event)

    def close_review(self, remove_dock: bool = False) -> None:
        """Stop reacting: the job, keys, viewer events and callbacks, the spectrogram dock.

        The session's layers stay (the video remains viewable); nothing is written after
        this. ``remove_dock``: also take this widget out of its dock (a newer copy).
        """
        if self.closed:
            return
        self.closed = True
        self.jobs.shutdown()
        self.shortcuts.close()
        self.refit.close()
        self.review_help.close()
        for emitter, callback in self._connections:
            emitter.disconnect(callback)
        self._connections = []
        if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
        for signal in (
            self.spectrogram.seek_requested,
            self.spectrogram.call_drawn,
            self.spectrogram.bounds_dragged,
        ):
            signal.disconnect()
        docks = [self.spectrogram] + ([self] if remove_dock and self._docked else [])
        for widget in docks:
            with contextlib.suppress(LookupError, RuntimeError):
                self.viewer.window.remove_dock_widget(widget)
        self.review = None
        self.current = None
        if _LIVE.get(id(self.viewer)) is self:
            del _LIVE[id(self.viewer)]

    # -- session ----------------------------------------------------------------------
    def _adopt_session_from_layers(self) -> None:
        if self.closed or self.review is not None:
            return
        for layer in self.viewer.layers:
            path = layer.metadata.get(SESSION_KEY)
            if path:
                self.open_session(path)
                return

    def _on_layer_inserted(self, event) -> None:
        path = event.value.metadata.get(SESSION_KEY)
        if path and (self.review is None or path != str(self.review.path)):
            # deferred: the reader is still adding the session's other layers
            QTimer.singleShot(0, lambda: self._switch_to(path))

    def _switch_to(self, path: str) -> None:
        if not self.closed and (self.review is None or path != str(self.review.path)):
            self.open_session(path)

    def open_session(self, path) -> None:
        """Show the session in ``path``.

        Video, tracks, spectrogram, calls; replaces the session open before (its layers
        removed), and selects the first call.
        """
        from napari.layers import Layer

        from napari_gerbil._napari._layers import session_layer_data
        from napari_gerbil.io.tracks import load_poses

        if self.closed:
            return
        try:
            review = ReviewModel.open(path)
        except (GerbilError, OSError) as exc:
            self.error(exc)
            return
        if self.review is not None and review.path != self.review.path:
            self.overlays.remove_layers()  # a second session replaces the first
            for layer in self.overlays.session_layers(str(review.path)):
                layer.name = re.sub(r" \[\d+\]$", "", layer.name)  # 'video [1]': added beside
        self.review, self.current = review, None
        session = review.session
        self.audio = session.audio.open()
        self.poses = load_poses(session.tracks.path) if session.tracks is not None else None
        points = track_points(self.poses) if self.poses is not None else None
        self.overlays.session_path = str(review.path)
        for data, kwargs, layer_type in session_layer_data(session):
            if self.overlays.layer(kwargs["metadata"]["napari_gerbil_role"]) is None:
                self.viewer.add_layer(Layer.create(data, kwargs, layer_type))
        self.overlays.attach(session, self.poses, points)
        video = self.overlays.layer("video")
        if video is not None:
            self.viewer.layers.selection.active = video
        self.session_section.show_session(review, self.audio)
        animals = session.animal_names if session.tracks is not None else []
        self.evidence_section.set_animals(animals)
        self.table.set_columns(animals)
        self.calls_section.show_bounds(None)
        self.spectrogram.set_source(self.audio)
        self.refresh_calls()
        self._sync_shortcuts()
        if session.n_calls == 0:  # a new session: its calls come from detection/import
            self.sections["detect"].set_expanded(True)
        self._fit_view()
        order = self.table.visible_calls()
        if order:
            self.select_call(min(order, key=lambda i: session.calls.start_sample[i]))
        else:
            self._on_step()

    def _fit_view(self) -> None:
        if not self.closed:
            self.refit.fit()

    def refresh_calls(self) -> None:
        """Refill the table and the spectrogram's call marks."""
        from napari_gerbil._napari._table import table_rows

        self.table.set_rows(table_rows(self.review))
        self._spectrogram_calls()

    def _spectrogram_calls(self) -> None:
        calls = self.review.session.calls
        rate = self.review.session.audio.sample_rate_hz
        self.spectrogram.set_calls(
            calls.start_sample / rate, calls.stop_sample / rate, selected=self.current
        )

    # -- time -------------------------------------------------------------------------
    def current_frame(self) -> int:
        """Frame shown by the viewer's time slider."""
        return int(self.viewer.dims.current_step[0]) if self.viewer.dims.ndim >= 3 else 0

    def _has_frames(self) -> bool:
        session = self.review.session
        return self.viewer.dims.ndim >= 3 and bool(session.fps or session.frame_times_s is not None)

    def current_time_s(self) -> float:
        """Recording time (s) of the frame shown."""
        if self.review is None:
            return 0.0
        session = self.review.session
        if session.fps is None and session.frame_times_s is None:
            return self.spectrogram.time_s
        return float(session.sample_of_frame(self.current_frame())) / session.audio.sample_rate_hz

    def seek_time(self, time_s: float) -> None:
        """Move the time slider to the frame nearest ``time_s`` (spectrogram click)."""
        if self.review is None:
            return
        session = self.review.session
        if self._has_frames():
            frame = session.frame_of_sample(int(round(time_s * session.audio.sample_rate_hz)))
            self.viewer.dims.set_current_step(0, int(frame))
        else:
            self.spectrogram.set_time(time_s)

    def _on_step(self, event=None) -> None:
        if self.review is None:
            return
        time_s = self.current_time_s()
        self.spectrogram.set_time(time_s)
        self.overlays.update_poses(self.current_frame())
        self.update_overlays(time_s)

    def visible_calls(self, time_s: float) -> np.ndarray:
        """Localized calls within the style's window of ``time_s`` (and the current one)."""
        session = self.review.session
        rate = session.audio.sample_rate_hz
        start_s, stop_s = session.calls.start_sample / rate, session.calls.stop_sample / rate
        w = self.overlays.set_style.window_s
        near = (stop_s >= time_s - w) & (start_s <= time_s + w)
        if self.current is not None:
            near[self.current] = True
        return np.flatnonzero(near & self.review.localized())

    def update_overlays(self, time_s: float | None = None) -> None:
        """Draw the sets and estimates of the calls near ``time_s`` (default: now)."""
        if self.review is None:
            return
        time_s = self.current_time_s() if time_s is None else time_s
        self.overlays.draw(self.review, self.visible_calls(time_s), self.current)

    def _pose_animal_at(self, rc_px: np.ndarray, radius_px: float = 30.0) -> int | None:
        if self.poses is None:
            return None
        points, animal = pose_points_at(self.poses, self.current_frame())
        if not len(points):
            return None
        distance = np.linalg.norm(points - rc_px[None], axis=1)
        nearest = int(np.argmin(distance))
        return int(animal[nearest]) if distance[nearest] <= radius_px else None

    def _on_mouse_drag(self, viewer, event):
        """A click (press + release without moving) on an animal's pose assigns it."""
        if self.review is None or self.current is None or event.button != 1:
            return
        start = np.asarray(event.position[-2:], float)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = True
            yield
        if not moved and not self.closed:
            animal = self._pose_animal_at(start)
            if animal is not None:
                self.assign_current(animal)
