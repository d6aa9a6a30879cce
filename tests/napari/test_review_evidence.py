"""The reviewer sees why: each animal's evidence, the legend, and a review that keeps its place.

Sessions here carry crafted predictions (as a localization stores them) so that the
picture (the 95% set) and the decision (the probabilities) agree or disagree on purpose.
Every action is a real click or key press; every wait is for a condition.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gui_helpers import canvas, click, click_row, open_dock, press, wait_job
from qtpy.QtCore import QPoint, Qt
from qtpy.QtWidgets import QLabel, QScrollArea

from napari_gerbil._napari._evidence import NO_ANIMALS
from napari_gerbil._napari._overlays import LAYER_NAMES
from napari_gerbil._napari._styles import animal_color
from napari_gerbil.io.session import AMBIGUOUS, load_session, save_session

pytestmark = pytest.mark.gui

#: Stored probabilities (gerbil A, gerbil B) of the 6 calls, and where each set lies.
PROBABILITIES = np.array(
    [[0.60, 0.40], [0.27, 0.73], [0.01, 0.99], [0.99, 0.01], [0.50, 0.50], [0.30, 0.70]]
)
#: The set around gerbil A only, except call 3: around both animals.
SET_AROUND_BOTH = 3


def _craft_predictions(path) -> None:
    """Store predictions: each call's 95% set around gerbil A (call 3: around both)."""
    from napari_gerbil.attribute import assign
    from napari_gerbil.pipeline import load_session_poses
    from napari_gerbil.review import animal_positions_mm

    session = load_session(path)
    n = session.n_calls
    at = animal_positions_mm(session, load_session_poses(session), np.arange(n))  # (n, 2, 2)
    means = np.stack([at[:, 0], at[:, 0]], axis=1)  # 2 members, both at gerbil A
    means[SET_AROUND_BOTH, 1] = at[SET_AROUND_BOTH, 1]  # one member at gerbil B
    chol = np.broadcast_to(np.eye(2) * 25.0, (n, 2, 2, 2)).copy()
    session.set_predictions(
        np.arange(n),
        point_mm=means.mean(axis=1),
        member_means_mm=means,
        member_chol_mm=chol,
        set_area_mm2=np.full(n, 80.0),
        model_version="crafted",
        animal=assign(PROBABILITIES),
        probabilities=PROBABILITIES,
    )
    save_session(session, path)


@pytest.fixture
def crafted(make_napari_viewer, session_path, qtbot):
    _craft_predictions(session_path)
    viewer = make_napari_viewer(show=True)
    return viewer, open_dock(viewer, qtbot, session_path)


def _label(widget, name: str) -> str:
    label = widget.findChild(QLabel, name)
    assert label is not None, name
    return label.text()


def _canvas_labels(viewer) -> list[str]:
    return [t for t in viewer.layers[LAYER_NAMES["evidence"]].features["label"] if t]


