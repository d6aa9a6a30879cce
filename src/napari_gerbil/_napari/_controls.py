"""Small builders shared by the dock's sections.

Buttons whose slot never receives Qt's ``clicked(bool)`` argument, and a titled form
section.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QMessageBox, QPushButton, QWidget


def report_errors(action: Callable[..., Any]) -> Callable[..., Any]:
    """``action`` wrapped so that an unexpected error goes to ``sys.excepthook``.

    An exception unwinding into Qt aborts the whole process outside ``napari.run()``;
    this way it is shown (napari's notification under ``napari.run()``, a traceback on
    stderr otherwise) and the window stays. Expected errors are handled by the actions.
    """

    @functools.wraps(action)
    def run(*args: Any) -> Any:
        try:
            return action(*args)
        except Exception:
            sys.excepthook(*sys.exc_info())
            return None

    return run


def button(text: str, name: str, action: Callable[[], object], tip: str = "") -> QPushButton:
    """A push button named ``name`` that calls ``action()`` with no argument when clicked.

    Qt's ``clicked`` signal carries a ``checked`` bool; connecting a method with an
    optional first parameter directly would pass it that bool.
    """
    widget = QPushButton(text, objectName=name)
    guarded = report_errors(action)
    widget.clicked.connect(lambda _checked=False: guarded())
    if tip:
        widget.setToolTip(tip)
    return widget


def row(*widgets, stretch: int | None = None) -> QHBoxLayout:
    """Widgets side by side; ``stretch``: index of the one that takes the spare width."""
    layout = QHBoxLayout()
    layout.setContentsMargins(0, 0, 0, 0)
    for k, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if k == stretch else 0)
    return layout


def form(owner: QWidget) -> QFormLayout:
    """The form layout of a section body, with the dock's margins."""
    layout = QFormLayout(owner)
    layout.setContentsMargins(4, 0, 0, 4)
    return layout


def confirm(parent: QWidget | None, title: str, text: str, action: str) -> bool:
    """Ask before something that drops work: True if the user clicks ``action``.

    A modal box named ``gerbil_confirm`` whose default (Enter, Escape) is Cancel.
    """
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=parent)
    box.setObjectName("gerbil_confirm")
    go = box.addButton(action, QMessageBox.ButtonRole.AcceptRole)
    go.setObjectName("gerbil_confirm_ok")
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    return box.clickedButton() is go
