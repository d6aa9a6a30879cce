"""The spectrogram dock on its own: window, playhead, controls, click to seek."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QEvent, QObject

from napari_gerbil._napari._spectrogram import SpectrogramWidget
from napari_gerbil.io.audio import AudioSource

pytestmark = pytest.mark.gui


@pytest.fixture
def spectrogram(qtbot, built_session):
    path, _ = built_session
    widget = SpectrogramWidget()
    qtbot.addWidget(widget)
    widget.set_source(AudioSource.open(path.with_name("audio.h5")))
    return widget


def test_playhead_moves_without_recomputing_inside_the_window(spectrogram):
    spectrogram.set_time(1.0, center=True)
    spec = spectrogram.spectrogram
    assert spec.start_s == pytest.approx(0.75) and spec.stop_s == pytest.approx(1.25)
    updates = spectrogram.n_window_updates
    spectrogram.set_time(1.1)
    assert spectrogram.n_window_updates == updates
    assert spectrogram.playhead.get_xdata()[0] == pytest.approx(1.1)
    spectrogram.set_time(1.3)  # left the middle: the window follows
    assert spectrogram.n_window_updates == updates + 1
    assert spectrogram.spectrogram.start_s < 1.3 < spectrogram.spectrogram.stop_s


def test_controls_change_channel_window_and_levels(spectrogram):
    spectrogram.set_time(1.2, center=True)
    mean = spectrogram.spectrogram.power_db.copy()
    spectrogram.channel.setCurrentIndex(2)  # mic 1
    assert spectrogram.selected_channel() == 1
    assert not np.allclose(spectrogram.spectrogram.power_db, mean)
    spectrogram.window_s.setValue(2.0)
    spec = spectrogram.spectrogram
    assert spec.stop_s - spec.start_s == pytest.approx(2.0, abs=0.01)
    spectrogram.db_min.setValue(-100.0)
    spectrogram.db_max.setValue(-40.0)
    assert spectrogram.image.get_clim() == (-100.0, -40.0)
    spectrogram.auto_range()
    low, high = spectrogram.image.get_clim()
    assert low < np.median(spec.power_db) < high


def _mouse(spectrogram, name: str, t_s: float, button=1) -> None:
    from matplotlib.backend_bases import MouseEvent

    y_khz = float(np.mean(spectrogram.axes.get_ylim()))
    x, y = spectrogram.axes.transData.transform((t_s, y_khz))
    event = MouseEvent(name, spectrogram.canvas, x, y, button=button)
    spectrogram.canvas.callbacks.process(name, event)


def test_click_emits_seek_and_drag_emits_a_new_call(spectrogram, qtbot):
    spectrogram.set_time(1.5, center=True)
    spectrogram.canvas.draw()
    with qtbot.waitSignal(spectrogram.seek_requested) as blocker:
        _mouse(spectrogram, "button_press_event", 1.62)
        _mouse(spectrogram, "button_release_event", 1.62)
    assert blocker.args == [pytest.approx(1.62, abs=0.002)]
    with qtbot.waitSignal(spectrogram.call_drawn) as blocker:
        _mouse(spectrogram, "button_press_event", 1.6)
        _mouse(spectrogram, "motion_notify_event", 1.45, button=None)
        _mouse(spectrogram, "button_release_event", 1.45)
    assert blocker.args == [pytest.approx(1.45, abs=0.002), pytest.approx(1.6, abs=0.002)]


def _playhead_columns(spectrogram) -> np.ndarray:
    """X pixels (matplotlib's, from the left) where the widget shows the playhead colour."""
    from matplotlib.colors import to_rgb
    from qtpy.QtGui import QImage

    image = spectrogram.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())
    bgr = rows[:, : 4 * image.width()].reshape(image.height(), image.width(), 4)[..., :3]
    target = np.round(255 * np.array(to_rgb(spectrogram.style_.playhead_color)))[::-1]
    hit = (np.abs(bgr.astype(int) - target) <= 12).all(axis=2)
    return np.flatnonzero(hit.sum(axis=0) >= 20) * spectrogram.canvas.device_pixel_ratio


class _PaintedRects(QObject):
    """Event filter recording the rectangles of a widget's paint events."""

    def __init__(self) -> None:
        super().__init__()
        self.rects = []

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Paint:
            self.rects.append(event.rect())
        return False


def test_playhead_is_painted_where_it_moved_without_a_full_redraw(spectrogram, qtbot):
    spectrogram.show()
    qtbot.waitExposed(spectrogram)
    full = []
    cid = spectrogram.canvas.mpl_connect("draw_event", lambda event: full.append(event))
    spectrogram.set_time(1.0, center=True)
    qtbot.waitUntil(lambda: bool(full))  # the pending full redraw happened
    spectrogram.canvas.mpl_disconnect(cid)
    draws = []
    spectrogram.canvas.mpl_connect("draw_event", lambda event: draws.append(event))
    painted = _PaintedRects()
    spectrogram.canvas.installEventFilter(painted)
    blits = spectrogram.n_playhead_blits
    spectrogram.set_time(1.1)
    qtbot.waitUntil(lambda: bool(painted.rects), timeout=2000)  # a repaint was scheduled
    assert spectrogram.n_playhead_blits == blits + 1 and draws == []  # blitted only
    x_new = spectrogram.axes.transData.transform((1.1, 0.0))[0]
    x_old = spectrogram.axes.transData.transform((1.0, 0.0))[0]
    ratio = spectrogram.canvas.device_pixel_ratio
    for x in (x_new, x_old):  # the repainted area covers the new and the old playhead
        assert any(r.left() <= x / ratio <= r.right() for r in painted.rects)
    columns = _playhead_columns(spectrogram)
    assert columns.size and np.all(np.abs(columns - x_new) <= 3)
    assert np.all(np.abs(columns - x_old) > 3)  # the old playhead was erased
