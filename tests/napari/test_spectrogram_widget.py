"""The spectrogram dock on its own: window, playhead, controls, click to seek."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_click_emits_seek(spectrogram, qtbot):
    spectrogram.set_time(1.5, center=True)

    class Click:
        inaxes = spectrogram.axes
        xdata = 1.62
        button = 1

    with qtbot.waitSignal(spectrogram.seek_requested) as blocker:
        spectrogram._on_click(Click())
    assert blocker.args == [pytest.approx(1.62)]
