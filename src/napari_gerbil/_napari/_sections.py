"""The small sections of the review dock: session, detection/import, model/localize.

Each section holds its controls and calls the dock (:class:`~._widget.ReviewWidget`) for
anything that touches the session or the layers. Long work runs in the dock's
:class:`~._jobs.JobPanel`; the computation itself is the core's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QSettings
from qtpy.QtWidgets import QDoubleSpinBox, QFileDialog, QLabel, QLineEdit, QWidget

from napari_gerbil._napari import _jobs
from napari_gerbil._napari._controls import button, confirm, form, row
from napari_gerbil._napari._evidence import NO_ANIMALS, plural
from napari_gerbil.errors import GerbilError, InvalidInputError
from napari_gerbil.signal.detect import DetectorConfig

#: QSettings keys (organization, application) where the dock remembers its inputs.
SETTINGS = ("napari-gerbil", "review")


def settings() -> QSettings:
    """The dock's remembered inputs (the last ensemble directory)."""
    return QSettings(*SETTINGS)


class SessionSection(QWidget):
    """Open a session file; a summary of the open one."""

    def __init__(self, dock) -> None:
        super().__init__(objectName="section_session")
        self.dock = dock
        self.path = QLineEdit(objectName="session_path")
        self.path.setPlaceholderText("session file (*.gerbil.h5)")
        self.path.returnPressed.connect(lambda: dock.open_session(self.path.text().strip()))
        self.info = QLabel("no session", objectName="session_info")
        self.info.setWordWrap(True)
        layout = form(self)
        layout.addRow(row(self.path, button("Open…", "open_session", self.choose), stretch=0))
        layout.addRow(self.info)

    def choose(self) -> None:
        """Ask for a session file and open it."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open session", "", "napari-gerbil sessions (*.gerbil.h5)"
        )
        if path:
            self.dock.open_session(path)

    def show_session(self, review, audio) -> None:
        """Fill the path and the summary from the open session."""
        session = review.session
        self.path.setText(str(review.path))
        names = session.animal_names
        animals = (
            f"{plural(len(names), 'animal')} ({', '.join(names)})"
            if names and session.tracks is not None
            else NO_ANIMALS
        )
        self.info.setText(
            f"{review.path.name}: {plural(session.n_calls, 'call')}, {animals}, "
            f"{audio.duration_s:.1f} s audio"
        )

    def clear(self) -> None:
        """No session."""
        self.path.clear()
        self.info.setText("no session")


class DetectSection(QWidget):
    """Find calls in the audio (band-energy detector) or import a segments table."""

    def __init__(self, dock) -> None:
        super().__init__(objectName="section_detect")
        self.dock = dock
        defaults = DetectorConfig()
        self.band_low_khz = QDoubleSpinBox(objectName="detect_band_low_khz")
        self.band_high_khz = QDoubleSpinBox(objectName="detect_band_high_khz")
        self.threshold_db = QDoubleSpinBox(objectName="detect_threshold_db")
        for box, value, top in (
            (self.band_low_khz, defaults.band_hz[0] / 1000, 500.0),
            (self.band_high_khz, defaults.band_hz[1] / 1000, 500.0),
            (self.threshold_db, defaults.threshold_db, 100.0),
        ):
            box.setRange(0.0, top)
            box.setValue(value)
        layout = form(self)
        layout.addRow("Band (kHz)", row(self.band_low_khz, QLabel("–"), self.band_high_khz))
        layout.addRow("Threshold (dB)", self.threshold_db)
        layout.addRow(
            row(
                button("Detect calls", "detect_calls", self.detect, "band-energy detection"),
                button("Import CSV…", "import_segments", self.choose_segments),
            )
        )

    def config(self) -> DetectorConfig:
        """Detector parameters from the controls."""
        return DetectorConfig(
            band_hz=(self.band_low_khz.value() * 1000.0, self.band_high_khz.value() * 1000.0),
            threshold_db=self.threshold_db.value(),
        )

    def detect(self):
        """Detect calls in a worker; new calls not overlapping existing ones are added."""
        dock = self.dock
        if not dock.ready_for_job():
            return None
        config = self.config()
        try:
            config.check(dock.audio.sample_rate_hz)
        except GerbilError as exc:
            dock.error(exc)
            return None
        worker = _jobs.detect_worker(dock.audio, config, dock.jobs.cancel_token)
        worker.returned.connect(lambda bounds: dock.add_calls(*bounds))
        return dock.jobs.start(worker, "detecting calls")

    def choose_segments(self) -> None:
        """Ask for a segments table and import it."""
        path, _ = QFileDialog.getOpenFileName(self, "Segments table", "", "CSV (*.csv *.tsv *.txt)")
        if path:
            self.import_segments(path)

    def import_segments(self, path) -> int:
        """Add the calls of a segments CSV; returns how many were added."""
        from napari_gerbil.signal.segments import read_segments_csv

        dock = self.dock
        if not dock.ready_for_job():
            return 0
        try:
            starts, stops = read_segments_csv(path, dock.review.session.audio.sample_rate_hz)
        except GerbilError as exc:
            dock.error(exc)
            return 0
        return dock.add_calls(starts, stops)


class ModelSection(QWidget):
    """Choose an ensemble; localize the selected calls or all of them."""

    def __init__(self, dock) -> None:
        super().__init__(objectName="section_model")
        self.dock = dock
        self.ensemble: Any = None
        self.ensemble_dir: Path | None = None
        self.model_dir = QLineEdit(objectName="model_dir")
        self.model_dir.setPlaceholderText("ensemble directory")
        self.model_dir.setText(str(settings().value("model_dir", "") or ""))
        self.model_dir.textChanged.connect(lambda text: settings().setValue("model_dir", text))
        layout = form(self)
        layout.addRow(
            "Ensemble",
            row(
                self.model_dir,
                button("…", "choose_model", self.choose_model, "choose an ensemble directory"),
                button("Demo", "use_demo_model", self.use_demo_model, "the demo ensemble"),
                stretch=0,
            ),
        )
        layout.addRow(
            row(
                button("Localize selected", "localize_selected", self.localize),
                button("Localize all", "localize_all", self.localize_all),
            )
        )

    def choose_model(self) -> None:
        """Ask for an ensemble directory."""
        path = QFileDialog.getExistingDirectory(self, "Ensemble directory")
        if path:
            self.model_dir.setText(path)

    def use_demo_model(self):
        """Use the demo ensemble; on first use it is built in a worker (returned)."""
        from napari_gerbil.model.manifest import is_model_dir
        from napari_gerbil.training.demo import demo_model_dir

        if is_model_dir(demo_model_dir()):
            self.model_dir.setText(str(demo_model_dir()))
            return None
        if self.dock.jobs.busy():
            self.dock.notify("a job is running; cancel it first")
            return None
        worker = _jobs.demo_model_worker(self.dock.jobs.cancel_token)
        worker.returned.connect(lambda path: self.model_dir.setText(str(path)))
        return self.dock.jobs.start(worker, "building the demo ensemble")

    def load_ensemble(self):
        """The ensemble named in the field (loaded once per directory)."""
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
            self.ensemble = load_ensemble(
                model_dir,
                field="Ensemble",
                hint="The remembered folder is gone: choose the ensemble again (…), or click Demo.",
            )
            self.ensemble_dir = model_dir
        return self.ensemble

    def localize(self, indices=None):
        """Localize the selected calls (or ``indices``) in a worker; returns the worker."""
        dock = self.dock
        if not dock.ready_for_job():
            return None
        if indices is None:
            indices = dock.table.selected_calls() or (
                [dock.current] if dock.current is not None else []
            )
        indices = np.asarray(sorted({int(i) for i in indices}), np.int64)
        if not indices.size:
            dock.notify("select calls to localize")
            return None
        try:
            ensemble = self.load_ensemble()
        except (GerbilError, RuntimeError, OSError) as exc:  # torch raises RuntimeError
            dock.error(exc)
            return None
        if not self._may_drop(indices, ensemble):
            return None
        before = dock.review.predictions_snapshot()  # the run is one undoable edit
        worker = _jobs.localize_worker(
            ensemble, dock.audio, dock.review.session, dock.poses, indices, _jobs.LOCALIZE_BATCH
        )
        localized: list[int] = []
        worker.yielded.connect(lambda batch: dock.apply_localization(batch, localized))
        worker.finished.connect(lambda: dock.after_localization(localized, before))
        total = int(indices.size)
        worker.finished.connect(
            lambda: dock.jobs.set_outcome(f"localized {len(localized)} of {plural(total, 'call')}")
        )
        return dock.jobs.start(worker, f"localizing {plural(total, 'call')}")

    def _may_drop(self, indices: np.ndarray, ensemble) -> bool:
        """Whether to go on: asks first if the run would drop other calls' predictions."""
        session = self.dock.review.session
        dropped = session.drops_predictions(indices, ensemble.n_members)
        if not dropped.size:
            return True
        old = session.predictions
        return confirm(
            self,
            "Drop other predictions?",
            f"{ensemble.version} has {ensemble.n_members} members, the predictions in this "
            f"session {old.n_members}: they cannot be kept side by side.\n\n"
            f"Localizing {indices.size} calls drops the predictions of {dropped.size} other "
            "calls (your attributions are kept). Undo (u) gives them back.",
            f"Localize and drop {dropped.size}",
        )

    def localize_all(self):
        """Localize every call of the session."""
        if self.dock.review is None:
            return None
        return self.localize(np.arange(self.dock.review.n_calls))
