"""Long jobs of the review widget, run in ``napari.qt.threading`` workers.

Workers compute and yield plain results; the widget applies them to the session and
the layers in the main thread (workers never touch layers).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading

import numpy as np
from napari.qt.threading import thread_worker
from qtpy.QtWidgets import QProgressBar, QWidget

from napari_gerbil._napari._controls import button, row
from napari_gerbil._napari._review import animal_positions_mm
from napari_gerbil.io.session import Session

#: Calls per ensemble forward pass while localizing.
LOCALIZE_BATCH = 16
#: Probability of the confidence sets drawn and used for attribution.
MASS = 0.95


@dataclasses.dataclass
class LocalizeBatch:
    """Predictions for some calls (yielded by :func:`localize_worker`)."""

    indices: np.ndarray  # (b,) call rows
    means_mm: np.ndarray  # (b, M, 2)
    chol_mm: np.ndarray  # (b, M, 2, 2)
    point_mm: np.ndarray  # (b, 2)
    set_area_mm2: np.ndarray  # (b,)
    animal: np.ndarray  # (b,) predicted code
    probabilities: np.ndarray  # (b, n_animals)
    model_version: str
    done: int
    total: int


def localize_batch(ensemble, audio, session: Session, poses, indices: np.ndarray):
    """Predict, measure the 95% sets and attribute ``indices``: returns the arrays of a
    :class:`LocalizeBatch` (without progress)."""
    from napari_gerbil.attribute import attribute_calls
    from napari_gerbil.model.confidence import confidence_sets

    calls = session.calls
    clips = [audio.read(int(calls.start_sample[i]), int(calls.stop_sample[i])) for i in indices]
    prediction = ensemble.predict(clips, batch_size=len(clips))
    dims = session.arena.dims_mm
    sets = confidence_sets(prediction, dims, mass=MASS)
    positions = animal_positions_mm(session, poses, indices)
    attribution = attribute_calls(prediction, positions, dims, mass=MASS, sets=sets)
    return dict(
        indices=indices,
        means_mm=prediction.means_mm,
        chol_mm=prediction.chol_mm,
        point_mm=prediction.point_mm,
        set_area_mm2=np.array([s.area_mm2 for s in sets]),
        animal=np.asarray(attribution.animal),
        probabilities=np.asarray(attribution.probabilities),
        model_version=ensemble.version,
    )


@thread_worker(progress={"desc": "napari-gerbil: localizing calls"})
def localize_worker(
    ensemble, audio, session: Session, poses, indices: np.ndarray, batch: int = LOCALIZE_BATCH
):
    """Yield a :class:`LocalizeBatch` per ``batch`` calls (cancel between batches)."""
    ensemble.check_compatible(
        n_channels=audio.n_channels,
        sample_rate_hz=audio.sample_rate_hz,
        arena_dims_mm=session.arena.dims_mm,
        source=session.path,
    )
    total = len(indices)
    for start in range(0, total, batch):
        chunk = indices[start : start + batch]
        result = localize_batch(ensemble, audio, session, poses, chunk)
        yield LocalizeBatch(**result, done=start + len(chunk), total=total)


def with_progress(fn, *args, to_message=lambda info: info, **kwargs):
    """Generator: run ``fn(*args, progress=callback, **kwargs)`` in a thread, yield
    ``to_message(info)`` for each callback ``info`` as it arrives (None: skipped), and
    return ``fn``'s result (or raise its error). Use with ``return (yield from ...)``."""
    messages: queue.Queue = queue.Queue()
    outcome: dict = {}

    def report(*info) -> None:  # progress(x) or progress(message, fraction)
        messages.put(info[0] if len(info) == 1 else info)

    def target() -> None:
        try:
            outcome["value"] = fn(*args, progress=report, **kwargs)
        except BaseException as exc:  # re-raised in the worker thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive() or not messages.empty():
        try:
            message = to_message(messages.get(timeout=0.1))
        except queue.Empty:
            continue
        if message is not None:
            yield message
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@thread_worker(progress={"desc": "napari-gerbil: detecting calls"})
def detect_worker(audio, config):
    """Band-energy detection over the whole recording; yields (fraction, message) and
    returns (start_samples, stop_samples)."""
    from napari_gerbil.signal.detect import detect_calls

    return (
        yield from with_progress(
            detect_calls, audio, config, to_message=lambda f: (f, "detecting calls")
        )
    )


@thread_worker(progress={"desc": "napari-gerbil: demo ensemble (first use: a few minutes)"})
def demo_model_worker():
    """Build (first use) or find the demo ensemble; returns its directory."""
    from napari_gerbil.model.demo import ensure_demo_ensemble

    return (yield from with_progress(ensure_demo_ensemble, to_message=lambda m: (m[1], m[0])))


