"""What the review dock changes in napari's own window while it is active.

- :class:`ViewRefit`: the video view is fitted again when the main window is resized
  (debounced: once the resizing has paused), unless the user has zoomed or panned since
  the last fit.
- :class:`ReviewHelp`: napari's status-bar hints ("use <2> for transform", "<R> for add
  rectangles") are replaced by the review keys, which are what those keys do here.

Both use public APIs only: Qt's event filter on the main window (the dock's
``window()``) and napari's ``viewer.help`` with its event.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QEvent, QObject, QTimer

from napari_gerbil._napari._keys import keys_hint

#: Pause (ms) after the last resize event before the view is fitted.
REFIT_DELAY_MS = 150


def camera_of(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, else ``viewer.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


class ViewRefit(QObject):
    """Fit ``viewer``'s view (``viewer.reset_view``) now and after ``window`` resizes.

    Parameters
    ----------
    viewer
        The napari viewer.
    window
        The napari main window (a ``QMainWindow``, the dock's ``window()``).
    active
        Whether a refit is wanted now (a session is open, the dock is not closed).
    """

    def __init__(self, viewer, window: QObject, active: Callable[[], bool]) -> None:
        super().__init__()  # not a child of the window: it must not keep the viewer alive
        self._viewer = weakref.ref(viewer)  # the window outlives neither
        self._window = weakref.ref(window)
        self.active = active
        self._fitted: tuple[float, np.ndarray] | None = None  # camera after the last fit
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFIT_DELAY_MS)
        self._timer.timeout.connect(self._on_resized)
        window.installEventFilter(self)

    def _camera(self) -> tuple[float, np.ndarray]:
        camera = camera_of(self._viewer())
        return float(camera.zoom), np.asarray(camera.center, float)

    def fit(self) -> None:
        """Fit the view to the layers now."""
        self._viewer().reset_view()
        self._fitted = self._camera()

    def moved_by_user(self) -> bool:
        """The view was zoomed or panned since the last fit."""
        if self._fitted is None:
            return False
        zoom, center = self._camera()
        return not (
            np.isclose(zoom, self._fitted[0], rtol=1e-6)
            and np.allclose(center, self._fitted[1], rtol=1e-6, atol=1e-6)
        )

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if watched is self._window() and event.type() == QEvent.Type.Resize:
            self._timer.start()  # restarted by every resize event: fits once at the end
        return False

    def _on_resized(self) -> None:
        if self.active() and not self.moved_by_user():
            self.fit()

    def close(self) -> None:
        """Stop refitting."""
        self._timer.stop()
        window = self._window()
        if window is not None:
            window.removeEventFilter(self)


class ReviewHelp:
    """Show the review keys in napari's status-bar hint (``viewer.help``) while on.

    napari rewrites ``viewer.help`` from the active layer (on a selection change, a mode
    change, a mouse move); while on, every such rewrite is replaced by the review keys.
    Off (the dock hidden or closed), the active layer's own hint is back.
    """

    def __init__(self, viewer) -> None:
        self._viewer = weakref.ref(viewer)
        self.text = keys_hint()
        self.on = False
        viewer.events.help.connect(self._on_help, position="last")

    def set_on(self, on: bool) -> None:
        """Show the review keys (True) or napari's hint of the active layer (False)."""
        if on == self.on:
            return
        self.on = on
        viewer = self._viewer()
        if viewer is None:
            return
        if on:
            viewer.help = self.text
        elif viewer.help == self.text:
            active = viewer.layers.selection.active
            viewer.help = active.help if active is not None else ""

    def _on_help(self, event) -> None:
        viewer = self._viewer()
        if self.on and viewer is not None and event.value != self.text:
            viewer.help = self.text

    def close(self) -> None:
        """Give the hint back to napari for good."""
        self.set_on(False)
        viewer = self._viewer()
        if viewer is not None:
            viewer.events.help.disconnect(self._on_help)
