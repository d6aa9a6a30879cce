"""Small builders shared by the dock's sections.

Buttons whose slot never receives Qt's ``clicked(bool)`` argument, and a titled form
section.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QPushButton, QWidget


def button(text: str, name: str, action: Callable[[], object], tip: str = "") -> QPushButton:
    """A push button named ``name`` that calls ``action()`` with no argument when clicked.

    Qt's ``clicked`` signal carries a ``checked`` bool; connecting a method with an
    optional first parameter directly would pass it that bool.
    """
    widget = QPushButton(text, objectName=name)
    widget.clicked.connect(lambda _checked=False: action())
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
