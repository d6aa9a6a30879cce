"""Nothing lost, nothing silent in the review window (issue 20, the GUI half).

Localizing a subset keeps the other calls' predictions; what would drop some asks first and
is undone by ``u``; all with real clicks and keys.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from gui_helpers import canvas, click, click_row, open_dock, press, wait_job
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QApplication, QFileDialog, QMainWindow, QMessageBox, QPushButton

from napari_gerbil._napari._widget import ReviewWidget
from napari_gerbil.io.session import load_session

pytestmark = pytest.mark.gui


@pytest.fixture
def review(make_napari_viewer, session_path, qtbot):
    viewer = make_napari_viewer(show=True)
    return viewer, open_dock(viewer, qtbot, session_path)


def _model_copy(source, folder, version: int, keep_members: int | None = None):
    """A copy of an ensemble directory as another model version (fewer members if asked)."""
    shutil.copytree(source, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    if keep_members is not None:
        manifest["members"] = manifest["members"][:keep_members]
        if "n_members" in manifest:
            manifest["n_members"] = keep_members
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _answer_confirm(qtbot, answer: str, seen: list[str]) -> None:
    """Click ``answer`` ('ok' or 'cancel') in the confirm box once it is shown."""

    def click_it() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click_it)
            return
        seen.append(box.text())
        if answer == "ok":
            target = box.findChild(QPushButton, "gerbil_confirm_ok")
        else:
            target = box.button(QMessageBox.StandardButton.Cancel)
        qtbot.mouseClick(target, Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, click_it)


def test_localize_selected_with_a_new_model_keeps_the_other_calls(
    review, qtbot, session_path, tiny_ensemble_dir, tmp_path
):
    viewer, widget = review
    for section in widget.sections.values():
        section.set_expanded(True)
    widget.model_section.model_dir.setText(str(tiny_ensemble_dir))
    click(qtbot, widget, "localize_all")
    wait_job(qtbot, widget)
    n = widget.review.n_calls
    assert widget.review.localized().all()
    first = widget.model_section.load_ensemble().version
    points = widget.review.session.predictions.point_mm.copy()

    # the fine-tuned model, chosen with Use new model (as after Retrain)
    new_dir = _model_copy(tiny_ensemble_dir, tmp_path / "v2", version=2)
    widget.finetune_section.new_model_dir = new_dir
    widget.finetune_section.use_new.setEnabled(True)
    click(qtbot, widget, "use_finetuned_model")
    click_row(qtbot, widget, 2)
    click(qtbot, widget, "localize_selected")
    wait_job(qtbot, widget)
    second = widget.model_section.load_ensemble().version
    assert second != first
    on_disk = load_session(session_path)
    assert on_disk.localized().all()  # was: 1 of n left
    versions = on_disk.predictions.call_model_version
    assert versions[2] == second and set(np.delete(versions, 2)) == {first}
    others = np.arange(n) != 2
    np.testing.assert_array_equal(on_disk.predictions.point_mm[others], points[others])
    assert (widget.review.states() != "not localized").all()

    press(qtbot, canvas(widget), "u")  # the localization is undone
    on_disk = load_session(session_path)
    assert set(on_disk.predictions.call_model_version) == {first}
    np.testing.assert_array_equal(on_disk.predictions.point_mm, points)
    press(qtbot, canvas(widget), "r")
    assert load_session(session_path).predictions.call_model_version[2] == second

    # a model with another member count cannot keep the others: asks first
    one = _model_copy(tiny_ensemble_dir, tmp_path / "one", version=3, keep_members=1)
    widget.model_section.model_dir.setText(str(one))
    seen: list[str] = []
    _answer_confirm(qtbot, "cancel", seen)
    click_row(qtbot, widget, 1)
    click(qtbot, widget, "localize_selected")
    assert seen and f"drops the predictions of {n - 1} other calls" in seen[0]
    assert not widget.jobs.busy() and load_session(session_path).localized().all()
    _answer_confirm(qtbot, "ok", seen)
    click(qtbot, widget, "localize_selected")
    wait_job(qtbot, widget)
    assert list(np.flatnonzero(load_session(session_path).localized())) == [1]
    press(qtbot, canvas(widget), "u")  # undo gives every dropped prediction back
    restored = load_session(session_path)
    assert restored.localized().all() and restored.predictions.call_model_version[2] == second
    assert (widget.review.states() != "not localized").all()


def _main_window(viewer):
    """The viewer's main window, found through Qt (no private napari)."""
    from napari.qt import QtViewer

    for widget in QApplication.topLevelWidgets():
        qt_viewer = widget.findChild(QtViewer) if isinstance(widget, QMainWindow) else None
        if qt_viewer is not None and qt_viewer.viewer is viewer:
            return widget
    raise AssertionError("no main window")


