"""The review loop in a real napari viewer (under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import canvas, open_dock, press
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QPushButton, QScrollArea

from napari_gerbil._napari._calls_section import MIN_TABLE_ROWS
from napari_gerbil._napari._overlays import LAYER_NAMES
from napari_gerbil._napari._widget import ReviewWidget
from napari_gerbil.io.session import NOT_REVIEWED, UNASSIGNED, load_session

pytestmark = pytest.mark.gui


@pytest.fixture
def review(make_napari_viewer, session_path, qtbot):
    """A shown viewer with the session opened through the plugin's reader, and the dock."""
    viewer = make_napari_viewer(show=True)
    widget = open_dock(viewer, qtbot, session_path)
    return viewer, widget


@pytest.fixture
def keys(review, qtbot):
    """Press a key on the canvas, as a user does."""
    _, widget = review

    def _press(key: str) -> None:
        press(qtbot, canvas(widget), key)

    return _press


def test_session_opens_with_video_tracks_spectrogram_and_table(review, session_path):
    viewer, widget = review
    names = [layer.name for layer in viewer.layers]
    for name in ("video", "tracks", "arena", "poses", LAYER_NAMES["sets"], "estimates"):
        assert name in names
    video = viewer.layers["video"]
    assert video.data.shape == (60, 130, 180, 3) and video.rgb
    assert type(video.data).__name__ == "VideoReader"  # lazy, not an array
    tracks = viewer.layers["tracks"]
    assert set(np.unique(tracks.data[:, 0])) == {0, 1} and len(tracks.data) == 120
    poses = viewer.layers["poses"]
    assert len(poses._view_data) == 4  # 2 animals x 2 nodes at the current frame
    assert widget.spectrogram.spectrogram is not None
    assert widget.spectrogram.spectrogram.power_db.shape[1] > 10
    assert widget.table.table.rowCount() == 6
    assert widget.review.path == session_path


def test_poses_are_sleap_xy_mapped_to_row_col(review):
    viewer, widget = review
    viewer.dims.set_current_step(0, 7)
    poses = viewer.layers["poses"]
    xy = widget.poses.at_frames([7])[0].reshape(-1, 2)
    np.testing.assert_allclose(poses._view_data, xy[:, ::-1])  # what napari shows
    at_7 = poses.data[:, 0] == 7
    np.testing.assert_allclose(poses.data[at_7, 1:], xy[:, ::-1])
    assert list(poses.features["animal"][at_7]) == [0, 0, 1, 1]
    # the animal's body drawn in the video frame is where the pose says (row, col)
    frame = viewer.layers["video"].data[7]
    row, col = np.round(widget.poses.rc_px[7, 0, 1]).astype(int)
    np.testing.assert_allclose(frame[row, col], [60, 160, 255], atol=40)


def test_selecting_a_call_jumps_the_frame_slider_and_centres_the_spectrogram(review):
    viewer, widget = review
    rate = widget.review.session.audio.sample_rate_hz
    calls = widget.review.session.calls
    updates = widget.spectrogram.n_window_updates
    widget.table.table.selectRow(_row_of(widget, 3))
    middle_s = (calls.start_sample[3] + calls.stop_sample[3]) / 2 / rate
    assert widget.current == 3
    assert widget.spectrogram.n_window_updates == updates + 1  # one window computed
    assert viewer.dims.current_step[0] == round(middle_s * 20.0)
    spec = widget.spectrogram.spectrogram
    assert spec.start_s < middle_s < spec.stop_s
    assert abs((spec.start_s + spec.stop_s) / 2 - middle_s) < 0.06


def test_spectrogram_click_and_frame_slider_are_synced(review):
    viewer, widget = review
    widget.spectrogram.seek_requested.emit(1.5)  # what a click at t = 1.5 s emits
    assert viewer.dims.current_step[0] == 30
    viewer.dims.set_current_step(0, 31)
    assert widget.spectrogram.time_s == pytest.approx(31 / 20.0)
    assert widget.spectrogram.playhead.get_xdata()[0] == pytest.approx(31 / 20.0)


def _row_of(widget, index: int) -> int:
    return widget.table._row_of_call[index]