def test_the_dock_and_the_video_show_each_animals_stored_probability_and_the_disagreement(
    crafted, qtbot
):
    viewer, widget = crafted
    stored = load_session(widget.review.path).predicted.probabilities
    assert widget.review.predicted_animal()[1] == AMBIGUOUS
    # the legend: key -> name -> colour, shown before any choice
    for a, name in enumerate(["gerbil A", "gerbil B"]):
        assert _label(widget, f"legend_key_{a}") == f"<b>{a + 1}</b>"
        assert _label(widget, f"legend_name_{a}") == name
        r, g, b = (int(round(255 * c)) for c in animal_color(a)[:3])
        swatch = widget.findChild(QLabel, f"legend_color_{a}")
        assert swatch.isVisible() and f"rgb({r}, {g}, {b})" in swatch.styleSheet()

    click_row(qtbot, widget, 1)  # ambiguous: 0.27 gerbil A / 0.73 gerbil B
    qtbot.waitUntil(lambda: widget.current == 1)
    evidence = widget.evidence_section
    assert _label(widget, "evidence_p_0") == f"p {stored[1, 0]:.2f}" == "p 0.27"
    assert _label(widget, "evidence_p_1") == f"p {stored[1, 1]:.2f}" == "p 0.73"
    assert widget.findChild(QLabel, "evidence_p_1").isVisible()
    assert evidence.rule.text() == (
        "assigned at p ≥ 0.95; this call: 0.73 gerbil B / 0.27 gerbil A → ambiguous"
    )
    assert _label(widget, "evidence_in_set_0") == "in set"
    assert _label(widget, "evidence_in_set_1") == "outside set"
    assert "where the call came from" in evidence.set_line.text()
    assert "gerbil B has the higher probability (0.73) but lies outside the set" in (
        evidence.set_line.text()
    )
    assert "steered response at each animal" in evidence.method.text()
    # on the video: a disc per animal, filled as much as its stored probability
    layer = viewer.layers[LAYER_NAMES["evidence"]]
    assert _canvas_labels(viewer) == ["1 gerbil A p 0.27", "2 gerbil B p 0.73"]
    discs = [k for k, t in enumerate(layer.features["label"]) if t]
    np.testing.assert_allclose(layer.face_color[discs, 3], 0.85 * stored[1], atol=1e-6)

    press(qtbot, canvas(widget), "n")  # assigned to gerbil B, which lies outside the set
    qtbot.waitUntil(lambda: widget.current == 2)
    assert _label(widget, "evidence_p_1") == "p 0.99"
    assert "0.99 gerbil B / 0.01 gerbil A → assigned to gerbil B" in evidence.rule.text()
    assert "gerbil B is assigned (p 0.99) but lies outside the set" in evidence.set_line.text()
    assert _canvas_labels(viewer) == ["1 gerbil A p 0.01", "2 gerbil B p 0.99"]

    press(qtbot, canvas(widget), "n")  # assigned to gerbil A, both animals inside the set
    qtbot.waitUntil(lambda: widget.current == 3)
    assert "holds gerbil A and gerbil B" in evidence.set_line.text()
    assert "cannot tell them apart" in evidence.set_line.text()

    press(qtbot, canvas(widget), "2")  # a key names the animal of the legend
    qtbot.waitUntil(lambda: "corrected" in evidence.header.text())
    assert widget.calls_section.status.text() == "call 3 → gerbil B, corrected"


def test_n_goes_on_after_the_row_attributed_in_a_filtered_table(crafted, qtbot):
    viewer, widget = crafted
    combo = widget.table.state_filter
    combo.setFocus()
    for _ in range(combo.findText("ambiguous")):  # arrow keys down the list of states
        qtbot.keyClick(combo, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: combo.currentText() == "ambiguous")
    shown = widget.table.visible_calls()
    assert shown == [0, 1, 4, 5]  # by time
    click_row(qtbot, widget, shown[2])  # the third row
    qtbot.waitUntil(lambda: widget.current == 4)
    press(qtbot, canvas(widget), "1")
    qtbot.waitUntil(lambda: widget.review.states()[4] == "corrected")
    assert widget.table.selected_calls() == [4]  # the row stays, selected
    press(qtbot, canvas(widget), "n")
    qtbot.waitUntil(lambda: widget.current == 5)  # the next row, not the first one
    assert widget.table.selected_calls() == [5]
    assert widget.table.visible_calls() == [0, 1, 5]  # the attributed one left the filter
    press(qtbot, canvas(widget), "p")
    qtbot.waitUntil(lambda: widget.current == 1)


