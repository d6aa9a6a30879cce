"""The review widget: video + tracks + spectrogram + calls table, localize, correct.

Plugins > napari-gerbil > Review calls. Every control has an objectName (tests find
them by it); inputs of long jobs are dataclasses; long jobs run in
``napari.qt.threading.thread_worker`` and never touch layers; every edit is saved to
the session file at once (see :class:`~napari_gerbil.review.ReviewModel`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_gerbil._napari import _jobs
from napari_gerbil._napari._collapsible import CollapsibleSection, VerticalScrollArea
from napari_gerbil._napari._create import NewSessionSection
from napari_gerbil._napari._layers import (
    ROLE_KEY,
    SESSION_KEY,
    arena_to_canvas,
    decimate_polygon,
    pose_points_at,
    pose_points_window,
    session_layer_data,
    track_points,
    tracks_window,
    window_covers,
)
from napari_gerbil._napari._spectrogram import SpectrogramWidget
from napari_gerbil._napari._styles import (
    ConfidenceSetStyle,
    EstimateStyle,
    PoseStyle,
    animal_color,
)
from napari_gerbil._napari._table import CallsTable
from napari_gerbil.errors import GerbilError, InvalidInputError
from napari_gerbil.io.session import SESSION_SUFFIX, UNASSIGNED
from napari_gerbil.progress import CancelToken
from napari_gerbil.review import ReviewModel
from napari_gerbil.signal.detect import DetectorConfig

#: Key bindings of the review loop (documented in docs/napari.md).
KEYS_HELP = (
    "1-9 assign animal · 0 unassigned · a accept · n/p next/previous · "
    "m most uncertain · u / Ctrl+Z undo · r / Ctrl+Shift+Z redo · click a pose to assign · "
    "x / Delete delete call · drag on the spectrogram: new call, or an edge of the "
    "selected call: its bounds"
)

#: Rows of the calls table that stay visible however many sections are unfolded.
MIN_TABLE_ROWS = 5


@dataclasses.dataclass
class LocalizeInputs:
    """Inputs of a localization job."""

    model_dir: Path
    call_indices: np.ndarray
    batch_size: int = _jobs.LOCALIZE_BATCH


@dataclasses.dataclass
class ExportInputs:
    """Inputs of an export of reviewed calls to a VCL training file."""

    out_path: Path
    training_set: Path | None = None
    node: str | int = 0


class ReviewWidget(QWidget):
    """Dock widget driving the review loop of one session."""

    def __init__(self, napari_viewer, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("gerbil_review_widget")
        self.viewer = napari_viewer
        self.model: ReviewModel | None = None
        self.audio: Any = None  # AudioSource of the open session
        self.poses: Any = None  # Poses of the open session
        self.current: int | None = None
        self.worker: Any = None
        self.ensemble: Any = None
        self.ensemble_dir: Path | None = None
        self.set_style = ConfidenceSetStyle()
        self.estimate_style = EstimateStyle()
        self.pose_style = PoseStyle()
        self._set_cache: dict[int, list[np.ndarray]] = {}
        self._drawn_style: dict[int, tuple | None] = {}  # call -> style of its drawn set
        self._shape_calls: list[int] = []  # call index of each shape in the sets layer
        self._track_points: np.ndarray | None = None
        self._pose_window: tuple[int, int] | None = None  # frames held by the poses layer
        self.n_pose_windows = 0  # how often the poses layer was refilled (tests/benchmarks)
        self._drawn_signature: tuple | None = None
        self.last_retrain: dict | None = None
        self._cancel = CancelToken()
        self._build_ui()
        self.spectrogram = SpectrogramWidget()
        self.spectrogram.seek_requested.connect(self.seek_time)
        self.spectrogram.call_drawn.connect(self.add_call_s)
        self.spectrogram.bounds_dragged.connect(self.set_bounds_s)
        self.viewer.window.add_dock_widget(
            self.spectrogram, name="Spectrogram (napari-gerbil)", area="bottom"
        )
        qt_window = getattr(self.viewer.window, "_qt_window", None)
        if qt_window is not None:  # the right docks (this one) run the full height
            qt_window.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self._bind_keys(self.viewer)
        self._adopt_session_from_layers()

    # -- UI ---------------------------------------------------------------------------
    def _build_ui(self) -> None:
        def button(text: str, name: str, slot) -> QPushButton:
            b = QPushButton(text, objectName=name)
            b.clicked.connect(slot)
            return b

        self.session_path = QLineEdit(objectName="session_path")
        self.session_path.setPlaceholderText("session file (*.gerbil.h5)")
        self.session_info = QLabel("no session", objectName="session_info")
        self.session_info.setWordWrap(True)
        session_row = QHBoxLayout()
        session_row.addWidget(self.session_path, 1)
        session_row.addWidget(button("Open…", "open_session", self._choose_session))

        self.model_dir = QLineEdit(objectName="model_dir")
        self.model_dir.setPlaceholderText("ensemble directory")
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_dir, 1)
        model_row.addWidget(button("…", "choose_model", self._choose_model))
        model_row.addWidget(button("Demo", "use_demo_model", self.use_demo_model))

        self.band_low_khz = QDoubleSpinBox(objectName="detect_band_low_khz")
        self.band_high_khz = QDoubleSpinBox(objectName="detect_band_high_khz")
        self.threshold_db = QDoubleSpinBox(objectName="detect_threshold_db")
        defaults = DetectorConfig()
        for box, value, top in (
            (self.band_low_khz, defaults.band_hz[0] / 1000, 500.0),
            (self.band_high_khz, defaults.band_hz[1] / 1000, 500.0),
            (self.threshold_db, defaults.threshold_db, 100.0),
        ):
            box.setRange(0.0, top)
            box.setValue(value)
        detect_row = QHBoxLayout()
        for label, box in (
            ("band kHz", self.band_low_khz),
            ("–", self.band_high_khz),
            ("thr dB", self.threshold_db),
        ):
            detect_row.addWidget(QLabel(label))
            detect_row.addWidget(box)
        calls_row = QHBoxLayout()
        calls_row.addWidget(button("Detect calls", "detect_calls", self.detect))
        calls_row.addWidget(button("Import CSV…", "import_segments", self._choose_segments))

        self.progress = QProgressBar(objectName="job_progress")
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("no job running")
        localize_row = QHBoxLayout()
        localize_row.addWidget(button("Localize selected", "localize_selected", self.localize))
        localize_row.addWidget(button("Localize all", "localize_all", self.localize_all))
        job_row = QHBoxLayout()  # below the sections: visible whatever is folded
        job_row.addWidget(self.progress, 1)
        job_row.addWidget(button("Cancel", "cancel_job", self.cancel_job))

        review_row = QHBoxLayout()
        review_row.addWidget(button("Most uncertain", "next_uncertain", self.next_uncertain))
        review_row.addWidget(button("Accept", "accept_call", self.accept_current))
        review_row.addWidget(button("Undo", "undo", self.undo))
        review_row.addWidget(button("Redo", "redo", self.redo))
        self.call_start_s = QDoubleSpinBox(objectName="call_start_s")
        self.call_stop_s = QDoubleSpinBox(objectName="call_stop_s")
        for box in (self.call_start_s, self.call_stop_s):
            box.setDecimals(4)
            box.setRange(0.0, 1e7)
            box.setSingleStep(0.001)
            box.setSuffix(" s")
        bounds_row = QHBoxLayout()
        bounds_row.addWidget(self.call_start_s)
        bounds_row.addWidget(self.call_stop_s)
        bounds_row.addWidget(button("Set bounds", "set_call_bounds", self._apply_bounds_boxes))
        bounds_row.addWidget(button("Delete call", "delete_call", self.delete_current))
        keys = QLabel(KEYS_HELP, objectName="keys_help")
        keys.setWordWrap(True)
        keys.setStyleSheet("font-size: 9pt; color: #a0a0a0;")

        self.table = CallsTable()
        self.table.call_selected.connect(self.select_call)

        self.training_set = QLineEdit(objectName="training_set")
        self.training_set.setPlaceholderText("training set to merge with (optional .h5)")
        self.export_path = QLineEdit(objectName="export_path")
        self.export_path.setPlaceholderText("export to (new .h5)")
        self.retrain_epochs = QSpinBox(objectName="retrain_epochs")
        self.retrain_epochs.setRange(1, 1000)
        self.retrain_epochs.setValue(10)
        self.retrain_result = QLabel("", objectName="retrain_result")
        self.retrain_result.setWordWrap(True)
        learn_row = QHBoxLayout()
        learn_row.addWidget(button("Export reviewed", "export_vcl", self.export))
        learn_row.addWidget(button("Retrain", "retrain", self.retrain))

        def section(name: str, title: str, rows, expanded: bool, grows: bool = False):
            body = QWidget(objectName=name)
            form = QFormLayout(body)
            form.setContentsMargins(4, 0, 0, 4)
            for row in rows:
                form.addRow(*row)
            return CollapsibleSection(title, body, expanded=expanded, grows=grows)

        self.new_session = NewSessionSection(self.viewer, self.open_session)
        self.sections = {
            "session": section(
                "section_session", "Session", [(session_row,), (self.session_info,)], True
            ),
            "new_session": CollapsibleSection("New session", self.new_session, expanded=False),
            "detect": section(
                "section_detect",
                "Detect / import calls",
                [("Detector", detect_row), (calls_row,)],
                False,
            ),
            "model": section(
                "section_model",
                "Model / predict",
                [("Ensemble", model_row), (localize_row,)],
                True,
            ),
            "calls": section(
                "section_calls",
                "Calls",
                [(review_row,), ("Bounds", bounds_row), (self.table,), (keys,)],
                True,
                grows=True,
            ),
            "finetune": section(
                "section_finetune",
                "Fine-tune",
                [
                    ("Merge with", self.training_set),
                    ("Export to", self.export_path),
                    ("Epochs", self.retrain_epochs),
                    (learn_row,),
                    (self.retrain_result,),
                ],
                False,
            ),
        }
        # the sections scroll when unfolded beyond the dock's height (never squeezed)
        content = QWidget(objectName="review_sections")
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        for part in self.sections.values():
            layout.addWidget(part)
        # takes the spare height while the calls section (which else takes it) is folded
        self._filler = QWidget(objectName="dock_filler")
        self._filler.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        layout.addWidget(self._filler, 1)
        calls = self.sections["calls"]
        layout.setStretchFactor(calls, 1)
        calls.toggled.connect(self._filler.setHidden)
        self._filler.setHidden(calls.is_expanded())
        self.table.table.setMinimumHeight(MIN_TABLE_ROWS * 30 + 60)  # + header, scrollbar
        scroll = VerticalScrollArea(content)
        scroll.setObjectName("review_scroll")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll, 1)
        outer.addLayout(job_row)

    def _choose_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open session", "", "napari-gerbil sessions (*.gerbil.h5)"
        )
        if path:
            self.open_session(path)

    def _choose_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Ensemble directory")
        if path:
            self.model_dir.setText(path)

    def _choose_segments(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Segments table", "", "CSV (*.csv *.tsv *.txt)")
        if path:
            self.import_segments(path)

    def _notify(self, message: str) -> None:
        from napari.utils.notifications import show_info

        show_info(message)

    def _error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        show_error(f"napari-gerbil: {exc}")

    # -- session ----------------------------------------------------------------------
    def _layer(self, role: str):
        path = str(self.model.path) if self.model else None
        for layer in self.viewer.layers:
            meta = layer.metadata
            if meta.get(ROLE_KEY) == role and meta.get(SESSION_KEY) == path:
                return layer
        return None

    def _adopt_session_from_layers(self) -> None:
        if self.model is not None:
            return
        for layer in self.viewer.layers:
            path = layer.metadata.get(SESSION_KEY)
            if path:
                self.open_session(path)
                return

    def _on_layer_inserted(self, event) -> None:
        # deferred: the reader is still adding the session's other layers
        if self.model is None and event.value.metadata.get(SESSION_KEY):
            QTimer.singleShot(0, self._adopt_session_from_layers)

    def open_session(self, path) -> None:
        """Load a session file and show it: video, tracks, spectrogram, calls."""
        from napari.layers import Layer

        from napari_gerbil.io.tracks import load_poses

        model = ReviewModel.open(path)
        self.model = model
        self.session_path.setText(str(model.path))
        session = model.session
        self.audio = session.audio.open()
        self.poses = load_poses(session.tracks.path) if session.tracks is not None else None
        self._track_points = track_points(self.poses) if self.poses is not None else None
        self._pose_window = None
        self._forget_drawn()
        self.current = None
        for data, kwargs, layer_type in session_layer_data(session):
            if self._layer(kwargs["metadata"][ROLE_KEY]) is None:
                self.viewer.add_layer(Layer.create(data, kwargs, layer_type))
        meta = {SESSION_KEY: str(model.path)}
        if self._layer("poses") is None and self.poses is not None:
            self.viewer.add_points(
                np.zeros((0, 3)),  # (frame, row, col): napari shows the current frame's
                name="poses",
                size=self.pose_style.size_px,
                border_color="white",
                border_width=0.1,
                metadata={**meta, ROLE_KEY: "poses"},
            )
        if self._layer("sets") is None:
            self.viewer.add_shapes(
                name="confidence sets (95%)", metadata={**meta, ROLE_KEY: "sets"}
            )
        if self._layer("estimates") is None:
            self.viewer.add_points(
                np.zeros((0, 2)),
                name="estimates",
                size=self.estimate_style.size_px,
                symbol=self.estimate_style.symbol,
                metadata={**meta, ROLE_KEY: "estimates"},
            )
        for role in ("poses", "sets", "estimates"):
            layer = self._layer(role)
            if layer is not None:
                layer.editable = False
                self._bind_keys(layer)
        video = self._layer("video")
        if video is not None:
            self.viewer.layers.selection.active = video
        self.spectrogram.set_source(self.audio)
        self._refresh_calls()
        n_animals = len(session.animal_names)
        self.session_info.setText(
            f"{model.path.name}: {session.n_calls} calls, {n_animals} animals "
            f"({', '.join(session.animal_names)}), {self.audio.duration_s:.1f} s audio"
        )
        if session.n_calls == 0:  # a new session: its calls come from detection/import
            self.sections["detect"].set_expanded(True)
        self.viewer.reset_view()
        self._on_step()

    def _refresh_calls(self) -> None:
        self.table.set_rows(self.model.rows())
        self._spectrogram_calls()

    def _spectrogram_calls(self) -> None:
        calls = self.model.session.calls
        rate = self.model.session.audio.sample_rate_hz
        self.spectrogram.set_calls(
            calls.start_sample / rate, calls.stop_sample / rate, selected=self.current
        )

    # -- time -------------------------------------------------------------------------
    def current_frame(self) -> int:
        """Frame shown by the viewer's time slider."""
        return int(self.viewer.dims.current_step[0]) if self.viewer.dims.ndim >= 3 else 0

    def current_time_s(self) -> float:
        """Recording time (s) of the frame shown."""
        if self.model is None:
            return 0.0
        session = self.model.session
        if session.fps is None and session.frame_times_s is None:
            return self.spectrogram.time_s
        return float(session.sample_of_frame(self.current_frame())) / session.audio.sample_rate_hz

    def seek_time(self, time_s: float) -> None:
        """Move the time slider to the frame nearest ``time_s`` (spectrogram click)."""
        if self.model is None:
            return
        session = self.model.session
        if self.viewer.dims.ndim >= 3 and (session.fps or session.frame_times_s is not None):
            frame = session.frame_of_sample(int(round(time_s * session.audio.sample_rate_hz)))
            self.viewer.dims.set_current_step(0, int(frame))
        else:
            self.spectrogram.set_time(time_s)

    def _on_step(self, event=None) -> None:
        if self.model is None:
            return
        time_s = self.current_time_s()
        self.spectrogram.set_time(time_s)
        self._update_poses()
        self._update_overlays(time_s)

    def _update_tracks_window(self) -> None:
        """Long sessions: keep the Tracks layer on the window around the current frame."""
        layer = self._layer("tracks")
        full = self._track_points
        if layer is None or full is None or len(full) <= self.pose_style.max_track_points:
            return
        frame = self.current_frame()
        shown = layer.data[:, 1]
        data_range = (full[0, 1], full[-1, 1]) if len(full) else (0, 0)
        if len(shown) and window_covers((shown.min(), shown.max()), frame, data_range):
            return
        layer.data = tracks_window(full, frame, self.pose_style.max_track_points)

    def _update_poses(self) -> None:
        """Keep the 3-D poses layer on a window of frames around the current one.

        napari slices it per frame, so a frame step costs nothing here.
        """
        self._update_tracks_window()
        layer = self._layer("poses")
        if layer is None or self.poses is None:
            return
        frame = self.current_frame()
        frames = self.poses.frame_indices
        data_range = (frames.min(), frames.max()) if len(frames) else (0, 0)
        if self._pose_window is not None and window_covers(self._pose_window, frame, data_range):
            return
        points, animal, self._pose_window = pose_points_window(
            self.poses, frame, self.pose_style.max_pose_points
        )
        layer.data = points
        layer.features = {"animal": animal}
        palette = np.array([animal_color(a) for a in range(max(1, self.poses.n_tracks))])
        layer.face_color = palette[animal] if len(animal) else "white"
        self.n_pose_windows += 1

    # -- overlays: confidence sets and point estimates -----------------------------------
    def _set_polygons_px(self, index: int) -> list[np.ndarray]:
        from napari_gerbil.model.confidence import confidence_set

        polys = self._set_cache.get(index)
        if polys is None:
            pred = self.model.session.predictions
            cs = confidence_set(
                pred.member_means_mm[index],
                pred.member_chol_mm[index],
                self.model.session.arena.dims_mm,
            )
            arena = self.model.session.arena
            polys = [
                arena_to_canvas(arena, decimate_polygon(p, self.set_style.max_vertices))
                for p in cs.polygons_mm
            ]
            self._set_cache[index] = polys
        return polys

    def visible_calls(self, time_s: float) -> np.ndarray:
        """Localized calls within the style's window of ``time_s`` (and the current one)."""
        model = self.model
        start_s, stop_s = (
            model.session.calls.start_sample / model.session.audio.sample_rate_hz,
            model.session.calls.stop_sample / model.session.audio.sample_rate_hz,
        )
        w = self.set_style.window_s
        near = (stop_s >= time_s - w) & (start_s <= time_s + w)
        if self.current is not None:
            near[self.current] = True
        return np.flatnonzero(near & model.localized())

    def _update_overlays(self, time_s: float | None = None) -> None:
        if self.model is None:
            return
        time_s = self.current_time_s() if time_s is None else time_s
        visible = self.visible_calls(time_s)
        animal = self.model.session.effective_attribution()
        edited = self.model.edited()
        signature = (tuple(visible), tuple(animal[visible]), tuple(edited[visible]), self.current)
        if signature == self._drawn_signature:
            return
        self._drawn_signature = signature
        self._draw_sets(visible, animal, edited)
        self._draw_estimates(visible, animal, edited)

    def _forget_drawn(self, indices=None) -> None:
        """Mark the sets of calls ``indices`` (all if None) as stale: redrawn next time."""
        self._drawn_signature = None
        if indices is None:
            self._drawn_style.clear()
            self._set_cache.clear()
            self._shape_calls = []
            layer = self._layer("sets")
            if layer is not None and len(layer.data):
                layer.data = []
        else:
            for i in indices:
                self._drawn_style[int(i)] = None
                self._set_cache.pop(int(i), None)

    def _draw_sets(self, visible: np.ndarray, animal: np.ndarray, edited: np.ndarray) -> None:
        """Update the Shapes layer incrementally.

        Only calls that appeared, disappeared or changed style are removed/added (napari
        triangulates every polygon it is given).
        """
        layer = self._layer("sets")
        if layer is None:
            return
        style = self.set_style
        top_p = self.model.top_probability()
        wanted = {
            int(i): (int(animal[i]), bool(edited[i]), int(i) == self.current, float(top_p[i]))
            for i in visible
        }
        shape_calls = self._shape_calls
        if len(shape_calls) != len(layer.data):  # the layer was changed elsewhere
            shape_calls, self._drawn_style = [], {}
            layer.data = []
        stale = {i for i, key in self._drawn_style.items() if wanted.get(i) != key}
        if stale:
            layer.selected_data = {k for k, i in enumerate(shape_calls) if i in stale}
            layer.remove_selected()
            shape_calls = [i for i in shape_calls if i not in stale]
            for i in stale:
                del self._drawn_style[i]
        polys, faces, edges, widths, new_calls = [], [], [], [], []
        for i, (code, was_edited, selected, _) in wanted.items():
            if i in self._drawn_style:
                continue
            color = animal_color(code)
            face = color.copy()
            face[3] = style.selected_face_opacity if selected else style.face_opacity
            edge = np.array(style.edited_edge_color) if was_edited else color
            width = style.edited_edge_width_px if was_edited else style.edge_width_px
            for poly in self._set_polygons_px(i):
                polys.append(poly)
                faces.append(face)
                edges.append(edge)
                widths.append(width)
                new_calls.append(i)
            self._drawn_style[i] = wanted[i]
        if polys:
            layer.add(
                polys,
                shape_type="polygon",
                edge_width=widths,
                edge_color=np.array(edges),
                face_color=np.array(faces),
            )
        self._shape_calls = shape_calls + new_calls
        calls = np.array(self._shape_calls, np.int64)
        layer.features = {
            "call_id": self.model.session.calls.call_id[calls],
            "animal": animal[calls].astype(int),
            "probability": top_p[calls].astype(float),
        }

    def _draw_estimates(self, visible: np.ndarray, animal: np.ndarray, edited: np.ndarray):
        layer = self._layer("estimates")
        if layer is None:
            return
        session = self.model.session
        points = (
            arena_to_canvas(session.arena, session.predictions.point_mm[visible])
            if visible.size
            else np.zeros((0, 2))
        )
        layer.data = points
        if visible.size:
            layer.face_color = np.array([animal_color(int(a)) for a in animal[visible]])
            layer.symbol = [
                self.estimate_style.edited_symbol if e else self.estimate_style.symbol
                for e in edited[visible]
            ]
        layer.features = {
            "call_id": session.calls.call_id[visible],
            "animal": animal[visible],
        }

    # -- selection and navigation -------------------------------------------------------
    def select_call(self, index: int) -> None:
        """Make call ``index`` current: jump to its frame, centre the spectrogram, show its set."""
        if self.model is None:
            return
        self.current = int(index)
        start_s, stop_s = self.model.call_time_s(self.current)
        self.call_start_s.setValue(start_s)
        self.call_stop_s.setValue(stop_s)
        self.table.select_call(self.current)
        self._spectrogram_calls()
        # centre the spectrogram first: the frame step below then only moves its playhead
        self.spectrogram.set_time((start_s + stop_s) / 2, center=True)
        session = self.model.session
        if self.viewer.dims.ndim >= 3 and (session.fps or session.frame_times_s is not None):
            self.viewer.dims.set_current_step(0, self.model.call_frame(self.current))
        self._update_overlays()  # drawn once: the step above drew them unless on this frame

    def step_call(self, direction: int) -> None:
        """Select the next (+1) or previous (-1) call in the table's order."""
        order = self.table.visible_calls()
        if not order:
            return
        if self.current in order:
            position = order.index(self.current) + direction
        else:
            position = 0 if direction > 0 else len(order) - 1
        self.select_call(order[int(np.clip(position, 0, len(order) - 1))])

    def next_uncertain(self) -> None:
        """Select the most uncertain call not reviewed yet."""
        if self.model is None:
            return
        index = self.model.next_uncertain()
        if index is None:
            self._notify("every localized call is reviewed")
            return
        self.select_call(index)

    # -- edits ------------------------------------------------------------------------
    def _after_edit(self, index: int | None) -> None:
        if index is None:
            return
        self.table.update_calls([index], self.model.rows())
        self._drawn_signature = None
        self._update_overlays()

    def assign_current(self, animal: int) -> None:
        """Attribute the current call to ``animal`` (-1 unassigned); saved at once."""
        if self.model is None or self.current is None:
            return
        if animal >= len(self.model.session.animal_names):
            self._notify(f"no animal {animal + 1} in this session")
            return
        self.model.assign(self.current, animal)
        self._after_edit(self.current)

    def accept_current(self) -> None:
        """Confirm the predicted attribution of the current call."""
        if self.model is None or self.current is None:
            return
        self.model.accept(self.current)
        self._after_edit(self.current)

    def undo(self) -> None:
        """Undo the last edit (saved at once)."""
        if self.model is not None:
            self._after_undo_redo(self.model.undo)

    def redo(self) -> None:
        """Redo the last undone edit (saved at once)."""
        if self.model is not None:
            self._after_undo_redo(self.model.redo)

    def _after_undo_redo(self, action) -> None:
        version = self.model.calls_version
        index = action()
        if self.model.calls_version != version:
            self._after_calls_changed(index)
        else:
            self._after_edit(index)

    # -- edits of the calls themselves: add, delete, bounds --------------------------------
    def _samples(self, time_s: float) -> int:
        return int(round(time_s * self.model.session.audio.sample_rate_hz))

    def _after_calls_changed(self, select: int | None) -> None:
        """Calls were added, deleted or re-bounded: indices may have moved."""
        self._forget_drawn()
        self.current = None
        self._refresh_calls()
        if select is not None and select < self.model.n_calls:
            self.select_call(select)
        else:
            self._update_overlays()

    def add_call_s(self, start_s: float, stop_s: float) -> int | None:
        """Add a call [start_s, stop_s) (e.g. dragged on the spectrogram) and select it.

        Returns its index; None (and a message) if it overlaps a call.
        """
        if self.model is None:
            return None
        try:
            index = self.model.add_call(self._samples(start_s), self._samples(stop_s))
        except GerbilError as exc:
            self._error(exc)
            return None
        self._after_calls_changed(index)
        return index

    def delete_current(self) -> None:
        """Delete the selected call (saved at once; undo restores it)."""
        if self.model is None or self.current is None:
            return
        index = self.current
        self.model.delete_call(index)
        self._after_calls_changed(
            min(index, self.model.n_calls - 1) if self.model.n_calls else None
        )

    def set_bounds_s(self, index: int, start_s: float, stop_s: float) -> bool:
        """Move the bounds of call ``index`` (its prediction is dropped: localize again)."""
        if self.model is None:
            return False
        start_s, stop_s = min(start_s, stop_s), max(start_s, stop_s)
        try:
            self.model.set_bounds(index, self._samples(start_s), self._samples(stop_s))
        except GerbilError as exc:
            self._error(exc)
            return False
        self._after_calls_changed(index)
        return True

    def _apply_bounds_boxes(self) -> None:
        if self.current is not None:
            self.set_bounds_s(self.current, self.call_start_s.value(), self.call_stop_s.value())

    def _bind_keys(self, target) -> None:
        def bind(key, action):
            def handler(_viewer_or_layer):
                action()

            target.bind_key(key, handler, overwrite=True)

        for digit in range(1, 10):
            bind(str(digit), lambda d=digit: self.assign_current(d - 1))
        bind("0", lambda: self.assign_current(UNASSIGNED))
        bind("a", self.accept_current)
        bind("n", lambda: self.step_call(+1))
        bind("p", lambda: self.step_call(-1))
        bind("m", self.next_uncertain)
        bind("u", self.undo)
        bind("r", self.redo)
        bind("Control-z", self.undo)
        bind("Control-Shift-z", self.redo)
        bind("x", self.delete_current)
        bind("Delete", self.delete_current)

    def _pose_animal_at(self, rc_px: np.ndarray, radius_px: float = 30.0) -> int | None:
        if self.poses is None:
            return None
        points, animal = pose_points_at(self.poses, self.current_frame())
        if not len(points):
            return None
        distance = np.linalg.norm(points - rc_px[None], axis=1)
        nearest = int(np.argmin(distance))
        return int(animal[nearest]) if distance[nearest] <= radius_px else None

    def _on_mouse_drag(self, viewer, event):
        """A click (press + release without moving) on an animal's pose assigns it."""
        if self.model is None or self.current is None or event.button != 1:
            return
        start = np.asarray(event.position[-2:], float)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = True
            yield
        if not moved:
            animal = self._pose_animal_at(start)
            if animal is not None:
                self.assign_current(animal)

    # -- calls: detection and import -----------------------------------------------------
    def detector_config(self) -> DetectorConfig:
        """Detector parameters from the widget."""
        return DetectorConfig(
            band_hz=(self.band_low_khz.value() * 1000.0, self.band_high_khz.value() * 1000.0),
            threshold_db=self.threshold_db.value(),
        )

    def detect(self):
        """Detect calls in a worker; new calls not overlapping existing ones are added."""
        if self.model is None or self._busy():
            return None
        config = self.detector_config()
        try:
            config.check(self.audio.sample_rate_hz)
        except GerbilError as exc:
            self._error(exc)
            return None
        worker = _jobs.detect_worker(self.audio, config, self._cancel)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda bounds: self._add_calls(*bounds))
        return self._start(worker)

    def import_segments(self, path) -> int:
        """Add the calls of a segments CSV; returns how many were added."""
        from napari_gerbil.signal.segments import read_segments_csv

        if self.model is None or self._busy():
            return 0
        try:
            starts, stops = read_segments_csv(path, self.model.session.audio.sample_rate_hz)
        except GerbilError as exc:
            self._error(exc)
            return 0
        return self._add_calls(starts, stops)

    def _add_calls(self, starts, stops) -> int:
        added = self.model.add_calls(starts, stops)
        self._refresh_calls()
        self._drawn_signature = None
        self._update_overlays()
        self._notify(f"added {added} calls")
        return added

    # -- jobs -------------------------------------------------------------------------
    def _busy(self) -> bool:
        if self.worker is not None:
            self._notify("a job is running; cancel it first")
            return True
        return False

    def _start(self, worker):
        self._cancel.reset()
        self.worker = worker
        self.progress.setRange(0, 0)
        worker.errored.connect(self._error)
        worker.finished.connect(self._on_finished)
        worker.start()
        return worker

    def _on_progress(self, value) -> None:
        """Show a worker's :class:`~napari_gerbil.progress.Progress`."""
        record = _jobs.progress_record(value)
        fraction, message = record.fraction, record.message
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(max(fraction, 0.0), 1.0)))
        self.progress.setFormat(f"{message} %p%")

    def _on_finished(self) -> None:
        self.worker = None
        self.progress.setRange(0, 1)
        self.progress.setValue(1)

    def cancel_job(self) -> None:
        """Ask the running job to stop (results received so far are kept)."""
        if self.worker is not None:
            self._cancel.cancel()
            self.worker.quit()

    def use_demo_model(self):
        """Use the demo ensemble; on first use it is built in a worker (returned)."""
        from napari_gerbil.model.manifest import is_model_dir
        from napari_gerbil.training.demo import demo_model_dir

        if is_model_dir(demo_model_dir()):
            self.model_dir.setText(str(demo_model_dir()))
            return None
        if self._busy():
            return None
        worker = _jobs.demo_model_worker(self._cancel)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda path: self.model_dir.setText(str(path)))
        return self._start(worker)

    def _ensemble(self):
        from napari_gerbil.model.ensemble import load_ensemble

        text = self.model_dir.text().strip()
        if not text:
            raise InvalidInputError(
                None,
                "model",
                "an ensemble directory",
                "none",
                hint="Choose one, or click Demo to use (and on first use build) the demo one.",
            )
        model_dir = Path(text)
        if self.ensemble is None or self.ensemble_dir != model_dir:
            self.ensemble = load_ensemble(model_dir)
            self.ensemble_dir = model_dir
        return self.ensemble

    def localize(self, indices=None):
        """Localize the selected calls (or ``indices``) in a worker; returns the worker."""
        if self.model is None or self._busy():
            return None
        if indices is None:
            indices = self.table.selected_calls() or (
                [self.current] if self.current is not None else []
            )
        indices = np.asarray(sorted(set(int(i) for i in indices)), np.int64)
        if not indices.size:
            self._notify("select calls to localize")
            return None
        try:
            ensemble = self._ensemble()
        except (GerbilError, RuntimeError, OSError) as exc:  # torch raises RuntimeError
            self._error(exc)
            return None
        inputs = LocalizeInputs(Path(self.ensemble_dir or ""), indices)
        worker = _jobs.localize_worker(
            ensemble,
            self.audio,
            self.model.session,
            self.poses,
            inputs.call_indices,
            inputs.batch_size,
        )
        predictions = self.model.session.predictions
        self._members_before = (
            None if predictions is None else (predictions.n_members, predictions.model_version)
        )
        self._localized_now: list[int] = []
        worker.yielded.connect(self._on_localized)
        worker.finished.connect(self._after_localize)
        return self._start(worker)

    def localize_all(self):
        """Localize every call of the session."""
        if self.model is None:
            return None
        return self.localize(np.arange(self.model.n_calls))

    def _on_localized(self, result: _jobs.LocalizedBatch) -> None:
        self.model.apply_localization(result)
        self._localized_now.extend(int(i) for i in result.indices)
        self._forget_drawn(result.indices)
        self._on_progress(result.progress)

    def _after_localize(self) -> None:
        self.model.save()
        predictions = self.model.session.predictions
        if (predictions.n_members, predictions.model_version) != self._members_before:
            self._refresh_calls()  # another model: every row may have changed
        else:
            self.table.update_calls(self._localized_now, self.model.rows())
        self._drawn_signature = None
        self._update_overlays()

    # -- learning: export and retrain ---------------------------------------------------
    def export(self, inputs: ExportInputs | None = None) -> Path | None:
        """Export confirmed/corrected calls to a VCL file (merged with the training set)."""
        if self.model is None:
            return None
        if inputs is None:
            name = self.model.path.name.removesuffix(SESSION_SUFFIX) + "_reviewed.h5"
            out = self.export_path.text().strip() or str(self.model.path.with_name(name))
            training = self.training_set.text().strip()
            inputs = ExportInputs(Path(out), Path(training) if training else None)
        from napari_gerbil.review import export_reviewed

        try:
            path, n = export_reviewed(
                self.model,
                self.audio,
                self.poses,
                inputs.out_path,
                inputs.training_set,
                inputs.node,
            )
        except GerbilError as exc:
            self._error(exc)
            return None
        self.export_path.setText(str(path))
        self._notify(f"exported {n} reviewed calls to {path}")
        return path

    def retrain(self):
        """Fine-tune the current ensemble on the exported data in a worker."""
        if self.model is None or self._busy():
            return None
        exported = self.export()
        if exported is None:
            return None
        try:
            self._ensemble()
        except (GerbilError, RuntimeError, OSError) as exc:
            self._error(exc)
            return None
        worker = _jobs.retrain_worker(
            self.ensemble_dir, exported, self.retrain_epochs.value(), self._cancel
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_retrained)
        return self._start(worker)

    def _on_retrained(self, new_dir) -> None:
        from napari_gerbil.review import heldout_errors

        old_dir, old_ensemble = self.ensemble_dir, self.ensemble
        self.model_dir.setText(str(new_dir))
        new_ensemble = self._ensemble()
        errors = heldout_errors(
            self.model.session, old_ensemble, new_ensemble, self.audio, self.poses
        )
        self.last_retrain = {"old_dir": old_dir, "new_dir": Path(new_dir), **errors}
        self.retrain_result.setText(
            f"new model {Path(new_dir).name}: median error on {errors['n_heldout']} held-out "
            f"reviewed calls {errors['old_median_mm']:.1f} mm -> {errors['new_median_mm']:.1f} mm"
        )
