"""Calls table: sortable, filterable by state, selecting a row selects the call.

One probability column per animal (its header in the animal's colour). The selected
call's row stays shown while an edit takes it out of the filter (pinned), so that
``n`` / ``p`` go on from where the reviewer is.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_gerbil._napari._styles import animal_color
from napari_gerbil.review import code_name

#: (header, column key in the rows mapping, format) of the table columns.
COLUMNS = (
    ("id", "call_id", "{:d}"),
    ("time s", "time_s", "{:.3f}"),
    ("ms", "duration_ms", "{:.0f}"),
    ("set cm²", "area_cm2", "{:.0f}"),
    ("predicted", "predicted_name", "{}"),
    ("reviewed", "reviewed_name", "{}"),
    ("state", "state", "{}"),
)


def table_columns(animal_names) -> tuple[tuple[str, str, str], ...]:
    """:data:`COLUMNS` with one probability column per animal after the set's area.

    Headed by the animal's key ("p1": animal 1's probability) in its colour, as in the
    dock's legend; the tooltip names it.
    """
    at = [c[1] for c in COLUMNS].index("area_cm2") + 1
    animals = tuple((f"p{a + 1}", f"p_{a}", "{:.2f}") for a in range(len(animal_names)))
    return COLUMNS[:at] + animals + COLUMNS[at:]


STATES = ("predicted", "confirmed", "corrected", "unassigned", "ambiguous", "not localized")


class _Item(QTableWidgetItem):
    """Item that sorts by its numeric value (NaN last) when it has one."""

    def __init__(self, text: str, value) -> None:
        super().__init__(text)
        self.value = value
        self.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)

    def __lt__(self, other) -> bool:
        a, b = self.value, getattr(other, "value", None)
        if isinstance(a, float) and isinstance(b, float):
            if np.isnan(a) or np.isnan(b):
                return not np.isnan(a) and np.isnan(b)
            return a < b
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return str(a) < str(b)


def table_rows(review) -> dict[str, np.ndarray]:
    """Columns of the table from a review model.

    Its rows plus the predicted and the reviewed animal side by side (empty where never
    localized / never reviewed).
    """
    from napari_gerbil.io.session import NOT_REVIEWED

    rows = dict(review.rows())
    session = review.session
    names = session.animal_names
    predicted = review.predicted_animal()
    localized = review.localized()
    user = session.user.animal
    rows["predicted_name"] = np.array(
        [
            code_name(int(c), names) if ok else ""
            for c, ok in zip(predicted, localized, strict=True)
        ],
        dtype=object,
    )
    rows["reviewed_name"] = np.array(
        ["" if c == NOT_REVIEWED else code_name(int(c), names) for c in user], dtype=object
    )
    probs = np.full((session.n_calls, len(names)), np.nan)
    stored = session.predicted.probabilities if session.predicted is not None else None
    if stored is not None and stored.shape == probs.shape:
        probs = stored.astype(float)
    for a in range(len(names)):
        rows[f"p_{a}"] = probs[:, a]
    return rows


class _NoSearchTable(QTableWidget):
    """Table whose typed keys never jump to a row (they are review keys).

    It asks for the width of all its columns (:attr:`preferred_width`) but may be
    narrower: on a small screen it scrolls sideways rather than widen the window.
    """

    preferred_width = 0

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().sizeHint()
        hint.setWidth(max(hint.width(), self.preferred_width))
        return hint

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().minimumSizeHint()
        hint.setWidth(min(hint.width(), 200))
        return hint

    def keyboardSearch(self, search: str | None) -> None:  # noqa: N802 (Qt's name)
        return


class CallsTable(QWidget):
    """Table of calls; emits :attr:`call_selected` with the call's row index in the session."""

    call_selected = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("calls_table_widget")
        self.state_filter = QComboBox(objectName="calls_state_filter")
        self.state_filter.addItems(["all", *STATES])
        self.count_label = QLabel("", objectName="calls_count")
        self.columns: tuple[tuple[str, str, str], ...] = COLUMNS
        self.pinned: int | None = None  # the selected call: shown whatever the filter
        self.table = _NoSearchTable(0, len(COLUMNS), objectName="calls_table")
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        # Qt's default sort indicator is descending: start sorted by time, ascending.
        self.table.horizontalHeader().setSortIndicator(1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        # the sort is said beside the count: an indicator widens every column's header
        self.table.horizontalHeader().setSortIndicatorShown(False)
        self.table.horizontalHeader().sortIndicatorChanged.connect(lambda *_: self._count())
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setResizeContentsPrecision(200)  # rows sampled
        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.state_filter)
        top.addStretch(1)
        top.addWidget(self.count_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table)
        self._rows: dict[str, np.ndarray] = {}
        self._row_of_call: dict[int, int] = {}
        self._emitting = True
        self.state_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.table.itemSelectionChanged.connect(self._on_selection)

    def set_columns(self, animal_names) -> None:
        """One probability column per animal of the open session (emptied if changed)."""
        columns = table_columns(animal_names)
        if columns == self.columns:
            return
        self.columns = columns
        self.table.setRowCount(0)
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels([c[0] for c in columns])
        for col, (_, key, _) in enumerate(columns):
            if key.startswith("p_"):
                animal = int(key[2:])
                item = self.table.horizontalHeaderItem(col)
                rgba = animal_color(animal)
                item.setForeground(QBrush(QColor.fromRgbF(*map(float, rgba))))
                item.setToolTip(f"probability of {animal_names[animal]} (key {animal + 1})")

    def set_rows(self, rows: dict[str, np.ndarray]) -> None:
        """Fill the table; ``rows`` maps each column key of :attr:`columns` to an array."""
        self._rows = rows
        n = len(rows["call_id"])
        self._emitting = False
        self.table.setSortingEnabled(False)
        self.table.setRowCount(n)
        for i in range(n):
            self._fill(i, i)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicatorShown(False)  # (sorting showed it)
        self._emitting = True
        self._reindex()
        self._apply_filter()
        self.table.resizeColumnsToContents()
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Prefer the width that shows every column whole (the state column was clipped)."""
        header = self.table.horizontalHeader()
        columns = sum(
            max(self.table.sizeHintForColumn(c), header.sectionSizeHint(c))
            for c in range(self.table.columnCount())
        )
        scrollbar = self.table.verticalScrollBar().sizeHint().width()
        width = columns + scrollbar + 2 * self.table.frameWidth() + 2
        if width != self.table.preferred_width:  # a change re-lays out the whole dock
            self.table.preferred_width = width
            self.table.updateGeometry()

    def update_calls(self, indices, rows: dict[str, np.ndarray]) -> None:
        """Refresh the rows of calls ``indices`` in place (e.g. after edits or localization).

        Sorting stays on: Qt moves an edited row to its place by itself, so the cost is
        that of the rows changed, not of re-sorting the whole table.
        """
        self._rows = rows
        self._emitting = False
        for index in indices:
            row = self._row_of_call.get(int(index))
            if row is not None:
                self._fill(row, int(index), in_place=True)
        self._emitting = True
        self._reindex()
        self._apply_filter()

    def select_call(self, index: int) -> None:
        """Select and show the row of call ``index`` without emitting :attr:`call_selected`.

        Its row stays shown (pinned) until another call is selected, even when an edit
        takes it out of the filter.
        """
        previous, self.pinned = self.pinned, int(index)
        if previous is not None and previous != self.pinned:
            self._filter_row(self._row_of_call.get(previous))
        row = self._row_of_call.get(index)
        if row is None:
            return
        self._filter_row(row)
        self._emitting = False
        self.table.selectRow(row)
        self.table.scrollToItem(self.table.item(row, 0))
        self._emitting = True

    def selected_calls(self) -> list[int]:
        """Session row indices of the selected calls."""
        rows = {item.row() for item in self.table.selectedItems()}
        return sorted(self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in rows)

    def neighbour(self, index: int | None, direction: int) -> int | None:
        """The shown call after (+1) / before (-1) call ``index`` in table order.

        From a call the filter hides, the nearest shown row on that side; from none, the
        first (last) shown row. None when no row is shown.
        """
        order = self.visible_calls()
        if not order:
            return None
        row = self._row_of_call.get(index) if index is not None else None
        if row is None:
            return order[0] if direction > 0 else order[-1]
        rows = [self._row_of_call[i] for i in order]
        if direction > 0:
            after = [k for k, r in enumerate(rows) if r > row]
            return order[after[0]] if after else order[-1]
        before = [k for k, r in enumerate(rows) if r < row]
        return order[before[-1]] if before else order[0]

    def visible_calls(self) -> list[int]:
        """Session row indices of the rows shown by the filter, in table order."""
        return [
            self.table.item(r, 0).data(Qt.ItemDataRole.UserRole)
            for r in range(self.table.rowCount())
            if not self.table.isRowHidden(r)
        ]

    # -- internals --------------------------------------------------------------------
    def _fill(self, row: int, index: int, in_place: bool = False) -> None:
        for col, (_, key, fmt) in enumerate(self.columns):
            value = self._rows[key][index]
            value = value.item() if hasattr(value, "item") else value
            is_nan = isinstance(value, float) and np.isnan(value)
            text = "" if is_nan else fmt.format(value)
            item = self.table.item(row, col) if in_place else None
            if item is not None:
                if item.value != value or item.text() != text:
                    item.value = value
                    item.setText(text)  # re-places the row if this is the sort column
                    row = item.row()
                continue
            item = _Item(text, value)
            if col == 0:
                item.setData(Qt.ItemDataRole.UserRole, int(index))
            self.table.setItem(row, col, item)

    def _reindex(self) -> None:
        self._row_of_call = {
            self.table.item(r, 0).data(Qt.ItemDataRole.UserRole): r
            for r in range(self.table.rowCount())
        }

    def _on_filter_changed(self, _index: int = 0) -> None:
        self.pinned = None  # the user chose what to see: the selected call is not kept
        self._apply_filter()

    def _hidden(self, row: int) -> bool:
        wanted = self.state_filter.currentText()
        if wanted == "all":
            return False
        first = self.table.item(row, 0)
        if self.pinned is not None and first.data(Qt.ItemDataRole.UserRole) == self.pinned:
            return False
        state_col = [c[1] for c in self.columns].index("state")
        return self.table.item(row, state_col).text() != wanted

    def _filter_row(self, row: int | None) -> None:
        if row is not None and row < self.table.rowCount():
            self.table.setRowHidden(row, self._hidden(row))
            self._count()

    def _apply_filter(self) -> None:
        for r in range(self.table.rowCount()):
            self.table.setRowHidden(r, self._hidden(r))
        self._count()

    def _count(self) -> None:
        rows = self.table.rowCount()
        shown = sum(not self.table.isRowHidden(r) for r in range(rows))
        header = self.table.horizontalHeader()
        column = header.sortIndicatorSection()
        by = ""
        if 0 <= column < len(self.columns):
            arrow = "↑" if header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder else "↓"
            by = f", by {self.columns[column][0]} {arrow}"
        self.count_label.setText(f"{shown} / {rows} calls{by}")

    def _on_selection(self) -> None:
        if not self._emitting:
            return
        selected = self.selected_calls()
        if len(selected) == 1:
            self.call_selected.emit(selected[0])
