"""The *Calls* section.

Review buttons, the selected call's bounds, listening, the calls table and the list of
review keys.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_gerbil._napari._controls import button, report_errors, row
from napari_gerbil._napari._keys import keys_help_rows
from napari_gerbil._napari._table import CallsTable

#: Rows of the calls table that stay visible however many sections are unfolded.
MIN_TABLE_ROWS = 5
#: Listening modes offered: (label, mode, slow-down factor).
PLAYBACK_MODES = (
    ("slowed x10", "slow", 10),
    ("slowed x20", "slow", 20),
    ("heterodyne", "heterodyne", 1),
)


class KeysList(QWidget):
    """The review keys, two columns (shown by the *Keys* button)."""

    def __init__(self) -> None:
        super().__init__(objectName="keys_help")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(1)
        for k, (keys, what) in enumerate(keys_help_rows()):
            key_label = QLabel(f"<b>{keys}</b>")
            text = QLabel(what)
            text.setWordWrap(True)
            grid.addWidget(key_label, k, 0)
            grid.addWidget(text, k, 1)
        grid.setColumnStretch(1, 1)

    def text(self) -> str:
        """The list as plain text (tests, tooltips)."""
        return "\n".join(f"{keys}: {what}" for keys, what in keys_help_rows())


class CallsSection(QWidget):
    """Review the calls one by one; every control acts on the dock's selected call."""

    def __init__(self, dock) -> None:
        super().__init__(objectName="section_calls")
        self.dock = dock
        self.call_start_s = QDoubleSpinBox(objectName="call_start_s")
        self.call_stop_s = QDoubleSpinBox(objectName="call_stop_s")
        for box in (self.call_start_s, self.call_stop_s):
            box.setDecimals(4)
            box.setRange(0.0, 1e7)
            box.setSingleStep(0.001)
            box.setSuffix(" s")
        self.playback_mode = QComboBox(objectName="playback_mode")
        self.playback_mode.addItems([label for label, _, _ in PLAYBACK_MODES])
        self.keys_button = QPushButton("Keys", objectName="show_keys", checkable=True)
        self.keys_button.setToolTip("show the review keys")
        self.keys_list = KeysList()
        self.keys_list.setVisible(False)
        self.keys_button.toggled.connect(self.keys_list.setVisible)
        self.table = CallsTable()
        self.table.call_selected.connect(report_errors(dock.select_call))
        self.table.table.setMinimumHeight(MIN_TABLE_ROWS * 30 + 60)  # + header, scrollbar
        self.status = QLabel("", objectName="review_status")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 4)
        layout.setSpacing(3)
        layout.addLayout(
            row(
                button("Most uncertain", "next_uncertain", dock.next_uncertain, "key m"),
                button("Accept", "accept_call", dock.accept_current, "key a"),
                button("Undo", "undo", dock.undo, "key u or Ctrl+Z"),
                button("Redo", "redo", dock.redo, "key r or Ctrl+Shift+Z"),
                button("Zoom to call", "zoom_to_call", dock.zoom_to_call, "key z"),
            )
        )
        layout.addLayout(
            row(
                QLabel("Bounds"),
                self.call_start_s,
                self.call_stop_s,
                button("Set bounds", "set_call_bounds", self.apply_bounds),
                button("Delete call", "delete_call", dock.delete_current, "key x or Delete"),
            )
        )
        layout.addLayout(
            row(
                QLabel("Listen"),
                self.playback_mode,
                button("Play call", "play_call", dock.play_current, "key l"),
                self.keys_button,
                stretch=None,
            )
        )
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.keys_list)
        self.show_bounds(None)

    def playback(self) -> tuple[str, int]:
        """(mode, factor) chosen for listening."""
        _, mode, factor = PLAYBACK_MODES[self.playback_mode.currentIndex()]
        return mode, factor

    def show_bounds(self, bounds_s: tuple[float, float] | None) -> None:
        """Show the selected call's (start, stop) in seconds; None: no call selected."""
        for box, value in zip((self.call_start_s, self.call_stop_s), bounds_s or (0.0, 0.0),
                              strict=True):  # fmt: skip
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
            box.setEnabled(bounds_s is not None)

    def apply_bounds(self) -> None:
        """Move the selected call's bounds to the boxes' values (start < stop)."""
        dock = self.dock
        if dock.current is None:
            dock.notify("select a call first")
            return
        start_s, stop_s = self.call_start_s.value(), self.call_stop_s.value()
        if not start_s < stop_s:
            dock.notify(f"start ({start_s:.4f} s) must be before stop ({stop_s:.4f} s)")
            return
        dock.set_bounds_s(dock.current, start_s, stop_s)

    def say(self, message: str) -> None:
        """Show what the last action did."""
        self.status.setText(message)
