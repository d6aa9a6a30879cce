"""Spectrogram dock: the window around the current time, a playhead, click to seek."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_gerbil._napari._styles import SpectrogramStyle
from napari_gerbil.signal.spectrogram import Spectrogram, spectrogram_window


class SpectrogramWidget(QWidget):
    """Spectrogram of the visible window of a long recording.

    Only the visible window is computed. The playhead follows :meth:`set_time`; when it
    leaves the middle of the window the window is re-centred. Clicking the spectrogram
    emits :attr:`seek_requested` with the clicked time in seconds; dragging emits
    :attr:`call_drawn` (a new call), or :attr:`bounds_dragged` when the drag starts on
    an edge of the selected call.
    """

    seek_requested = Signal(float)
    #: (start_s, stop_s) of a new call dragged out on the spectrogram.
    call_drawn = Signal(float, float)
    #: (call index, start_s, stop_s): an edge of the selected call was dragged.
    bounds_dragged = Signal(int, float, float)
    #: Pixels the mouse must move for a press to be a drag (else it is a click: seek).
    DRAG_PX = 4.0

    def __init__(self, style: SpectrogramStyle | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("spectrogram_widget")
        self.style_ = style or SpectrogramStyle()
        self.source = None
        self.spectrogram: Spectrogram | None = None
        self.time_s = 0.0
        self.n_window_updates = 0  # how often the window was recomputed (tests/benchmarks)
        self.n_playhead_blits = 0  # playhead moves drawn over the cached background
        self._calls = (np.zeros(0), np.zeros(0))
        self._selected: int | None = None
        self._spans: list = []
        self._press: tuple | None = None  # (x_px, x_s, edge: "start" | "stop" | None) while pressed
        self._drag_span: Any = None

        self.channel = QComboBox(objectName="spectrogram_channel")
        self.window_s = QDoubleSpinBox(objectName="spectrogram_window_s")
        self.window_s.setRange(0.02, 30.0)
        self.window_s.setSingleStep(0.1)
        self.window_s.setValue(self.style_.window_s)
        self.window_s.setSuffix(" s")
        self.db_min = QDoubleSpinBox(objectName="spectrogram_db_min")
        self.db_max = QDoubleSpinBox(objectName="spectrogram_db_max")
        for box, value in ((self.db_min, self.style_.db_min), (self.db_max, self.style_.db_max)):
            box.setRange(-300.0, 100.0)
            box.setDecimals(0)  # narrow boxes: the dock fits a 1500 px window
            box.setSingleStep(3.0)
            box.setValue(value)
            box.setSuffix(" dB")
        self.auto_db = QPushButton("Auto range", objectName="spectrogram_auto_db")
        # frequency zoom: the band shown (kHz); the top is clipped to Nyquist
        self.khz_min = QDoubleSpinBox(objectName="spectrogram_khz_min")
        self.khz_max = QDoubleSpinBox(objectName="spectrogram_khz_max")
        for box, value in (
            (self.khz_min, self.style_.khz_min),
            (self.khz_max, self.style_.khz_max),
        ):
            box.setRange(0.0, 500.0)
            box.setDecimals(1)
            box.setSingleStep(5.0)
            box.setValue(value)
            box.setSuffix(" kHz")
        # two rows: in one, the boxes were squeezed below their size in a 1500 px window
        controls = QVBoxLayout()
        controls.setSpacing(2)
        for widgets in (
            (("Channel", self.channel), ("Window", self.window_s), ("", self.auto_db)),
            (("dB", self.db_min), ("–", self.db_max), ("Band", self.khz_min), ("–", self.khz_max)),
        ):
            line = QHBoxLayout()
            for label, widget in widgets:
                if label:
                    line.addWidget(QLabel(label))
                line.addWidget(widget)
            line.addStretch(1)
            controls.addLayout(line)

        self.figure = Figure(figsize=(8, 2), facecolor="#262930")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setObjectName("spectrogram_canvas")
        self.canvas.setMinimumHeight(110)  # the window fits 1366 x 768 with the docks
        self.axes = self.figure.add_axes((0.06, 0.2, 0.93, 0.75))
        self.axes.set_facecolor("black")
        self.axes.tick_params(colors="#cccccc", labelsize=8)
        self.axes.set_xlabel("time (s)", color="#cccccc", fontsize=8)
        self.axes.set_ylabel("kHz", color="#cccccc", fontsize=8)
        # few ticks: drawing tick labels is most of a full redraw's cost
        self.axes.xaxis.set_major_locator(MaxNLocator(6))
        self.axes.yaxis.set_major_locator(MaxNLocator(3))
        self.image = self.axes.imshow(
            np.zeros((2, 2)),
            origin="lower",
            aspect="auto",
            cmap=self.style_.colormap,
            interpolation="nearest",
            extent=(0, 1, 0, 1),
        )
        # animated: excluded from full redraws, blitted over the cached background
        self.playhead = self.axes.axvline(
            0.0, color=self.style_.playhead_color, linewidth=1.5, animated=True
        )
        self._background = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(controls)
        layout.addWidget(self.canvas, 1)

        self.channel.currentIndexChanged.connect(lambda _: self.refresh())
        self.window_s.valueChanged.connect(lambda _: self.refresh())
        self.db_min.valueChanged.connect(self._apply_levels)
        self.db_max.valueChanged.connect(self._apply_levels)
        self.auto_db.clicked.connect(lambda _checked=False: self.auto_range())
        self.khz_min.valueChanged.connect(self._apply_band)
        self.khz_max.valueChanged.connect(self._apply_band)
        self.canvas.mpl_connect("button_press_event", self._on_press)
        self.canvas.mpl_connect("motion_notify_event", self._on_motion)
        self.canvas.mpl_connect("button_release_event", self._on_release)
        self.canvas.mpl_connect("draw_event", self._on_draw)

    # -- public API -------------------------------------------------------------------
    def set_source(self, source) -> None:
        """Show ``source`` (an AudioSource); resets the channel list."""
        self.source = source
        self.channel.blockSignals(True)
        self.channel.clear()
        self.channel.addItem("mean")
        for c in range(source.n_channels):
            self.channel.addItem(f"mic {c}")
        self.channel.blockSignals(False)
        self.refresh()
        self.auto_range()

    def set_calls(self, start_s: np.ndarray, stop_s: np.ndarray, selected: int | None = None):
        """Call intervals drawn over the spectrogram; ``selected`` is highlighted."""
        self._calls = (np.asarray(start_s, float), np.asarray(stop_s, float))
        self._selected = selected
        self._draw_calls()
        self.canvas.draw_idle()

    def set_time(self, time_s: float, center: bool = False) -> None:
        """Move the playhead; recompute the window only if the playhead leaves its middle."""
        self.time_s = float(time_s)
        spec = self.spectrogram
        if spec is None or center:
            self.refresh()
            return
        length = spec.stop_s - spec.start_s
        margin = 0.1 * length
        inside = spec.start_s + margin <= self.time_s <= spec.stop_s - margin
        at_edge = (spec.start_s <= 0.0 and self.time_s < spec.stop_s - margin) or (
            self.source is not None
            and spec.stop_s >= self.source.duration_s
            and self.time_s > spec.start_s + margin
        )
        if inside or at_edge:
            self._move_playhead()
        else:
            self.refresh()

    def selected_channel(self) -> int | None:
        """Channel index shown, or None for the mean."""
        index = self.channel.currentIndex()
        return None if index <= 0 else index - 1

    def refresh(self) -> None:
        """Recompute the window centred on the playhead and redraw."""
        if self.source is None:
            return
        half = self.window_s.value() / 2
        duration = self.source.duration_s
        start = min(max(0.0, self.time_s - half), max(0.0, duration - 2 * half))
        stop = min(duration, start + 2 * half)
        width = max(200, int(self.canvas.width()))
        self.spectrogram = spec = spectrogram_window(
            self.source,
            start,
            stop,
            channel=self.selected_channel(),
            max_columns=min(2000, width),
        )
        self.n_window_updates += 1
        khz = spec.freqs_hz / 1000.0
        self.image.set_data(spec.power_db if spec.power_db.size else np.zeros((2, 2)))
        self.image.set_extent((spec.start_s, spec.stop_s, khz[0], khz[-1]))
        self.axes.set_xlim(spec.start_s, spec.stop_s)
        self._nyquist_khz = float(khz[-1])
        self._apply_band(draw=False)
        self._apply_levels()
        self.playhead.set_xdata([self.time_s, self.time_s])
        self._draw_calls()
        self.canvas.draw_idle()

    def auto_range(self) -> None:
        """Set the dB range from the current window (1st to 99.9th percentile)."""
        spec = self.spectrogram
        if spec is None or not spec.power_db.size:
            return
        low, high = np.percentile(spec.power_db, [1.0, 99.9])
        self.db_min.setValue(float(np.floor(low)))
        self.db_max.setValue(float(np.ceil(max(high, low + 10))))

    # -- internals --------------------------------------------------------------------
    def _on_draw(self, event) -> None:
        """After a full redraw: cache the background, draw the playhead over it."""
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        self.axes.draw_artist(self.playhead)

    def _move_playhead(self) -> None:
        """Move the playhead by blitting it over the cached background (no full redraw)."""
        self.playhead.set_xdata([self.time_s, self.time_s])
        if self._background is None:
            self.canvas.draw_idle()
            return
        self.canvas.restore_region(self._background)
        self.axes.draw_artist(self.playhead)
        # matplotlib's blit() repaints at once; next to napari's OpenGL canvas every
        # repaint recomposes the whole window, so schedule one instead (coalesced with
        # the video's repaint of the same step)
        ratio = self.canvas.device_pixel_ratio
        left, bottom, width, height = (int(v / ratio) for v in self.axes.bbox.bounds)
        self.canvas.update(left, self.canvas.height() - bottom - height, width, height)
        self.n_playhead_blits += 1

    def frequency_band_khz(self) -> tuple[float, float]:
        """(low, high) kHz shown: the band boxes, clipped to the recording's Nyquist."""
        top = getattr(self, "_nyquist_khz", self.khz_max.value())
        low = min(self.khz_min.value(), top)
        high = min(self.khz_max.value(), top)
        return (low, high) if high > low else (0.0, top)

    def _apply_band(self, *_, draw: bool = True) -> None:
        self.axes.set_ylim(*self.frequency_band_khz())
        if draw:
            self.canvas.draw_idle()

    def _apply_levels(self, *_) -> None:
        self.image.set_clim(self.db_min.value(), max(self.db_max.value(), self.db_min.value() + 1))
        self.canvas.draw_idle()

    def _draw_calls(self) -> None:
        for span in self._spans:
            span.remove()
        self._spans = []
        spec = self.spectrogram
        if spec is None:
            return
        start_s, stop_s = self._calls
        visible = np.flatnonzero((stop_s >= spec.start_s) & (start_s <= spec.stop_s))
        for i in visible:
            selected = i == self._selected
            color = self.style_.selected_call_color if selected else self.style_.call_color
            span = self.axes.axvspan(
                start_s[i], stop_s[i], ymin=0.0, ymax=0.04, color=color, alpha=0.9
            )
            self._spans.append(span)
            if selected:
                for x in (start_s[i], stop_s[i]):
                    self._spans.append(self.axes.axvline(x, color=color, lw=0.8, ls="--"))

    def _edge_at(self, x_px: float) -> str | None:
        """Which edge of the selected call is within :attr:`DRAG_PX` of pixel ``x_px``."""
        if self._selected is None or self._selected >= len(self._calls[0]):
            return None
        for edge, times in zip(("start", "stop"), self._calls, strict=True):
            edge_px = self.axes.transData.transform((times[self._selected], 0.0))[0]
            if abs(edge_px - x_px) <= self.DRAG_PX:
                return edge
        return None

    def _dragged_interval(self, press: tuple, x_s: float) -> tuple[float, float]:
        _, press_s, edge = press
        if edge is None:
            return min(press_s, x_s), max(press_s, x_s)
        start_s = float(self._calls[0][self._selected])
        stop_s = float(self._calls[1][self._selected])
        return (x_s, stop_s) if edge == "start" else (start_s, x_s)

    def _on_press(self, event) -> None:
        if event.inaxes is self.axes and event.xdata is not None and event.button == 1:
            self._press = (event.x, float(event.xdata), self._edge_at(event.x))

    def _on_motion(self, event) -> None:
        if self._press is None or event.xdata is None:
            return
        if abs(event.x - self._press[0]) < self.DRAG_PX:
            return
        start_s, stop_s = self._dragged_interval(self._press, float(event.xdata))
        if self._drag_span is not None:
            self._drag_span.remove()
        color = self.style_.selected_call_color
        self._drag_span = self.axes.axvspan(start_s, stop_s, color=color, alpha=0.25)
        self.canvas.draw_idle()

    def _on_release(self, event) -> None:
        press, self._press = self._press, None
        if self._drag_span is not None:
            self._drag_span.remove()
            self._drag_span = None
            self.canvas.draw_idle()
        if press is None or event.button != 1:
            return
        x_s = float(event.xdata) if event.xdata is not None else press[1]
        if abs(event.x - press[0]) < self.DRAG_PX:
            self.seek_requested.emit(press[1])
            return
        start_s, stop_s = self._dragged_interval(press, x_s)
        if press[2] is None:
            self.call_drawn.emit(start_s, stop_s)
        elif self._selected is not None:  # an edge is only grabbed on the selected call
            self.bounds_dragged.emit(int(self._selected), start_s, stop_s)
