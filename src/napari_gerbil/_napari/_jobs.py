"""Long jobs of the review widget, run in ``napari.qt.threading`` workers.

Workers compute and yield plain results; the widget applies them to the session and
the layers in the main thread (workers never touch layers).
"""

from __future__ import annotations

import numpy as np
from napari.qt.threading import thread_worker

from napari_gerbil import pipeline
from napari_gerbil.io.session import Session
from napari_gerbil.pipeline import LOCALIZE_BATCH, LocalizedBatch
from napari_gerbil.progress import CancelToken, Progress, stream_progress

__all__ = ["LOCALIZE_BATCH", "LocalizedBatch", "localize_worker"]


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
def retrain_worker(model_dir, dataset_path, epochs: int, cancel: CancelToken | None = None):
    """Fine-tune the ensemble in ``model_dir`` on ``dataset_path`` for ``epochs``.

    At a tenth of the parent's learning rate, into a new model version; returns its
    directory. Yields :class:`~napari_gerbil.progress.Progress`; cancelling stops at the
    next step.
    """
    from napari_gerbil.training.progress import finetune_with_progress

    return (
        yield from stream_progress(
            finetune_with_progress, model_dir, dataset_path, epochs, cancel=cancel
        )
    )


def progress_record(value) -> Progress:
    """A worker's yielded value as a :class:`~napari_gerbil.progress.Progress`."""
    if isinstance(value, Progress):
        return value
    if isinstance(value, LocalizedBatch):
        return value.progress
    fraction, message = value
    return Progress(fraction, message)