def _localize(qtbot, widget, indices, model_dir):
    widget.model_section.model_dir.setText(str(model_dir))
    worker = widget.model_section.localize(indices)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120000):
        pass
    qtbot.waitUntil(lambda: not widget.jobs.busy(), timeout=5000)


def test_localize_draws_sets_with_call_ids_and_saves(review, qtbot, tiny_ensemble_dir):
    viewer, widget = review
    _localize(qtbot, widget, [0, 1, 2, 3, 4, 5], tiny_ensemble_dir)
    widget.select_call(2)
    sets = viewer.layers["where the call came from (95% set)"]
    assert sets.nshapes >= 1
    ids = set(sets.features["call_id"].tolist())
    assert 2 in ids
    assert set(sets.shape_type) == {"polygon"}
    # only calls near the current time are drawn
    t = widget.current_time_s()
    rate = widget.review.session.audio.sample_rate_hz
    for call_id in ids:
        start = widget.review.session.calls.start_sample[call_id] / rate
        assert call_id == 2 or abs(start - t) < 1.2
    estimates = viewer.layers["estimates"]
    assert 2 in estimates.features["call_id"].tolist()
    on_disk = load_session(widget.review.path)
    assert np.isfinite(on_disk.predictions.point_mm).all()
    assert np.all(on_disk.predictions.set_area_mm2 > 0)
    assert on_disk.predicted.probabilities.shape == (6, 2)
    assert (widget.review.states() != "not localized").all()
    # the layer is updated incrementally: after edits, moves and deletions it still
    # holds exactly the visible calls' sets, each with its call's id and style
    _assert_sets_match_calls(widget, sets)
    widget.assign_current(1)
    _assert_sets_match_calls(widget, sets)
    assert set(sets.features["animal"][sets.features["call_id"] == 2]) == {1}
    widths = np.asarray(sets.edge_width)[sets.features["call_id"].to_numpy() == 2]
    assert np.all(widths == widget.overlays.set_style.edited_edge_width_px)
    # outlines, except the selected call's set: filled and labelled with its call id
    call_ids = sets.features["call_id"].to_numpy()
    faces = np.asarray(sets.face_color)
    assert np.all(faces[call_ids != 2, 3] == 0) and np.all(faces[call_ids == 2, 3] > 0.2)
    labels = sets.features["label"].to_numpy()
    assert "call 2" in labels.tolist() and set(labels[call_ids != 2]) <= {""}
    assert "call 2" in [str(t) for t in sets.text.values]
    widget.select_call(5)
    _assert_sets_match_calls(widget, sets)
    widget.delete_current()
    _assert_sets_match_calls(widget, sets)
    assert 5 not in sets.features["call_id"].tolist()


def _assert_sets_match_calls(widget, sets) -> None:
    calls = widget.review.session.calls
    visible = widget.visible_calls(widget.current_time_s())
    drawn = [int(np.flatnonzero(calls.call_id == c)[0]) for c in sets.features["call_id"]]
    assert set(drawn) == set(visible.tolist()) and len(drawn) == sets.nshapes
    animal = widget.review.session.effective_attribution()
    for k, index in enumerate(drawn):
        pieces = widget.overlays.set_polygons_px(widget.review.session, index)
        assert any(np.allclose(sets.data[k], p) for p in pieces)
        assert sets.features["animal"][k] == animal[index]


def test_keys_correct_save_at_once_and_undo_redo(review, keys):
    viewer, widget = review
    widget.select_call(1)
    keys("2")
    on_disk = load_session(widget.review.path)
    assert on_disk.user.animal[1] == 1 and np.isfinite(on_disk.user.edit_time_s[1])
    assert widget.review.states()[1] == "corrected"
    assert widget.calls_section.status.text() == "call 1 → gerbil B, corrected"
    # predicted (empty: never localized) beside reviewed, in the table
    keys_of = [c[1] for c in widget.table.columns]  # with one p column per animal
    row = widget.table._row_of_call[1]
    cell = widget.table.table.item
    assert cell(row, keys_of.index("predicted_name")).text() == ""
    assert cell(row, keys_of.index("reviewed_name")).text() == "gerbil B"
    keys("0")
    assert load_session(widget.review.path).user.animal[1] == UNASSIGNED
    keys("Ctrl+Z")
    assert load_session(widget.review.path).user.animal[1] == 1
    keys("u")
    assert load_session(widget.review.path).user.animal[1] == NOT_REVIEWED
    keys("r")
    assert load_session(widget.review.path).user.animal[1] == 1
    keys("n")
    assert widget.current == 2
    keys("p")
    assert widget.current == 1


