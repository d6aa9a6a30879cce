"""The session pipeline: detect or import calls, localize them, attribute them.

One implementation for the napari dock, the command line and the tests:

- :func:`localize_calls` is the core generator: it reads each batch of calls' audio,
  runs the ensemble, measures the 95% sets and attributes the calls to the animals
  inside them, and yields a :class:`LocalizedBatch` per batch (with its
  :class:`~napari_gerbil.progress.Progress`). It never writes; the dock applies batches
  to its :class:`~napari_gerbil.review.ReviewModel` as they come.
- :func:`localize_session` drives it over a session file for the command line: it skips
  calls already localized by the same model (resume after a kill), and saves
  predictions and predicted attributions atomically every ``save_every_s`` and at the
  end, into the file as it is on disk then, so user attributions are never touched.
- :func:`detect_session` and :func:`import_calls` add calls to a session file.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.checks import open_session
from napari_gerbil.io.session import Session, load_session, save_session
from napari_gerbil.progress import (
    CancelCheck,
    Progress,
    ProgressCallback,
    check_cancel,
    report,
    scaled,
)

#: Calls per ensemble forward pass while localizing.
LOCALIZE_BATCH = 16
#: Probability of the confidence sets drawn and used for attribution.
MASS = 0.95


@dataclasses.dataclass
class LocalizedBatch:
    """Predictions and attributions of some calls of a session.

    Attributes
    ----------
    indices
        (b,) call rows.
    means_mm, chol_mm
        (b, M, 2) member means and (b, M, 2, 2) Cholesky factors (mm).
    point_mm
        (b, 2) mixture mean.
    set_area_mm2
        (b,) area of the 95% set.
    animal
        (b,) predicted attribution code.
    probabilities
        (b, n_animals) animal probabilities (NaN where untracked).
    model_version
        :attr:`napari_gerbil.model.ensemble.Ensemble.version`.
    done, total
        Calls localized so far and in all, in this run.
    """

    indices: np.ndarray
    means_mm: np.ndarray
    chol_mm: np.ndarray
    point_mm: np.ndarray
    set_area_mm2: np.ndarray
    animal: np.ndarray
    probabilities: np.ndarray
    model_version: str
    done: int
    total: int

    @property
    def progress(self) -> Progress:
        """How far the run is after this batch."""
        return Progress(self.done / max(self.total, 1), f"localized {self.done}/{self.total}")

    def session_fields(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`napari_gerbil.io.session.Session.set_predictions`."""
        return {
            "point_mm": self.point_mm,
            "member_means_mm": self.means_mm,
            "member_chol_mm": self.chol_mm,
            "set_area_mm2": self.set_area_mm2,
            "model_version": self.model_version,
            "animal": self.animal,
            "probabilities": self.probabilities,
        }


def load_session_poses(session: Session) -> Any:
    """The session's pose tracks, or None without tracks or video calibration."""
    if session.tracks is None or session.arena.arena_to_pixels is None:
        return None
    from napari_gerbil.io.tracks import load_poses

    return load_poses(session.tracks.path)


