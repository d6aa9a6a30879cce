"""Driving the review dock as a user does: a shown window, real clicks and key presses."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import QApplication, QPushButton


def open_dock(viewer, qtbot, session_path=None):
    """Dock the review widget (as Plugins > Review calls does) and activate the window."""
    from napari_gerbil._napari._widget import ReviewWidget

    viewer.window.resize(1400, 900)
    if session_path is not None:
        viewer.open(session_path, plugin="napari-gerbil")
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Review calls (napari-gerbil)", area="right")
    activate(widget, qtbot)
    return widget


def activate(widget, qtbot) -> None:
    """Make the widget's window the active one (shortcuts act in the active window)."""
    window = widget.window()
    window.show()
    window.activateWindow()
    window.raise_()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)


def canvas(widget):
    """The viewer's canvas widget, found through Qt's object tree (no private napari).

    ``widget``: any widget of the main window, or the window itself.
    """
    from napari.qt import QtViewer

    return widget.window().findChild(QtViewer).canvas.native


def press(qtbot, target, keys: str) -> None:
    """Type ``keys`` ('2', 'Ctrl+Z', 'Delete') on ``target`` as a key press."""
    combination = QKeySequence(keys)[0]
    qtbot.keyClick(target, combination.key(), combination.keyboardModifiers())


def click(qtbot, widget, name: str) -> QPushButton:
    """Click the push button named ``name`` inside ``widget`` with the left button."""
    button = widget.findChild(QPushButton, name)
    assert button is not None, f"no button {name}"
    assert button.isEnabled(), f"button {name} is disabled"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    return button


def click_row(qtbot, widget, index: int) -> None:
    """Click the table row of call ``index``."""
    table = widget.table.table
    row = widget.table._row_of_call[index]
    rect = table.visualRect(table.model().index(row, 0))
    table.scrollTo(table.model().index(row, 0))
    rect = table.visualRect(table.model().index(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def wait_job(qtbot, widget, timeout_ms: int = 120000) -> None:
    """Wait until the dock's background job (localize, detect, ...) has finished."""
    qtbot.waitUntil(lambda: not widget.jobs.busy(), timeout=timeout_ms)