def test_clicking_an_animals_pose_assigns_it(review):
    viewer, widget = review
    widget.select_call(4)
    frame = viewer.dims.current_step[0]
    nose_b = widget.poses.rc_px[frame, 1, 0]

    class Click:
        button = 1
        type = "mouse_press"
        position = (frame, *nose_b)

    event = Click()
    gen = widget._on_mouse_drag(viewer, event)
    next(gen)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(gen)
    assert load_session(widget.review.path).user.animal[4] == 1


def test_detect_and_import_add_calls(review, qtbot, tmp_path):
    viewer, widget = review
    # the six planted calls are found again, so detection adds none of them twice
    worker = widget.detect_section.detect()
    with qtbot.waitSignal(worker.finished, timeout=120000):
        pass
    assert widget.review.n_calls == 6
    csv = tmp_path / "segments.csv"
    csv.write_text("start_seconds,stop_seconds\n0.05,0.07\n0.31,0.32\n2.9,2.95\n")
    assert widget.detect_section.import_segments(csv) == 2  # 0.31 s overlaps call 0
    assert widget.table.table.rowCount() == 8
    assert load_session(widget.review.path).n_calls == 8
    widget.table.state_filter.setCurrentText("not localized")
    assert len(widget.table.visible_calls()) == 8
    widget.table.state_filter.setCurrentText("confirmed")
    assert widget.table.visible_calls() == []


def test_widget_opened_first_adopts_a_session_opened_later(make_napari_viewer, session_path, qtbot):
    viewer = make_napari_viewer()
    widget = ReviewWidget(viewer)
    viewer.open(session_path, plugin="napari-gerbil")
    qtbot.waitUntil(lambda: widget.review is not None, timeout=5000)
    names = [layer.name for layer in viewer.layers]
    assert sorted(names) == sorted(set(names))  # no layer twice
    assert {"video", "tracks", "poses", "where the call came from (95% set)"} <= set(names)


def _drag_spectrogram(widget, from_s: float, to_s: float) -> None:
    """Press, move and release the left button on the spectrogram, as matplotlib does."""
    from matplotlib.backend_bases import MouseEvent

    spec = widget.spectrogram
    spec.canvas.draw()  # lay out the axes at the current window
    y_khz = float(np.mean(spec.axes.get_ylim()))
    for name, t_s, button in (
        ("button_press_event", from_s, 1),
        ("motion_notify_event", (from_s + to_s) / 2, None),
        ("motion_notify_event", to_s, None),
        ("button_release_event", to_s, 1),
    ):
        x, y = spec.axes.transData.transform((t_s, y_khz))
        spec.canvas.callbacks.process(name, MouseEvent(name, spec.canvas, x, y, button=button))


def test_dragging_on_the_spectrogram_adds_a_call_and_undo_removes_it(review, qtbot):
    viewer, widget = review
    widget.select_call(0)  # spectrogram window around 0.3 s
    rate = widget.review.session.audio.sample_rate_hz
    _drag_spectrogram(widget, 0.45, 0.52)
    on_disk = load_session(widget.review.path)
    assert on_disk.n_calls == 7 and widget.table.table.rowCount() == 7
    assert on_disk.calls.start_sample[6] / rate == pytest.approx(0.45, abs=0.005)
    assert on_disk.calls.stop_sample[6] / rate == pytest.approx(0.52, abs=0.005)
    assert widget.current == 6 and widget.review.states()[6] == "not localized"
    _drag_spectrogram(widget, 0.49, 0.5)  # overlaps the new call: refused, nothing saved
    assert load_session(widget.review.path).n_calls == 7
    press(qtbot, canvas(widget), "u")
    assert load_session(widget.review.path).n_calls == 6 and widget.table.table.rowCount() == 6