def localize_calls(
    session: Session,
    ensemble: Any,
    indices: Any = None,
    *,
    poses: Any = None,
    audio: Any = None,
    node: int | str = 0,
    batch_size: int = LOCALIZE_BATCH,
    mass: float = MASS,
    calibration: Any = None,
    cancel: CancelCheck | None = None,
) -> Iterator[LocalizedBatch]:
    """Localize and attribute calls of ``session``, one batch at a time (a generator).

    Parameters
    ----------
    session
        The session; not modified.
    ensemble
        A loaded :class:`~napari_gerbil.model.ensemble.Ensemble`.
    indices
        Call rows (default: all).
    poses
        The session's pose tracks (None: no attribution, every call unassigned).
    audio
        An opened audio source of the session (default: opened and closed here).
    node
        Pose node used as each animal's position.
    batch_size
        Calls per forward pass (memory is bounded by the batch).
    mass
        Probability of the confidence sets.
    calibration
        :class:`~napari_gerbil.attribute.AttributionCalibration` (default: the model
        directory's ``attribution.yaml``, else the default scales).
    cancel
        Checked before each batch; raises :class:`~napari_gerbil.progress.Cancelled`.

    Yields
    ------
    LocalizedBatch
        Raises :class:`~napari_gerbil.errors.IncompatibleModelError` before any work if
        the model does not fit the session's channels, sample rate, arena or microphones.
    """
    from napari_gerbil.attribute import attribute_calls, load_calibration
    from napari_gerbil.model.confidence import confidence_sets
    from napari_gerbil.review import animal_positions_mm

    ensemble.check_compatible(
        n_channels=session.audio.n_channels,
        sample_rate_hz=session.audio.sample_rate_hz,
        arena_dims_mm=session.arena.dims_mm,
        source=session.path,
        mic_positions_mm=session.arena.mic_positions_mm,
    )
    rows = np.arange(session.n_calls) if indices is None else np.asarray(indices, np.int64)
    rows = rows.reshape(-1)
    if batch_size < 1:
        raise InvalidInputError(None, "batch_size", ">= 1", str(batch_size))
    dims = session.arena.dims_mm
    if calibration is None:
        calibration = load_calibration(getattr(ensemble, "path", None))
    scorer = None
    if calibration.uses_scorer and poses is not None:
        from napari_gerbil.model.scorer import load_model_scorer

        scorer = load_model_scorer(
            ensemble.path, session.arena.mic_positions_mm, session.audio.sample_rate_hz,
            session.path,
        )  # fmt: skip
    source = session.audio.open() if audio is None else audio
    try:
        total = len(rows)
        for start in range(0, total, batch_size):
            check_cancel(cancel, "localization")
            chunk = rows[start : start + batch_size]
            clips = session.read_calls_audio(chunk, source)
            prediction = ensemble.predict(clips, batch_size=len(clips))
            sets = confidence_sets(prediction, dims, mass=mass)
            positions = animal_positions_mm(session, poses, chunk, node)
            headings = None
            if scorer is not None:
                from napari_gerbil.io.animals import animal_headings_at_calls

                headings = animal_headings_at_calls(session.take(chunk), poses)
            attribution = attribute_calls(
                positions,
                calibration,
                calls=clips,
                mic_positions_mm=session.arena.mic_positions_mm,
                sample_rate_hz=session.audio.sample_rate_hz,
                prediction=prediction,
                headings_rad=headings,
                scorer=scorer,
            )
            yield LocalizedBatch(
                indices=chunk,
                means_mm=prediction.means_mm,
                chol_mm=prediction.chol_mm,
                point_mm=prediction.point_mm,
                set_area_mm2=np.array([s.area_mm2 for s in sets]),
                animal=np.asarray(attribution.animal),
                probabilities=np.asarray(attribution.probabilities),
                model_version=ensemble.version,
                done=start + len(chunk),
                total=total,
            )
    finally:
        if audio is None:
            source.close()


@dataclasses.dataclass
class LocalizeSummary:
    """What :func:`localize_session` did."""

    path: Path
    n_calls: int
    n_localized: int  # in this run
    n_skipped: int  # already localized by the same model
    model_version: str
    n_saves: int


def _save_predictions(work: Session, path: Path) -> None:
    """Write ``work``'s predictions into the session file as it is on disk now.

    Everything else (user attributions above all) is taken from the file, so edits
    made meanwhile (the dock) are kept. Refuses if the calls changed meanwhile.
    """
    on_disk = load_session(path)
    same = (
        on_disk.n_calls == work.n_calls
        and np.array_equal(on_disk.calls.call_id, work.calls.call_id)
        and np.array_equal(on_disk.calls.start_sample, work.calls.start_sample)
        and np.array_equal(on_disk.calls.stop_sample, work.calls.stop_sample)
    )
    if not same:
        raise InvalidInputError(
            path,
            "calls",
            "the calls the localization started with",
            "calls added, deleted or moved meanwhile",
            hint="Run localize again: calls already localized are kept.",
        )
    on_disk.predictions, on_disk.predicted = work.predictions, work.predicted
    save_session(on_disk, path)


