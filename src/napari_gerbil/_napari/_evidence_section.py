"""The *Selected call* section: each animal's key, colour, name and evidence.

One row per tracked animal (the legend: key -> name -> colour, shown whatever call is
selected), with the selected call's stored probability as a bar in the animal's colour
and whether the animal lies in the call's 95% set; under it the rule in words, what
the 95% set (localization) holds and where it disagrees with the decision, and what
the method saw (:mod:`._evidence`).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QGridLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from napari_gerbil._napari._evidence import (
    NO_ANIMALS,
    CallEvidence,
    method_text,
    rule_text,
    set_text,
)
from napari_gerbil._napari._styles import animal_color


def _css(rgba) -> str:
    r, g, b = (int(round(255 * float(c))) for c in np.asarray(rgba)[:3])
    return f"rgb({r}, {g}, {b})"


class _AnimalRow:
    """The widgets of one animal's row."""

    def __init__(self, grid: QGridLayout, animal: int, name: str) -> None:
        color = _css(animal_color(animal))
        self.key = QLabel(f"<b>{animal + 1}</b>", objectName=f"legend_key_{animal}")
        self.key.setToolTip(f"key {animal + 1}: attribute the call to {name}")
        self.swatch = QLabel(objectName=f"legend_color_{animal}")
        self.swatch.setFixedSize(14, 14)
        self.swatch.setStyleSheet(f"background: {color}; border: 1px solid black;")
        self.name = QLabel(name, objectName=f"legend_name_{animal}")
        self.bar = QProgressBar(objectName=f"evidence_bar_{animal}")
        self.bar.setRange(0, 100)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(10)
        self.bar.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; }}")
        self.value = QLabel("", objectName=f"evidence_p_{animal}")
        self.where = QLabel("", objectName=f"evidence_in_set_{animal}")
        for col, widget in enumerate(
            (self.key, self.swatch, self.name, self.bar, self.value, self.where)
        ):
            grid.addWidget(widget, animal, col)

    def show(self, probability: float, in_set: bool | None) -> None:
        known = bool(np.isfinite(probability))
        self.bar.setValue(int(round(100 * probability)) if known else 0)
        self.value.setText(f"p {probability:.2f}" if known else "p –")
        self.where.setText("" if in_set is None else ("in set" if in_set else "outside set"))

    def widgets(self) -> tuple[QWidget, ...]:
        return (self.key, self.swatch, self.name, self.bar, self.value, self.where)


class EvidenceSection(QWidget):
    """Legend and the selected call's per-animal evidence."""

    def __init__(self) -> None:
        super().__init__(objectName="section_evidence")
        self.rows: list[_AnimalRow] = []
        self.names: list[str] = []
        self.evidence: CallEvidence | None = None
        self.grid_host = QWidget(objectName="evidence_legend")
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(1)
        self.grid.setColumnStretch(3, 1)
        self.header = QLabel("no call selected", objectName="evidence_call")
        self.rule = self._text("evidence_rule")
        self.set_line = self._text("evidence_set")
        self.method = self._text("evidence_method")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 4)
        layout.setSpacing(2)
        for widget in (self.header, self.grid_host, self.rule, self.set_line, self.method):
            layout.addWidget(widget)

    @staticmethod
    def _text(name: str) -> QLabel:
        label = QLabel("", objectName=name)
        label.setWordWrap(True)
        return label

    def set_animals(self, names: list[str]) -> None:
        """One legend row per animal of the open session (none: say so)."""
        if list(names) == self.names and len(self.rows) == len(names):
            return
        for row in self.rows:
            for widget in row.widgets():
                self.grid.removeWidget(widget)
                widget.deleteLater()
        self.names = list(names)
        self.rows = [_AnimalRow(self.grid, a, name) for a, name in enumerate(names)]
        self.show_evidence(None)

    def show_evidence(self, evidence: CallEvidence | None) -> None:
        """Show call evidence (None: no call selected)."""
        self.evidence = evidence
        if not self.names:
            self.header.setText(NO_ANIMALS)
        elif evidence is None:
            self.header.setText("no call selected")
        else:
            self.header.setText(f"<b>call {evidence.call_id}</b> · {evidence.state}")
        for a, row in enumerate(self.rows):
            if evidence is None:
                row.show(np.nan, None)
            else:
                in_set = None if evidence.in_set is None else bool(evidence.in_set[a])
                row.show(float(evidence.probabilities[a]), in_set)
        self.rule.setText("" if evidence is None else rule_text(evidence))
        self.set_line.setText("" if evidence is None else set_text(evidence))
        method = "" if evidence is None else method_text(evidence)
        self.method.setText(method)
        self.rule.setVisible(bool(self.rule.text()))
        self.set_line.setVisible(bool(self.set_line.text()))
        self.method.setVisible(bool(method))

    def text(self) -> str:
        """Everything shown, as plain text (tests, the status bar)."""
        lines = [self.header.text()]
        for a, row in enumerate(self.rows):
            lines.append(f"{a + 1} {self.names[a]} {row.value.text()} {row.where.text()}")
        lines += [self.rule.text(), self.set_line.text(), self.method.text()]
        return "\n".join(line for line in lines if line)
