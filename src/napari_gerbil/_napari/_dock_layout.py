"""The review dock's body: its sections, folded or not, in one vertical scroll area.

Each section is a small widget of its own (:mod:`._sections`, :mod:`._evidence_section`,
:mod:`._calls_section`, :mod:`._finetune_section`, :mod:`._create`); this module puts
them under fold-away titles. The sections scroll rather than ask the window for their
height, so that the window fits a laptop screen (1366 x 768) with the dock open.
"""

from __future__ import annotations

from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from napari_gerbil._napari._calls_section import CallsSection
from napari_gerbil._napari._collapsible import CollapsibleSection, VerticalScrollArea
from napari_gerbil._napari._create import NewSessionSection
from napari_gerbil._napari._evidence_section import EvidenceSection
from napari_gerbil._napari._finetune_section import FinetuneSection
from napari_gerbil._napari._sections import DetectSection, ModelSection, SessionSection


def build_sections(dock) -> dict[str, CollapsibleSection]:
    """Create the dock's sections (set as its attributes); returns them by name."""
    dock.session_section = SessionSection(dock)
    dock.detect_section = DetectSection(dock)
    dock.model_section = ModelSection(dock)
    dock.evidence_section = EvidenceSection()
    dock.calls_section = CallsSection(dock)
    dock.finetune_section = FinetuneSection(dock)
    dock.new_session = NewSessionSection(dock.viewer, dock.open_session)
    dock.table = dock.calls_section.table
    return {
        "session": CollapsibleSection("Session", dock.session_section),
        "new_session": CollapsibleSection("New session", dock.new_session, expanded=False),
        "detect": CollapsibleSection("Detect / import calls", dock.detect_section, expanded=False),
        "model": CollapsibleSection("Model / localize", dock.model_section),
        "evidence": CollapsibleSection("Selected call: the animals", dock.evidence_section),
        "calls": CollapsibleSection("Calls", dock.calls_section, grows=True),
        "finetune": CollapsibleSection("Fine-tune", dock.finetune_section, expanded=False),
    }


def sections_area(sections: dict[str, CollapsibleSection]) -> VerticalScrollArea:
    """The sections one under another in a scroll area; the calls one takes spare height."""
    content = QWidget(objectName="review_sections")
    layout = QVBoxLayout(content)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(4)
    for part in sections.values():
        layout.addWidget(part)
    # takes the spare height while the calls section (which else takes it) is folded
    filler = QWidget(objectName="dock_filler")
    filler.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
    layout.addWidget(filler, 1)
    calls = sections["calls"]
    layout.setStretchFactor(calls, 1)
    calls.toggled.connect(filler.setHidden)
    filler.setHidden(calls.is_expanded())
    scroll = VerticalScrollArea(content)
    scroll.setObjectName("review_scroll")
    return scroll