def _menu_action(window, menu: str, text: str):
    """The action ``text`` of the menu bar's ``menu`` (e.g. 'File', 'Open File(s)...')."""
    for top in window.menuBar().actions():
        if top.text().replace("&", "") == menu:
            for action in top.menu().actions():
                if action.text() == text:
                    return action
    raise AssertionError(f"no {menu} > {text}")


def _watch_choosers(qtbot, seen: list[str]):
    """Close (and record) napari's 'Choose reader' dialog whenever one is shown."""

    def look() -> None:
        for widget in QApplication.topLevelWidgets():
            if widget.isVisible() and widget.objectName() == "Choose reader":
                seen.append(widget.windowTitle())
                widget.reject()

    timer = QTimer()
    timer.timeout.connect(look)
    timer.start(20)
    return timer


def test_file_open_reads_a_session_with_napari_gerbil_and_no_chooser(
    make_napari_viewer, session_path, qtbot, monkeypatch
):
    from napari.settings import get_settings

    viewer = make_napari_viewer(show=True)
    window = _main_window(viewer)
    window.resize(1400, 900)
    get_settings().plugins.extension2reader = {}  # a fresh napari: no remembered reader
    _menu_action(window, "Plugins", "Review calls (Napari-gerbil)").trigger()
    widget = window.findChild(ReviewWidget)
    assert widget is not None and widget.review is None
    chosen = [str(session_path)]
    monkeypatch.setattr(
        QFileDialog, "getOpenFileNames", staticmethod(lambda *args, **kwargs: (chosen, ""))
    )
    choosers: list[str] = []
    timer = _watch_choosers(qtbot, choosers)
    try:
        _menu_action(window, "File", "Open File(s)...").trigger()
        qtbot.waitUntil(lambda: widget.review is not None, timeout=10000)
    finally:
        timer.stop()
    assert choosers == []  # was: napari's chooser, builtins preselected, then OSError
    assert str(widget.review.path) == str(session_path.absolute())
    assert widget.table.visible_calls()  # the dock shows its calls
    assert get_settings().plugins.extension2reader["*.gerbil.h5"] == "napari-gerbil"


def test_plugins_menu_toggles_the_review_and_spectrogram_docks_and_their_keys(
    make_napari_viewer, session_path, qtbot
):
    viewer = make_napari_viewer(show=True)
    window = _main_window(viewer)
    window.resize(1400, 900)
    viewer.open(session_path, plugin="napari-gerbil")
    toggle = _menu_action(window, "Plugins", "Review calls (Napari-gerbil)")
    toggle.trigger()
    widget = window.findChild(ReviewWidget)
    qtbot.waitUntil(lambda: widget.review is not None and widget.isVisible(), timeout=5000)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    spectrogram = widget.spectrogram
    assert spectrogram.isVisible()
    video = next(layer for layer in viewer.layers if layer.name.startswith("video"))
    viewer.layers.selection.active = video
    mode = video.mode
    widget.select_call(3)

    toggle.trigger()  # hide: both docks go
    qtbot.waitUntil(lambda: not widget.isVisible(), timeout=5000)
    assert not spectrogram.isVisible()
    mtime = session_path.stat().st_mtime_ns
    press(qtbot, canvas(window), "2")
    assert session_path.stat().st_mtime_ns == mtime  # no edit while hidden
    assert video.mode == mode  # and the key did not reach napari (transform mode)
    assert "hidden" in viewer.status

    toggle.trigger()  # show: both come back, the keys act again
    qtbot.waitUntil(lambda: widget.isVisible() and spectrogram.isVisible(), timeout=5000)
    assert not widget.closed
    press(qtbot, canvas(window), "2")
    assert load_session(session_path).user.animal[3] == 1