def localize_session(
    path: str | os.PathLike,
    ensemble: Any,
    *,
    redo: bool = False,
    node: int | str = 0,
    batch_size: int = LOCALIZE_BATCH,
    mass: float = MASS,
    save_every_s: float = 30.0,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> LocalizeSummary:
    """Localize and attribute the calls of a session file; save them into it atomically.

    Parameters
    ----------
    path
        Session file (``*.gerbil.h5``), updated in place.
    ensemble
        A loaded ensemble.
    redo
        Localize every call again, even those already localized by this model.
    node, batch_size, mass
        See :func:`localize_calls`.
    save_every_s
        Save the predictions made so far this often (a killed run resumes from there).
    progress, cancel
        The :mod:`napari_gerbil.progress` protocol. On cancel the predictions made so
        far are saved, then :class:`~napari_gerbil.progress.Cancelled` is raised.
    """
    path = Path(path).absolute()
    session = open_session(path)  # its audio and poses present and unchanged
    poses = load_session_poses(session)
    todo = np.arange(session.n_calls)
    if not redo:  # resume: skip the calls this model localized already
        todo = np.flatnonzero(~session.localized_by(ensemble.version))
    n_skipped = session.n_calls - len(todo)
    n_done, n_saves, last_save = 0, 0, time.monotonic()
    report(progress, n_skipped / max(session.n_calls, 1), f"{n_skipped} calls already localized")
    unsaved = False
    try:
        for batch in localize_calls(
            session,
            ensemble,
            todo,
            poses=poses,
            node=node,
            batch_size=batch_size,
            mass=mass,
            cancel=cancel,
        ):
            session.set_predictions(batch.indices, **batch.session_fields())
            n_done, unsaved = batch.done, True
            report(
                progress,
                (n_skipped + batch.done) / session.n_calls,
                f"localized {n_skipped + batch.done}/{session.n_calls}",
            )
            if time.monotonic() - last_save >= save_every_s:
                _save_predictions(session, path)
                n_saves, unsaved, last_save = n_saves + 1, False, time.monotonic()
    finally:
        if unsaved:  # also on cancel or error: keep what is done
            _save_predictions(session, path)
            n_saves += 1
    report(progress, 1.0, f"localized {session.n_calls}/{session.n_calls}")
    return LocalizeSummary(path, session.n_calls, n_done, n_skipped, ensemble.version, n_saves)


def detect_session(
    path: str | os.PathLike,
    config: Any = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> int:
    """Detect calls in a session's audio; add those overlapping no call; save atomically.

    Parameters
    ----------
    path
        Session file, updated in place (only its calls table grows).
    config
        :class:`~napari_gerbil.signal.detect.DetectorConfig` (default parameters if None).
    progress, cancel
        The :mod:`napari_gerbil.progress` protocol; a cancelled run changes nothing.

    Returns
    -------
    int
        Number of calls added.
    """
    from napari_gerbil.signal.detect import DetectorConfig, detect_calls

    path = Path(path).absolute()
    session = open_session(path)  # its audio present and unchanged
    config = config or DetectorConfig()
    with session.audio.open() as audio:
        starts, stops = detect_calls(
            audio, config, progress=scaled(progress, 0.0, 0.99), cancel=cancel
        )
    return _add_and_save(path, starts, stops, progress)


@dataclasses.dataclass
class CallsImport:
    """What :func:`import_calls` did: calls added, duplicate rows dropped."""

    n_added: int
    n_duplicates: int


def import_calls(
    path: str | os.PathLike,
    table: str | os.PathLike,
    *,
    progress: ProgressCallback | None = None,
) -> CallsImport:
    """Add the calls of a segments table (CSV/TSV, seconds) to a session file.

    Duplicate rows (a Raven selection in several views, a repeated row) count once
    (:func:`~napari_gerbil.signal.segments.read_segments`); calls overlapping an
    existing call are skipped.
    """
    from napari_gerbil.signal.segments import read_segments

    path = Path(path).absolute()
    session = load_session(path)
    segments = read_segments(table, session.audio.sample_rate_hz)
    starts, stops = segments.start_samples, segments.stop_samples
    rate = session.audio.sample_rate_hz
    if len(stops) and stops.max() > session.audio.n_samples:
        raise InvalidInputError(
            table,
            "stop",
            f"calls within the audio (0 .. {session.audio.n_samples / rate:.3f} s)",
            f"a call ending at {stops.max() / rate:.3f} s",
        )
    return CallsImport(_add_and_save(path, starts, stops, progress), segments.n_duplicates)


def _add_and_save(
    path: Path, starts: np.ndarray, stops: np.ndarray, progress: ProgressCallback | None
) -> int:
    """Add non-overlapping calls to the session file as it is on disk now; save."""
    from napari_gerbil.review import add_new_calls

    session = load_session(path)
    added = add_new_calls(session, starts, stops)
    if added:
        save_session(session, path)
    report(progress, 1.0, f"added {added} calls")
    return added