def test_a_probability_column_per_animal_sorts_the_table(crafted, qtbot):
    viewer, widget = crafted
    table = widget.table.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    column = headers.index("p2")  # key 2: gerbil B, in its colour
    tip = table.horizontalHeaderItem(column).toolTip()
    assert tip == "probability of gerbil B (key 2)"
    row = widget.table._row_of_call[1]
    assert table.item(row, column).text() == "0.73"
    header = table.horizontalHeader()
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(
        header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2)
    )
    qtbot.waitUntil(lambda: header.sortIndicatorSection() == column)
    p_b = [PROBABILITIES[i, 1] for i in widget.table.visible_calls()]
    assert p_b in (sorted(p_b), sorted(p_b, reverse=True))
    assert "by p2" in widget.table.count_label.text()  # the sort, said beside the count


def test_a_session_without_poses_says_there_are_no_animals_to_attribute_to(
    make_napari_viewer, session_path, qtbot
):
    session = load_session(session_path)
    session.tracks = None
    save_session(session, session_path)
    viewer = make_napari_viewer(show=True)
    widget = open_dock(viewer, qtbot, session_path)
    info = widget.session_section.info.text()
    assert NO_ANIMALS in info and "0 animals" not in info and "()" not in info
    assert widget.evidence_section.header.text() == NO_ANIMALS
    assert widget.evidence_section.header.isVisible()


def test_cancel_stops_between_batches_and_says_how_many_calls_were_done(
    make_napari_viewer, session_path, qtbot, tiny_ensemble_dir, monkeypatch
):
    from napari_gerbil import pipeline
    from napari_gerbil._napari import _jobs

    real = pipeline.localize_calls
    first_done = threading.Event()
    go_on = threading.Event()

    def paused_after_first_batch(*args, **kwargs):
        for k, batch in enumerate(real(*args, **kwargs)):
            yield batch
            if k == 0:
                first_done.set()
                go_on.wait(60)

    monkeypatch.setattr(pipeline, "localize_calls", paused_after_first_batch)
    monkeypatch.setattr(_jobs, "LOCALIZE_BATCH", 2)  # 6 calls: 3 batches
    viewer = make_napari_viewer(show=True)
    widget = open_dock(viewer, qtbot, session_path)
    widget.model_section.model_dir.setText(str(tiny_ensemble_dir))
    click(qtbot, widget, "localize_all")
    qtbot.waitUntil(lambda: int(widget.review.localized().sum()) == 2, timeout=60000)
    qtbot.waitUntil(first_done.is_set)
    click(qtbot, widget.jobs, "cancel_job")
    go_on.set()  # the second batch ends after the click: it is not stored
    wait_job(qtbot, widget)
    assert int(widget.review.localized().sum()) == 2
    assert widget.jobs.progress.format() == "cancelled: localized 2 of 6 calls"
    assert widget.calls_section.status.text() == "localized 2 calls (u to undo)"
    assert int(load_session(widget.review.path).localized().sum()) == 2


def test_the_window_fits_a_laptop_screen_with_the_dock_open(crafted, qtbot):
    viewer, widget = crafted
    window = widget.window()
    window.resize(1366, 768)
    try:
        qtbot.waitUntil(lambda: window.width() <= 1366 and window.height() <= 768)
    except Exception:
        raise AssertionError(
            f"{window.width()}x{window.height()}; min {window.minimumSizeHint()} "
            f"dock {widget.minimumSizeHint()} table {widget.table.table.minimumWidth()} "
            f"scroll {widget.findChild(QScrollArea, 'review_scroll').minimumSizeHint()} "
            f"spectrogram {widget.spectrogram.minimumSizeHint()}"
        ) from None
    table = widget.table.table
    qtbot.waitUntil(table.isVisible)
    assert not table.horizontalScrollBar().isVisible()  # every column fits the dock
    click(qtbot, widget, "show_keys")
    keys = widget.calls_section.keys_list
    qtbot.waitUntil(keys.isVisible)
    last = keys.findChildren(QLabel)[-1]
    scroll = widget.findChild(QScrollArea, "review_scroll")
    scroll.ensureWidgetVisible(last)
    qtbot.waitUntil(lambda: last.visibleRegion().boundingRect() == last.rect())  # not cut
    assert widget.evidence_section.isVisible()