def test_a_cold_demo_build_shows_its_progress_in_the_terminal(
    make_napari_viewer, qtbot, tiny_ensemble_dir, tmp_path, monkeypatch, capfd
):
    """The demo's model build reports on stderr too (its cost, the training, is cut)."""
    from napari_gerbil._napari._demo import build_demo_model
    from napari_gerbil.training import ensembles
    from napari_gerbil.training.demo import demo_model_dir

    monkeypatch.setenv("NAPARI_GERBIL_HOME", str(tmp_path / "home"))

    def two_epochs(preset, config, data, model_dir, n_members, *, progress, **kwargs):
        for epoch in (1, 2):  # what the trainer reports after each epoch
            time.sleep(0.3)  # (tqdm draws at most every 0.1 s)
            progress({"member": 0, "epoch": epoch, "epochs": 2, "val_median_error_mm": 80.0})
        shutil.copytree(tiny_ensemble_dir, model_dir)

    monkeypatch.setattr(ensembles, "train_ensemble", two_epochs)
    viewer = make_napari_viewer(show=True)
    widget = open_dock(viewer, qtbot)
    capfd.readouterr()
    worker = build_demo_model(widget)
    assert worker is not None
    wait_job(qtbot, widget)
    err = capfd.readouterr().err
    assert "building the demo ensemble" in err
    assert "napari-gerbil: demo ensemble" in err and "epoch 2/2" in err  # the tqdm bar
    assert "demo ensemble ready" in err and "100%" in err
    assert "‰" not in err  # percent and times, no rate of thousandths ("‰/s")
    assert widget.model_section.model_dir.text() == str(demo_model_dir())
    assert build_demo_model(widget) is None  # built: nothing more to say


def test_minus_marks_the_call_ambiguous_listed_in_keys_and_undone_by_u(review, qtbot, session_path):
    from napari_gerbil._napari._calls_section import KeysList
    from napari_gerbil.io.session import AMBIGUOUS, NOT_REVIEWED

    viewer, widget = review
    keys_help = widget.findChild(KeysList, "keys_help")
    assert "-: ambiguous" in keys_help.text()
    click_row(qtbot, widget, 2)
    press(qtbot, canvas(widget), "-")
    assert load_session(session_path).user.animal[2] == AMBIGUOUS
    table = widget.table.table
    reviewed = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    row = widget.table._row_of_call[2]
    assert table.item(row, reviewed.index("reviewed")).text() == "ambiguous"  # shown
    press(qtbot, canvas(widget), "u")
    assert load_session(session_path).user.animal[2] == NOT_REVIEWED


def _luminance(rgba) -> float:
    return float(np.dot(np.asarray(rgba)[:3], [0.2126, 0.7152, 0.0722]))


def test_sets_of_no_animal_have_a_light_edge_on_a_dark_outline(review, qtbot, tiny_ensemble_dir):
    viewer, widget = review
    widget.sections["model"].set_expanded(True)
    widget.model_section.model_dir.setText(str(tiny_ensemble_dir))
    click(qtbot, widget, "localize_all")
    wait_job(qtbot, widget)
    click_row(qtbot, widget, 1)
    press(qtbot, canvas(widget), "0")  # no animal
    sets = widget.overlays.layer("sets")
    call_ids = np.asarray(sets.features["call_id"])
    pieces = np.flatnonzero(call_ids == widget.review.session.calls.call_id[1])
    edges = sets.edge_color[pieces]
    widths = np.asarray(sets.edge_width)[pieces]
    dark = [k for k, e in enumerate(edges) if _luminance(e) < 0.1]
    light = [k for k, e in enumerate(edges) if _luminance(e) > 0.85]
    assert dark and light  # was: one grey (0.75) edge, lost on a light-grey video
    assert min(widths[dark]) > max(widths[light])  # the outline shows on both sides
    assert min(dark) < min(light)  # drawn beneath
    click_row(qtbot, widget, 2)
    press(qtbot, canvas(widget), "1")  # an animal: its colour, no outline
    pieces = np.flatnonzero(
        np.asarray(sets.features["call_id"]) == widget.review.session.calls.call_id[2]
    )
    assert all(_luminance(e) > 0.1 for e in sets.edge_color[pieces])


def test_nothing_is_clipped_in_a_1500_by_950_window(review, qtbot):
    from qtpy.QtWidgets import QAbstractSpinBox, QComboBox

    viewer, widget = review
    window = widget.window()
    window.resize(1500, 950)
    qtbot.waitUntil(lambda: window.width() == 1500 and window.height() == 950, timeout=5000)
    boxes = widget.spectrogram.findChildren((QAbstractSpinBox, QComboBox, QPushButton))
    assert len(boxes) >= 7

    def whole(box) -> bool:  # was: 90 px spin boxes needing 132
        return box.isVisible() and box.width() >= box.minimumSizeHint().width()

    qtbot.waitUntil(lambda: all(whole(box) for box in boxes))  # laid out: not a fixed time
    table = widget.table.table
    header = table.horizontalHeader()
    assert not table.horizontalScrollBar().isVisible()  # was: the state column cut off
    for column in range(table.columnCount()):
        shown = header.sectionSize(column)
        needed = max(table.sizeHintForColumn(column), header.sectionSizeHint(column))
        assert shown >= needed - 4, table.horizontalHeaderItem(column).text()
    right = header.sectionViewportPosition(table.columnCount() - 1) + header.sectionSize(
        table.columnCount() - 1
    )
    assert right <= table.viewport().width()
