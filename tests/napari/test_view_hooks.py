"""What the dock changes in napari's window: the view refits on resize, the status-bar hint."""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import canvas, open_dock, press
from qtpy.QtCore import QPoint, Qt
from qtpy.QtWidgets import QLabel, QPushButton

from napari_gerbil._napari._keys import keys_hint
from napari_gerbil._napari._layers import arena_to_canvas
from napari_gerbil._napari._view_hooks import camera_of

pytestmark = pytest.mark.gui


@pytest.fixture
def review(make_napari_viewer, session_path, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = open_dock(viewer, qtbot, session_path)
    qtbot.waitUntil(lambda: widget.review is not None, timeout=5000)
    return viewer, widget


def _view_rect(viewer, widget) -> tuple[np.ndarray, np.ndarray]:
    """(centre, half size) of the world rectangle the canvas shows, (row, col)."""
    native = canvas(widget)
    size_px = np.array([native.height(), native.width()], float)
    zoom = camera_of(viewer).zoom
    return np.asarray(camera_of(viewer).center, float)[-2:], size_px / zoom / 2


def _fitted(viewer, widget) -> bool:
    """The whole arena is in view and the layers fill the canvas (napari's 95% fit)."""
    session = widget.review.session
    corners = arena_to_canvas(session.arena, session.arena.corners_mm())
    centre, half = _view_rect(viewer, widget)
    inside = bool(np.all(np.abs(corners - centre) <= half + 1e-6))
    extent = viewer.layers.extent.world[:, -2:]
    fill = np.max((extent[1] - extent[0]) / (2 * half))
    return inside and abs(fill - 0.95) < 0.03


def test_the_video_view_refits_when_the_window_is_resized(review, qtbot):
    viewer, widget = review
    window = widget.window()
    qtbot.waitUntil(lambda: _fitted(viewer, widget), timeout=5000)
    for width, height in ((1366, 768), (1800, 1050), (1366, 768)):
        zoom = camera_of(viewer).zoom
        window.resize(width, height)
        qtbot.waitUntil(lambda w=width: abs(window.width() - w) <= 1, timeout=5000)
        qtbot.waitUntil(  # refitted once the resizing paused: the whole arena in view
            lambda z=zoom: camera_of(viewer).zoom != z and _fitted(viewer, widget), timeout=5000
        )


def test_a_view_the_user_zoomed_is_kept_on_resize(review, qtbot):
    viewer, widget = review
    window = widget.window()
    qtbot.waitUntil(lambda: _fitted(viewer, widget), timeout=5000)
    press(qtbot, canvas(widget), "Z")  # zoom to the call: the user's view now
    qtbot.waitUntil(lambda: widget.refit.moved_by_user(), timeout=5000)
    zoom, centre = camera_of(viewer).zoom, tuple(camera_of(viewer).center)
    with qtbot.waitSignal(widget.refit._timer.timeout, timeout=5000):
        window.resize(1366, 768)
    assert camera_of(viewer).zoom == zoom and tuple(camera_of(viewer).center) == centre


def _status_texts(window) -> list[str]:
    return [label.text() for label in window.statusBar().findChildren(QLabel)]


def test_the_status_bar_hints_the_review_keys_not_napain_modes(review, qtbot):
    viewer, widget = review
    window = widget.window()
    hint = keys_hint()
    qtbot.waitUntil(lambda: viewer.help == hint, timeout=5000)
    target = canvas(widget)
    centre = QPoint(target.width() // 2, target.height() // 2)
    qtbot.mouseMove(target, centre)
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=centre)  # napari redoes its hint
    qtbot.mouseMove(target, centre + QPoint(20, 10))
    for layer in list(viewer.layers):  # every layer type's own hint ("<2> for transform")
        viewer.layers.selection.active = layer
        assert viewer.help == hint, layer.name
    qtbot.waitUntil(lambda: any(hint in text for text in _status_texts(window)), timeout=5000)
    assert not any("for transform" in text for text in _status_texts(window))
    assert "<1>-<9> animal" in hint and "<n> next" in hint and "<a> accept" in hint

    hide = widget.parent().findChild(QPushButton, "QTitleBarHideButton")
    qtbot.mouseClick(hide, Qt.MouseButton.LeftButton)  # hidden: the keys do nothing here
    qtbot.waitUntil(lambda: not widget.isVisible(), timeout=5000)
    video = next(layer for layer in viewer.layers if layer.name.startswith("video"))
    viewer.layers.selection.active = video
    assert viewer.help != hint and "transform" in viewer.help  # napari's own again
    widget.parent().show()
    qtbot.waitUntil(lambda: viewer.help == hint, timeout=5000)

    close = widget.parent().findChild(QPushButton, "QTitleBarCloseButton")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.closed, timeout=5000)
    assert viewer.help != hint
    viewer.layers.selection.active = None
    viewer.layers.selection.active = video
    assert viewer.help != hint and "transform" in viewer.help
