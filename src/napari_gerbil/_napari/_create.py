"""*New session* section of the dock.

Audio + video + pose tracks, four clicked arena corners and the microphone positions
-> a new session file (:func:`napari_gerbil.io.session_create.create_session`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from napari_gerbil._napari._controls import button
from napari_gerbil.errors import GerbilError, InvalidInputError
from napari_gerbil.io.arena import CORNERS_ORDER, default_cage, order_corners_px

#: Name of the Points layer the user clicks the arena corners into.
CORNERS_LAYER = "arena corners (click 4)"
#: Name of the video layer shown while calibrating.
CALIBRATION_VIDEO_LAYER = "new session video"
#: The documented click order (the order of ``ArenaGeometry.corners_mm``).
CORNERS_HELP = (
    f"Click the floor corners in this order: {CORNERS_ORDER} — the arena frame of the "
    "microphone positions; counter-clockwise on screen (clockwise if the video is mirrored)."
)


def format_mics(mics_mm: np.ndarray) -> str:
    """'x, y, z; x, y, z; ...' (mm) for the microphone field."""
    return "; ".join(", ".join(f"{v:g}" for v in mic) for mic in np.asarray(mics_mm))


def parse_mics(text: str) -> np.ndarray:
    """Inverse of :func:`format_mics`."""
    try:
        mics = np.array(
            [[float(v) for v in mic.split(",")] for mic in text.split(";") if mic.strip()]
        )
    except ValueError:
        raise InvalidInputError(None, "mic positions", "x, y, z; x, y, z; ... (mm)", text) from None
    if mics.ndim != 2 or mics.shape[1] != 3:
        raise InvalidInputError(None, "mic positions", "x, y, z per microphone (mm)", text)
    return mics


class NewSessionSection(QWidget):
    """Create a session inside napari; ``on_created(path)`` is called with the new file."""

    def __init__(self, viewer, on_created, parent=None) -> None:
        super().__init__(parent, objectName="new_session_group")
        self.viewer = viewer
        self.on_created = on_created
        self.reordered = False  # whether the last corners taken were reordered
        form = QFormLayout(self)
        form.setContentsMargins(4, 0, 0, 4)
        self.paths: dict[str, QLineEdit] = {}
        for key, label, pattern in (
            ("audio", "Audio", "Audio (*.h5 *.hdf5 *.wav)"),
            ("video", "Video", "Video (*.mp4 *.avi *.mkv *.mov)"),
            ("tracks", "Pose tracks", "SLEAP (*.slp *.h5)"),
            ("out", "Save as", "napari-gerbil sessions (*.gerbil.h5)"),
        ):
            edit = QLineEdit(objectName=f"new_{key}_path")
            self.paths[key] = edit
            choose = button("…", f"choose_new_{key}", functools.partial(self._choose, key, pattern))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(choose)
            form.addRow(label, row)
        self.cage = QLineEdit("paper", objectName="new_cage")
        self.cage.setToolTip("a built-in cage name (napari-gerbil cage list) or a cage file (YAML)")
        self.cage.editingFinished.connect(self._cage_changed)
        form.addRow("Cage", self.cage)
        self.mics = QLineEdit(format_mics(default_cage().mic_positions_mm), objectName="new_mics")
        load_mics = button("Load…", "load_new_mics", self._load_mics)
        mic_row = QHBoxLayout()
        mic_row.addWidget(self.mics, 1)
        mic_row.addWidget(load_mics)
        form.addRow("Mics (mm)", mic_row)
        corners = button("Click arena corners", "click_corners", self.show_video_for_corners)
        create = button("Create session", "create_session", self.create)
        buttons = QHBoxLayout()
        buttons.addWidget(corners)
        buttons.addWidget(create)
        form.addRow(buttons)
        self.mirrored = QCheckBox(
            "Mirrored video (corners clockwise on screen)", objectName="new_mirrored"
        )
        form.addRow(self.mirrored)
        self.status = QLabel(CORNERS_HELP, objectName="new_session_status")
        self.status.setWordWrap(True)
        form.addRow(self.status)

    def _choose(self, key: str, pattern: str) -> None:
        if key == "out":
            path, _ = QFileDialog.getSaveFileName(self, "Save session as", "", pattern)
        else:
            path, _ = QFileDialog.getOpenFileName(self, f"Choose {key}", "", pattern)
        if path:
            self.paths[key].setText(path)

    def _cage_changed(self) -> None:
        """A cage typed in: its microphones fill the mic field (still editable)."""
        from napari_gerbil.io.cage import load_cage

        try:
            cage = load_cage(self.cage.text().strip() or "paper")
        except GerbilError as exc:
            self.status.setText(str(exc))
            return
        self.mics.setText(format_mics(cage.mics))
        size = " x ".join(f"{v:g}" for v in cage.dims_mm)
        self.status.setText(f"cage {cage.name}: {size} mm, {cage.n_mics} microphones")

    def _load_mics(self) -> None:
        from napari_gerbil.io.session_create import read_mic_positions

        path, _ = QFileDialog.getOpenFileName(self, "Mic positions", "", "Text (*.csv *.txt)")
        if path:
            try:
                self.mics.setText(format_mics(read_mic_positions(path)))
            except GerbilError as exc:
                self.status.setText(str(exc))

    def _path(self, key: str) -> Path | None:
        text = self.paths[key].text().strip()
        return Path(text) if text else None

    def show_video_for_corners(self) -> None:
        """Show the chosen video and a Points layer to click the four corners into."""
        from napari_gerbil.io.video import VideoReader

        video = self._path("video")
        if video is None:
            self.status.setText("choose the video first")
            return
        for name in (CALIBRATION_VIDEO_LAYER, CORNERS_LAYER):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self.viewer.add_image(VideoReader(video), name=CALIBRATION_VIDEO_LAYER, rgb=True)
        points = self.viewer.add_points(
            np.zeros((0, 3)), name=CORNERS_LAYER, size=8, face_color="yellow"
        )
        points.mode = "add"
        self.status.setText(CORNERS_HELP)

    def corners_px(self) -> np.ndarray:
        """(4, 2) clicked corners as (row, col) pixels, in the documented order.

        See :func:`order_corners_px`; the status says when they were reordered.
        """
        if CORNERS_LAYER not in self.viewer.layers:
            raise InvalidInputError(None, "arena corners", "4 clicked points", "none")
        data = np.asarray(self.viewer.layers[CORNERS_LAYER].data, float)
        if len(data) != 4:
            raise InvalidInputError(None, "arena corners", "4 clicked points", str(len(data)))
        corners, order = order_corners_px(data[:, -2:], mirrored=self.mirrored.isChecked())
        self.reordered = not np.array_equal(order, np.arange(4))
        return corners

    def create(self) -> Path | None:  # type: ignore[override]
        """Write the session file and hand it to ``on_created``; None (message) on error."""
        from napari_gerbil.io.cage import load_cage
        from napari_gerbil.io.session_create import create_session

        try:
            cage = load_cage(self.cage.text().strip() or "paper")
            missing = [k for k in ("audio", "video", "out") if self._path(k) is None]
            if missing:
                raise InvalidInputError(None, "new session", "audio, video and output", "missing")
            audio, out = self._path("audio"), self._path("out")
            assert audio is not None and out is not None  # checked just above
            path = create_session(
                audio,
                self._path("video"),
                self._path("tracks"),
                self.corners_px(),
                out,
                arena_dims_mm=cage.dims,
                mic_positions_mm=parse_mics(self.mics.text()),
            )
        except GerbilError as exc:
            self.status.setText(str(exc))
            return None
        for name in (CALIBRATION_VIDEO_LAYER, CORNERS_LAYER):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        note = (
            f" (corners reordered: your first click as (-x, -y), then round the floor "
            f"{'clockwise' if self.mirrored.isChecked() else 'counter-clockwise'} on screen)"
            if self.reordered
            else ""
        )
        self.status.setText(f"created {path.name}{note}")
        self.on_created(path)
        return path
