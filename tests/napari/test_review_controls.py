"""Every control of the review dock as a user meets it.

Each button clicked with the mouse, each review key pressed whatever layer is active or with
the table focused, and closing the dock leaves nothing behind.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from gui_helpers import activate, canvas, click, click_row, open_dock, press, wait_job
from qtpy.QtCore import Qt
from qtpy.QtGui import QShortcut
from qtpy.QtWidgets import QDockWidget, QFileDialog, QPushButton

from napari_gerbil._napari import _playback
from napari_gerbil._napari._spectrogram import SpectrogramWidget
from napari_gerbil._napari._widget import SPECTROGRAM_DOCK, ReviewWidget
from napari_gerbil.io.session import NOT_REVIEWED, UNASSIGNED, load_session

pytestmark = pytest.mark.gui


@pytest.fixture
def review(make_napari_viewer, session_path, qtbot):
    viewer = make_napari_viewer(show=True)
    return viewer, open_dock(viewer, qtbot, session_path)


def _status(widget) -> str:
    return widget.calls_section.status.text()


def test_every_button_of_the_dock_works_with_a_real_click(
    review, qtbot, tiny_ensemble_dir, monkeypatch, tmp_path
):
    """Qt's clicked(bool) must never reach a slot.

    Each button is clicked as a user does, and the set of buttons clicked here is every
    button the dock has.
    """
    viewer, widget = review
    path = widget.review.path
    folder = path.parent
    csv = tmp_path / "segments.csv"
    csv.write_text("start_seconds,stop_seconds\n2.9,2.95\n")
    mics = tmp_path / "mics.csv"
    mics.write_text("-275,-175,340\n275,-175,340\n275,175,340\n-275,175,340\n")
    answers = {
        "Open session": str(path),
        "Segments table": str(csv),
        "Choose audio": str(folder / "audio.h5"),
        "Choose video": str(folder / "video.mp4"),
        "Choose tracks": str(folder / "poses.h5"),
        "Mic positions": str(mics),
        "Save session as": str(tmp_path / "new.gerbil.h5"),
    }
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda _p, title, *a: (answers[title], ""))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda _p, title, *a: (answers[title], ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a: str(tiny_ensemble_dir))
    monkeypatch.setattr("napari_gerbil.training.demo.demo_model_dir", lambda: tiny_ensemble_dir)
    for section in widget.sections.values():
        section.set_expanded(True)
    clicked: set[str] = set()

    def press_button(name: str, parent=widget) -> None:
        click(qtbot, parent, name)
        clicked.add(name)
        assert not _status(widget).startswith("error"), _status(widget)

    press_button("open_session")  # the same session again: still one copy of its layers
    assert widget.review.path == path and len(viewer.layers) == 7
    press_button("choose_model")
    assert widget.model_section.model_dir.text() == str(tiny_ensemble_dir)
    widget.model_section.model_dir.clear()
    press_button("use_demo_model")
    assert widget.model_section.model_dir.text() == str(tiny_ensemble_dir)

    click_row(qtbot, widget, 1)
    assert widget.current == 1
    press_button("localize_selected")  # failed with "'bool' object is not iterable"
    wait_job(qtbot, widget)
    assert widget.review.localized().tolist() == [False, True, False, False, False, False]
    monkeypatch.setattr("napari_gerbil._napari._jobs.LOCALIZE_BATCH", 1)
    press_button("localize_all")
    press_button("cancel_job")
    wait_job(qtbot, widget)
    assert re.fullmatch(r"(cancelled|done): localized \d of 6 calls", widget.jobs.progress.format())
    click(qtbot, widget, "localize_all")
    wait_job(qtbot, widget)
    assert widget.review.localized().all()
    assert widget.jobs.progress.format() == "done: localized 6 of 6 calls"

    press_button("next_uncertain")
    index = widget.current
    press_button("accept_call")
    assert load_session(path).user.animal[index] == widget.review.predicted_animal()[index]
    assert _status(widget).endswith("confirmed")
    press_button("undo")
    assert load_session(path).user.animal[index] == NOT_REVIEWED
    press_button("redo")
    assert load_session(path).user.animal[index] != NOT_REVIEWED
    zoom = viewer.camera.zoom
    press_button("zoom_to_call")
    assert viewer.camera.zoom != zoom

    widget.select_call(2)
    start_s, stop_s = widget.review.call_time_s(2)
    widget.calls_section.call_stop_s.setValue(stop_s + 0.01)
    press_button("set_call_bounds")
    assert load_session(path).calls.stop_sample[2] / 125000.0 == pytest.approx(stop_s + 0.01)
    press_button("delete_call")
    assert load_session(path).n_calls == 5
    press_button("play_call")
    assert "playing call" in _status(widget) or "cannot play call" in _status(widget)
    assert _playback.last_played.duration_s == pytest.approx(
        10 * (np.diff(widget.review.call_time_s(widget.current))[0]), rel=0.01
    )
    press_button("show_keys")
    assert widget.calls_section.keys_list.isVisible()
    assert "Ctrl+Z" in widget.calls_section.keys_list.text()

    press_button("detect_calls")
    wait_job(qtbot, widget)
    assert _status(widget).startswith("added")
    press_button("import_segments")
    assert load_session(path).n_calls >= 6

    for index, animal in ((0, 0), (1, 1)):
        widget.select_call(index)
        widget.assign_current(animal)
    export = tmp_path / "export.h5"
    widget.finetune_section.export_path.setText(str(export))
    press_button("export_vcl")  # failed with "'bool' object has no attribute 'out_path'"
    assert export.exists() and _status(widget).startswith("exported")
    press_button("retrain")  # too few reviewed calls: refused, saying how many more
    assert re.search(r"review \d+ more", _status(widget)) and not widget.jobs.busy()

    press_button("spectrogram_auto_db", widget.spectrogram)

    new = widget.new_session  # last: creating a session replaces the one under review
    for key in ("audio", "video", "tracks", "out"):
        press_button(f"choose_new_{key}")
    press_button("load_new_mics")
    assert new.mics.text().startswith("-275, -175, 340")
    press_button("click_corners")
    arena = load_session(path).arena
    rc = arena.to_pixels(arena.corners_mm())
    viewer.layers["arena corners (click 4)"].data = np.column_stack([np.zeros(4), rc])
    press_button("create_session")
    assert widget.review.path == tmp_path / "new.gerbil.h5"
    assert {layer.metadata.get("napari_gerbil_session") for layer in viewer.layers} == {
        str(tmp_path / "new.gerbil.h5")
    }

    every = {b.objectName() for b in widget.findChildren(QPushButton)}
    every |= {b.objectName() for b in widget.spectrogram.findChildren(QPushButton)}
    # "Use new model" is enabled by a finished fine-tune: clicked in test_finetune_honest
    assert every - clicked == {"use_finetuned_model"}


def _check_keys_on(qtbot, widget, target, path) -> None:
    """Every review key acts on the review when pressed on ``target``."""
    widget.select_call(1)
    press(qtbot, target, "2")
    assert load_session(path).user.animal[1] == 1
    assert widget.calls_section.status.text() == "call 1 → gerbil B, corrected"
    press(qtbot, target, "1")
    assert load_session(path).user.animal[1] == 0
    press(qtbot, target, "0")
    assert load_session(path).user.animal[1] == UNASSIGNED
    press(qtbot, target, "u")
    press(qtbot, target, "Ctrl+Z")
    assert load_session(path).user.animal[1] == 1
    press(qtbot, target, "r")
    press(qtbot, target, "Ctrl+Shift+Z")
    assert load_session(path).user.animal[1] == UNASSIGNED
    press(qtbot, target, "a")  # not localized: nothing to accept, and nothing recorded
    assert "not localized" in widget.calls_section.status.text()
    assert load_session(path).user.animal[1] == UNASSIGNED
    press(qtbot, target, "n")
    assert widget.current == 2
    press(qtbot, target, "p")
    assert widget.current == 1
    press(qtbot, target, "m")
    assert "every localized call is reviewed" in widget.calls_section.status.text()
    press(qtbot, target, "x")
    assert load_session(path).n_calls == 5
    press(qtbot, target, "u")
    assert load_session(path).n_calls == 6 and widget.current == 1
    press(qtbot, target, "Delete")
    assert load_session(path).n_calls == 5
    press(qtbot, target, "u")
    press(qtbot, target, "z")
    press(qtbot, target, "l")
    assert "call 1" in widget.calls_section.status.text()
    widget.review.session.user.animal[1] = NOT_REVIEWED  # next round starts afresh
    widget.review.save()


def test_review_keys_act_whatever_layer_is_active_and_with_the_table_focused(review, qtbot):
    viewer, widget = review
    path = widget.review.path
    for layer in list(viewer.layers):
        viewer.layers.selection.active = layer
        mode = getattr(layer, "mode", None)
        shapes = getattr(layer, "nshapes", None)
        n_layers = len(viewer.layers)
        target = canvas(widget)
        target.setFocus()
        _check_keys_on(qtbot, widget, target, path)
        assert getattr(layer, "mode", None) == mode, f"{layer.name} switched mode"
        assert getattr(layer, "nshapes", None) == shapes and len(viewer.layers) == n_layers
    table = widget.table.table
    click_row(qtbot, widget, 3)
    assert table.hasFocus() and widget.current == 3
    press(qtbot, table, "2")  # Qt's type-to-search would jump to call 2
    assert widget.current == 3 and load_session(path).user.animal[3] == 1
    _check_keys_on(qtbot, widget, table, path)
    mtime = path.stat().st_mtime_ns
    for digit in range(3, 10):  # two animals in this session: said, nothing written
        press(qtbot, canvas(widget), str(digit))
        assert widget.calls_section.status.text() == f"no animal {digit} in this session"
    assert path.stat().st_mtime_ns == mtime
    # text fields keep their typing
    field = widget.session_section.path
    field.setFocus()
    field.clear()
    press(qtbot, field, "2")
    assert field.text() == "2" and load_session(path).user.animal[widget.current] == NOT_REVIEWED


def _live_shortcuts(window) -> list:
    return [
        s for s in window.findChildren(QShortcut)
        if s.objectName().startswith("gerbil_key_") and s.isEnabled()
    ]  # fmt: skip


def test_closing_the_dock_leaves_nothing_and_reopening_gives_one_live_copy(
    make_napari_viewer, session_path, qtbot, recwarn
):
    viewer = make_napari_viewer(show=True)
    viewer.open(session_path, plugin="napari-gerbil")
    _, old = viewer.window.add_plugin_dock_widget("napari-gerbil", "Review calls")
    activate(old, qtbot)
    qtbot.waitUntil(lambda: old.review is not None, timeout=5000)
    window = old.window()
    assert len(_live_shortcuts(window)) > 20
    assert not [w for w in recwarn if "_qt_" in str(w.message)]  # no private napari
    hide = old.parent().findChild(QPushButton, "QTitleBarHideButton")
    qtbot.mouseClick(hide, Qt.MouseButton.LeftButton)  # hidden: the keys keep quiet
    mtime = session_path.stat().st_mtime_ns
    press(qtbot, canvas(window), "2")
    assert session_path.stat().st_mtime_ns == mtime and not old.isVisible()
    old.parent().show()  # Window menu: shown again, the same live copy
    activate(old, qtbot)
    assert not old.closed and len(_live_shortcuts(window)) > 20
    close = old.parent().findChild(QPushButton, "QTitleBarCloseButton")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)  # the dock title bar's close button
    qtbot.waitUntil(lambda: old.closed and old.review is None)
    docks = [d.windowTitle() for d in window.findChildren(QDockWidget) if d.isVisible()]
    assert SPECTROGRAM_DOCK not in docks
    assert _live_shortcuts(window) == []
    assert old._on_mouse_drag not in viewer.mouse_drag_callbacks
    time_s = old.spectrogram.time_s
    viewer.dims.set_current_step(0, 40)  # the closed copy no longer follows the slider
    assert old.spectrogram.time_s == time_s
    mtime = session_path.stat().st_mtime_ns
    press(qtbot, canvas(window), "2")  # its keys are gone: nothing written
    assert session_path.stat().st_mtime_ns == mtime

    _, new = viewer.window.add_plugin_dock_widget("napari-gerbil", "Review calls")
    activate(new, qtbot)
    qtbot.waitUntil(lambda: new.review is not None, timeout=5000)
    assert new is not old
    live = [w for w in window.findChildren(ReviewWidget) if not w.closed]
    assert live == [new]
    qtbot.waitUntil(  # the old spectrogram dock is deleted (later), the new one shown
        lambda: (
            window.findChildren(SpectrogramWidget) == [new.spectrogram]
            and new.spectrogram.isVisible()
        )
    )
    assert len(_live_shortcuts(window)) == len(new.shortcuts.shortcuts)
    names = [layer.name for layer in viewer.layers]
    assert sorted(names) == sorted(set(names))  # no layer twice
    new.select_call(4)
    press(qtbot, canvas(new), "2")
    on_disk = load_session(session_path)
    assert on_disk.user.animal[4] == 1 and (on_disk.user.animal != NOT_REVIEWED).sum() == 1
    assert on_disk.user == new.review.session.user


def test_a_second_session_replaces_the_first(review, session_path, qtbot):
    viewer, widget = review
    other = session_path.with_name("other.gerbil.h5")
    shutil.copy(session_path, other)
    widget.select_call(3)
    names = sorted(layer.name for layer in viewer.layers)
    viewer.open(other, plugin="napari-gerbil")  # File > Open of another session
    qtbot.waitUntil(lambda: widget.review.path == other, timeout=5000)
    assert sorted(layer.name for layer in viewer.layers) == names  # replaced, not stacked
    sessions = {layer.metadata.get("napari_gerbil_session") for layer in viewer.layers}
    assert sessions == {str(other)}
    assert widget.current == 0  # opens at its first call, bounds boxes of that call
    start_s, stop_s = widget.review.call_time_s(0)
    assert widget.calls_section.call_start_s.value() == pytest.approx(start_s, abs=1e-4)
    assert viewer.dims.current_step[0] == widget.review.call_frame(0)
    other.unlink()


def test_spectrogram_frequency_zoom_and_zoom_to_call(review, qtbot):
    viewer, widget = review
    spectrogram = widget.spectrogram
    spectrogram.khz_min.setValue(30.0)
    spectrogram.khz_max.setValue(50.0)
    assert spectrogram.axes.get_ylim() == pytest.approx((30.0, 50.0))
    spectrogram.khz_max.setValue(400.0)  # clipped to the recording's Nyquist (62.5 kHz)
    assert spectrogram.axes.get_ylim() == pytest.approx((30.0, 62.5))
    widget.select_call(4)
    frame = viewer.dims.current_step[0]
    animals = widget.poses.rc_px[frame, :, 0]  # (2 animals, row/col): both in view
    press(qtbot, canvas(widget), "z")
    height, width = viewer.canvas.size
    half = np.array([height, width]) / viewer.camera.zoom / 2
    centre = np.asarray(viewer.camera.center)[-2:]
    assert np.all(np.abs(animals - centre) <= half)
    assert viewer.camera.zoom > 1.5  # closer than the whole 130 x 180 px frame


UNEXPECTED_ERROR_SCRIPT = """
import sys
import napari
from qtpy.QtCore import Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QPushButton
from napari_gerbil._napari._widget import ReviewWidget

viewer = napari.Viewer(show=False)
widget = ReviewWidget(viewer)
widget.open_session(sys.argv[1])

def boom():
    raise RuntimeError("unexpected")

widget.review.undo = boom
QTest.mouseClick(widget.findChild(QPushButton, "undo"), Qt.MouseButton.LeftButton)
print("ALIVE", flush=True)
"""


def test_an_unexpected_error_in_a_button_does_not_abort_the_application(session_path):
    """An error in a button's action is reported, and the application goes on.

    Outside napari.run() an exception unwinding into Qt aborts the process (-6).
    """
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", UNEXPECTED_ERROR_SCRIPT, str(session_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ALIVE" in result.stdout and "RuntimeError: unexpected" in result.stderr


def test_play_call_without_portaudio_says_what_to_install(review, qtbot, monkeypatch):
    """As after a set-up without libportaudio2: sounddevice's import raises OSError."""
    import builtins

    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    viewer, widget = review
    click_row(qtbot, widget, 1)
    press(qtbot, canvas(widget), "l")
    qtbot.waitUntil(lambda: "cannot play call 1" in _status(widget))
    assert "apt install libportaudio2" in _status(widget)
    assert "scripts/install_system_deps.sh" in _status(widget)