def test_dragging_an_edge_of_the_selected_call_moves_its_bounds(review):
    _, widget = review
    widget.select_call(0)
    start_s, stop_s = widget.review.call_time_s(0)
    _drag_spectrogram(widget, stop_s, stop_s + 0.03)
    on_disk = load_session(widget.review.path)
    rate = on_disk.audio.sample_rate_hz
    assert on_disk.n_calls == 6
    assert on_disk.calls.start_sample[0] / rate == pytest.approx(start_s, abs=1e-4)
    assert on_disk.calls.stop_sample[0] / rate == pytest.approx(stop_s + 0.03, abs=0.005)
    assert widget.current == 0


def test_bounds_boxes_and_delete_key_edit_the_selected_call(review, keys):
    viewer, widget = review
    widget.select_call(2)
    start_s, stop_s = widget.review.call_time_s(2)
    bounds = widget.calls_section
    assert bounds.call_start_s.value() == pytest.approx(start_s, abs=1e-4)
    bounds.call_start_s.setValue(start_s - 0.01)
    widget.findChild(QPushButton, "set_call_bounds").click()
    rate = widget.review.session.audio.sample_rate_hz
    on_disk = load_session(widget.review.path)
    assert on_disk.calls.start_sample[2] / rate == pytest.approx(start_s - 0.01, abs=1e-4)
    widget.select_call(3)
    keys("x")
    on_disk = load_session(widget.review.path)
    assert list(on_disk.calls.call_id) == [0, 1, 2, 4, 5]
    assert widget.table.table.rowCount() == 5 and widget.current == 3  # the next call
    keys("u")
    assert list(load_session(widget.review.path).calls.call_id) == [0, 1, 2, 3, 4, 5]
    assert widget.current == 3  # the call brought back is selected
    assert widget.calls_section.status.text() == "undone: 6 calls"


def test_new_session_from_clicked_corners_opens_for_review(
    make_napari_viewer, built_session, tmp_path
):
    from napari_gerbil._napari._create import CORNERS_LAYER

    viewer = make_napari_viewer()
    widget = ReviewWidget(viewer)
    section = widget.new_session
    folder = built_session[0].parent
    arena = load_session(built_session[0]).arena
    for key, path in (
        ("audio", folder / "audio.h5"),
        ("video", folder / "video.mp4"),
        ("tracks", folder / "poses.h5"),
        ("out", tmp_path / "new.gerbil.h5"),
    ):
        section.paths[key].setText(str(path))
    section.findChild(QPushButton, "create_session").click()  # no corners yet: refused
    assert "4 clicked points" in section.status.text() and widget.review is None
    section.findChild(QPushButton, "click_corners").click()
    corners = viewer.layers[CORNERS_LAYER]
    assert corners.mode == "add"
    rc = arena.to_pixels(arena.corners_mm())
    inside = rc.copy()
    inside[2] = rc.mean(axis=0)  # a click in the middle of the floor: refused, said why
    corners.data = np.column_stack([np.zeros(4), inside])  # what 4 clicks on frame 0 add
    section.findChild(QPushButton, "create_session").click()
    assert widget.review is None and not (tmp_path / "new.gerbil.h5").exists()
    assert "convex" in section.status.text()
    assert "(-x, -y), (+x, -y), (+x, +y), (-x, +y)" in section.status.text()
    # sides crossed (2nd and 3rd corners swapped): taken in the documented order
    corners.data = np.column_stack([np.zeros(4), rc[[0, 2, 1, 3]]])
    section.findChild(QPushButton, "create_session").click()
    assert widget.review is not None and widget.review.path == tmp_path / "new.gerbil.h5"
    assert "reordered" in section.status.text()
    assert CORNERS_LAYER not in viewer.layers and "video" in viewer.layers
    xy = np.array([[-100.0, 50.0]])
    np.testing.assert_allclose(widget.review.session.arena.to_pixels(xy), arena.to_pixels(xy))
    assert widget.sections["detect"].is_expanded()  # no calls yet: detection is shown
    assert widget.add_call_s(0.5, 0.55) == 0  # review starts: calls can be added
    assert load_session(tmp_path / "new.gerbil.h5").n_calls == 1