@thread_worker(progress={"desc": "napari-gerbil: fine-tuning the ensemble"})
def retrain_worker(model_dir, dataset_path, epochs: int, cancel_event, heldout):
    """Fine-tune the ensemble in ``model_dir`` on ``dataset_path`` for ``epochs`` (at a
    tenth of the parent's learning rate) into a new model version, then judge it on the
    held-out reviewed calls and fit its temperature there
    (:func:`napari_gerbil.training.heldout.compare_on_heldout`).

    ``heldout`` is (old ensemble, clips, truth_mm, arena_dims_mm). Yields (fraction,
    message); setting ``cancel_event`` stops at the next step. Returns (new directory,
    :class:`~napari_gerbil.training.heldout.FinetuneReport`).
    """
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.heldout import compare_on_heldout, write_temperature
    from napari_gerbil.training.trainer import finetune

    parent = TrainingConfig.load(model_dir / "training.yaml")
    config = parent.replace(epochs=int(epochs), learning_rate=parent.learning_rate / 10)
    n_members = len(json.loads((model_dir / "manifest.json").read_text())["members"])
    members: list[str] = []

    def to_message(info: dict):
        if "step" not in info:
            return None
        if info["member"] not in members:
            members.append(info["member"])
        within = (info["epoch"] + info["step"] / info["steps"]) / info["epochs"]
        fraction = (members.index(info["member"]) + within) / n_members
        return (min(0.95 * fraction, 0.95), f"{info['member']} epoch {info['epoch'] + 1}")

    new_dir = yield from with_progress(
        finetune,
        model_dir,
        [dataset_path],
        config=config,
        cancel=cancel_event.is_set,
        show_progress=False,
        to_message=to_message,
    )
    yield (0.96, "judging on held-out reviewed calls")
    old_ensemble, clips, truth_mm, dims = heldout
    report = compare_on_heldout(old_ensemble, load_ensemble(new_dir), clips, truth_mm, dims)
    write_temperature(new_dir, report.temperature, report.to_dict())
    return new_dir, report


class JobPanel(QWidget):
    """Progress bar and *Cancel* of the dock's background job (one at a time).

    A job is a napari ``thread_worker`` that yields ``(fraction, message)`` tuples or
    :class:`LocalizeBatch` records; ``cancel_event`` is set by *Cancel* (the job checks
    it between steps) and the worker is asked to quit.
    """

    def __init__(self, on_error, parent=None) -> None:
        super().__init__(parent, objectName="job_panel")
        self.on_error = on_error
        self.worker = None
        self.cancel_event = threading.Event()
        self.progress = QProgressBar(objectName="job_progress")
        self.progress.setTextVisible(True)
        self.cancel = button("Cancel", "cancel_job", self.cancel_job, "stop the running job")
        self.setLayout(row(self.progress, self.cancel, stretch=0))
        self._idle("idle")

    def busy(self) -> bool:
        """Whether a job runs."""
        return self.worker is not None

    def start(self, worker, message: str):
        """Run ``worker``; its yielded progress shows here. Returns the worker."""
        self.worker = worker
        self.cancel_event.clear()
        self.cancel.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.setFormat(f"{message}…")
        worker.errored.connect(self.on_error)
        worker.finished.connect(self._on_finished)
        worker.start()
        return worker

    def show_progress(self, fraction: float, message: str) -> None:
        """Show ``fraction`` (0..1) done with ``message``."""
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(max(fraction, 0.0), 1.0)))
        self.progress.setFormat(f"{message} %p%")

    def cancel_job(self) -> None:
        """Ask the running job to stop (what it finished is kept)."""
        if self.worker is not None:
            self.cancel_event.set()
            self.worker.quit()
            self.progress.setFormat("cancelling…")

    def _on_finished(self) -> None:
        cancelled = self.cancel_event.is_set()
        self.worker = None
        self._idle("cancelled" if cancelled else "done")

    def _idle(self, text: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if text == "done" else 0)
        self.progress.setFormat(text)
        self.cancel.setEnabled(False)

    def shutdown(self) -> None:
        """The dock closes: stop the job and drop its connections."""
        worker, self.worker = self.worker, None
        if worker is not None:
            self.cancel_event.set()
            for name in ("yielded", "returned", "errored", "finished"):
                signal = getattr(worker, name, None)
                try:
                    if signal is not None:
                        signal.disconnect()
                except (TypeError, RuntimeError):
                    pass
            worker.quit()
