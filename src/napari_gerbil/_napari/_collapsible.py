"""Dock layout helpers.

A titled section that a click on its title folds away, and a vertical-only scroll area
for the sections.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QSize, Qt, Signal
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget


class CollapsibleSection(QWidget):
    """Title button (with an arrow) over a body widget that the button shows or hides.

    Parameters
    ----------
    title
        Text of the title button.
    body
        The section's content.
    expanded
        Whether the body is shown at first.
    grows
        Whether the expanded section takes the dock's spare height (the calls table).
    """

    #: Emitted with the new state when the section is expanded (True) or folded (False).
    toggled = Signal(bool)

    def __init__(
        self, title: str, body: QWidget, expanded: bool = True, grows: bool = False, parent=None
    ) -> None:
        super().__init__(parent)
        self.grows = grows
        self.body = body
        self.header = QToolButton(text=title, checkable=True)
        self.header.setObjectName(f"{body.objectName() or 'section'}_header")
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.header.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(body, 1)
        self.header.toggled.connect(self.set_expanded)
        self.set_expanded(expanded)

    def is_expanded(self) -> bool:
        """Whether the body is shown."""
        return self.header.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        """Show (True) or fold (False) the body."""
        expanded = bool(expanded)
        if self.header.isChecked() != expanded:
            self.header.setChecked(expanded)  # re-enters through the toggled signal
            return
        arrow = Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow
        self.header.setArrowType(arrow)
        self.body.setVisible(expanded)
        vertical = (
            QSizePolicy.Policy.Expanding if expanded and self.grows else QSizePolicy.Policy.Maximum
        )
        self.setSizePolicy(QSizePolicy.Policy.Preferred, vertical)
        self.toggled.emit(expanded)


class VerticalScrollArea(QScrollArea):
    """Scroll area that scrolls vertically only and is as wide as its content needs.

    A plain one lets a dock squeeze it and clips the content's right side.
    """

    def __init__(self, content: QWidget, parent=None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(content)
        content.installEventFilter(self)

    def _width_for(self, content_px: int) -> int:
        return content_px + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().minimumSizeHint()
        hint.setWidth(max(hint.width(), self._width_for(self.widget().minimumSizeHint().width())))
        return hint

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().sizeHint()
        hint.setWidth(max(hint.width(), self._width_for(self.widget().sizeHint().width())))
        return hint

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the content's needs changed (a section unfolded)
        return super().eventFilter(obj, event)