def test_poses_layer_holds_a_window_of_frames_that_napari_slices(review):
    """Frame steps do not rewrite the poses layer.

    It holds the frames around the current one (here a tiny window of 10 frames each
    side) and is refilled only near its ends.
    """
    from napari_gerbil._napari._styles import PoseStyle

    viewer, widget = review
    widget.overlays.pose_style = PoseStyle(max_pose_points=80)  # 4 points per frame
    widget.overlays.pose_window = None
    viewer.dims.set_current_step(0, 0)
    poses = viewer.layers["poses"]
    refills = widget.overlays.n_pose_windows
    for frame in [*range(1, 60), 3, 58, 30]:  # steps forward, then jumps
        viewer.dims.set_current_step(0, frame)
        xy = widget.poses.at_frames([frame])[0].reshape(-1, 2)
        np.testing.assert_allclose(poses._view_data, xy[:, ::-1])
        assert poses.data[:, 0].max() - poses.data[:, 0].min() <= 20
    assert 5 <= widget.overlays.n_pose_windows - refills <= 20  # not once per step (62 steps)


def test_dock_sections_fold_and_the_calls_table_takes_the_spare_height(
    make_napari_viewer, session_path, qtbot
):
    """Every step waits for its condition (a loaded machine lays out late), never a time."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 950)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Review calls", area="right")
    widget.open_session(session_path)
    table = widget.table.table
    qtbot.waitUntil(table.isVisible)
    sections = widget.sections
    expanded = {name: part.is_expanded() for name, part in sections.items()}
    assert expanded == {
        "session": True,
        "new_session": False,
        "detect": False,  # the session has calls
        "model": True,
        "evidence": True,  # the legend and the selected call's evidence
        "calls": True,
        "finetune": False,
    }
    export_path = widget.finetune_section.export_path
    assert not export_path.isVisible()

    def rows_fitting() -> float:
        return table.viewport().height() / table.verticalHeader().defaultSectionSize()

    def fold(name: str) -> None:  # a click on the section's title
        qtbot.mouseClick(sections[name].header, Qt.MouseButton.LeftButton)

    # the dock runs the window's full height, beside (not above) the spectrogram dock
    window = widget.window()

    def beside_spectrogram() -> bool:
        dock = widget.mapTo(window, widget.rect().bottomLeft())
        spectrogram = widget.spectrogram.mapTo(window, widget.spectrogram.rect().topRight())
        return dock.y() > spectrogram.y() and dock.x() > spectrogram.x()

    qtbot.waitUntil(beside_spectrogram)
    qtbot.waitUntil(lambda: rows_fitting() >= 8)
    default_rows = rows_fitting()
    fold("model")  # fold: the table gets its height
    qtbot.waitUntil(lambda: rows_fitting() > default_rows)
    assert not widget.model_section.model_dir.isVisible()
    fold("finetune")  # unfold: the table gives some back
    qtbot.waitUntil(lambda: export_path.isVisible() and 4 <= rows_fitting() < default_rows)
    fold("calls")  # all but fine-tune (and session) folded: sections stay on top
    fold("evidence")
    qtbot.waitUntil(lambda: not table.isVisible())
    qtbot.waitUntil(lambda: sections["finetune"].geometry().bottom() < widget.height() / 2)
    # a folded section's controls still work (the widget finds them by name)
    assert widget.findChild(QPushButton, "detect_calls") is not None
    # all unfolded: more than the dock's height, so the sections scroll (not squeezed)
    for name, part in sections.items():
        if not part.is_expanded():
            fold(name)
    scroll = widget.findChild(QScrollArea, "review_scroll")
    qtbot.waitUntil(scroll.verticalScrollBar().isVisible)
    assert scroll.viewport().width() >= scroll.widget().minimumSizeHint().width()  # no clip
    qtbot.waitUntil(lambda: rows_fitting() >= MIN_TABLE_ROWS)  # rows that stay visible


def test_a_localized_session_opens_at_its_first_call_with_its_set_drawn(
    make_napari_viewer, session_path, qtbot, tiny_ensemble_dir
):
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.pipeline import localize_session

    localize_session(session_path, load_ensemble(tiny_ensemble_dir))  # as the CLI does
    viewer = make_napari_viewer(show=True)
    widget = open_dock(viewer, qtbot, session_path)
    assert widget.current == 0  # the first call, not the middle frame
    assert viewer.dims.current_step[0] == widget.review.call_frame(0)
    sets = viewer.layers["where the call came from (95% set)"]
    assert sets.nshapes >= 1 and 0 in sets.features["call_id"].tolist()  # without moving
    assert "call 0" in sets.features["label"].tolist()
