"""Long jobs of the review widget, run in ``napari.qt.threading`` workers.

Workers compute and yield plain results; the widget applies them to the session and
the layers in the main thread (workers never touch layers).
"""

from __future__ import annotations

import numpy as np
from napari.qt.threading import thread_worker
from qtpy.QtWidgets import QProgressBar, QWidget

from napari_gerbil import pipeline
from napari_gerbil._napari._controls import button, row
from napari_gerbil.io.session import Session
from napari_gerbil.pipeline import LOCALIZE_BATCH, LocalizedBatch
from napari_gerbil.progress import CancelToken, Progress, stream_progress

__all__ = ["LOCALIZE_BATCH", "JobPanel", "LocalizedBatch", "localize_worker"]


@thread_worker(progress={"desc": "napari-gerbil: localizing calls"})
def localize_worker(
    ensemble, audio, session: Session, poses, indices: np.ndarray, batch: int = LOCALIZE_BATCH
):
    """Yield a :class:`~napari_gerbil.pipeline.LocalizedBatch` per ``batch`` calls.

    :func:`napari_gerbil.pipeline.localize_calls` runs in the worker thread itself, so
    quitting the worker stops the work at the next batch.
    """
    yield from pipeline.localize_calls(
        session, ensemble, indices, poses=poses, audio=audio, batch_size=batch
    )


@thread_worker(progress={"desc": "napari-gerbil: detecting calls"})
def detect_worker(audio, config, cancel: CancelToken | None = None):
    """Band-energy detection over the whole recording.

    Yields :class:`~napari_gerbil.progress.Progress` and returns (start_samples,
    stop_samples); cancelling ``cancel`` (or quitting the worker) stops the detection.
    """
    from napari_gerbil.signal.detect import detect_calls

    return (yield from stream_progress(detect_calls, audio, config, cancel=cancel))


@thread_worker(progress={"desc": "napari-gerbil: demo ensemble (first use: a few minutes)"})
def demo_model_worker(cancel: CancelToken | None = None):
    """Build (first use) or find the demo ensemble; returns its directory."""
    from napari_gerbil.training.demo import ensure_demo_ensemble

    return (yield from stream_progress(ensure_demo_ensemble, cancel=cancel))


@thread_worker(progress={"desc": "napari-gerbil: fine-tuning the ensemble"})
def retrain_worker(
    model_dir, dataset_path, epochs: int, heldout, cancel: CancelToken | None = None
):
    """Fine-tune the ensemble in ``model_dir`` on ``dataset_path``; judge the result.

    ``epochs`` at a tenth of the parent's learning rate, into a new model version, then
    judged on the held-out reviewed calls, its temperature fitted there
    (:func:`napari_gerbil.training.heldout.compare_on_heldout`).

    ``heldout`` is (old ensemble, clips, truth_mm, arena_dims_mm). Yields
    :class:`~napari_gerbil.progress.Progress`; cancelling stops at the next step.
    Returns (new directory, :class:`~napari_gerbil.training.heldout.FinetuneReport`).
    """
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.progress import scaled
    from napari_gerbil.training.heldout import compare_on_heldout, write_temperature
    from napari_gerbil.training.progress import finetune_with_progress

    def train(progress=None, cancel=None):
        return finetune_with_progress(
            model_dir, dataset_path, epochs, progress=scaled(progress, 0.0, 0.95), cancel=cancel
        )

    new_dir = yield from stream_progress(train, cancel=cancel)
    yield Progress(0.96, "judging on held-out reviewed calls")
    old_ensemble, clips, truth_mm, dims = heldout
    report = compare_on_heldout(old_ensemble, load_ensemble(new_dir), clips, truth_mm, dims)
    write_temperature(new_dir, report.temperature, report.to_dict())
    return new_dir, report


def progress_record(value) -> Progress:
    """A worker's yielded value as a :class:`~napari_gerbil.progress.Progress`."""
    if isinstance(value, Progress):
        return value
    if isinstance(value, LocalizedBatch):
        return value.progress
    fraction, message = value
    return Progress(fraction, message)


class JobPanel(QWidget):
    """Progress bar and *Cancel* of the dock's background job (one at a time).

    A job is a napari ``thread_worker`` yielding :class:`~napari_gerbil.progress.Progress`
    records (or :class:`~napari_gerbil.pipeline.LocalizedBatch`); *Cancel* cancels
    :attr:`cancel_token` (the job checks it between steps) and quits the worker.
    """

    def __init__(self, on_error, parent=None) -> None:
        super().__init__(parent, objectName="job_panel")
        self.on_error = on_error
        self.worker = None
        self.outcome = ""  # what the job did, said in the bar when it ends
        self.cancel_token = CancelToken()
        self.progress = QProgressBar(objectName="job_progress")
        self.progress.setTextVisible(True)
        self.cancel = button("Cancel", "cancel_job", self.cancel_job, "stop the running job")
        self.setLayout(row(self.progress, self.cancel, stretch=0))
        self._idle("idle")

    def busy(self) -> bool:
        """Whether a job runs."""
        return self.worker is not None

    def start(self, worker, message: str):
        """Run ``worker``, its progress shown here; returns the worker."""
        self.worker = worker
        self.outcome = ""
        self.cancel_token.reset()
        self.cancel.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.setFormat(f"{message}…")
        worker.yielded.connect(self.show_progress)
        worker.errored.connect(self.on_error)
        worker.finished.connect(self._on_finished)
        worker.start()
        return worker

    def show_progress(self, value) -> None:
        """Show a worker's progress record."""
        record = progress_record(value)
        if record.fraction != record.fraction:  # NaN: unknown share
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * record.fraction))
        self.progress.setFormat(f"{record.message} %p%")

    def set_outcome(self, text: str) -> None:
        """What the running job did ('localized 16 of 27 calls'), said when it ends."""
        self.outcome = text

    def cancel_job(self) -> None:
        """Ask the running job to stop between two steps (what it finished is kept)."""
        if self.worker is not None:
            self.cancel_token.cancel()
            self.worker.quit()
            self.progress.setFormat("cancelling…")

    def _on_finished(self) -> None:
        state = "cancelled" if self.cancel_token.cancelled else "done"
        self.worker = None
        self._idle(f"{state}: {self.outcome}" if self.outcome else state)

    def _idle(self, text: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if text.startswith("done") else 0)
        self.progress.setFormat(text)
        self.cancel.setEnabled(False)

    def shutdown(self) -> None:
        """The dock closes: stop the job and drop its connections (no late writes)."""
        worker, self.worker = self.worker, None
        if worker is None:
            return
        self.cancel_token.cancel()
        for name in ("yielded", "returned", "errored", "finished"):
            signal = getattr(worker, name, None)
            try:
                if signal is not None:
                    signal.disconnect()
            except (TypeError, RuntimeError):
                pass
        worker.quit()
