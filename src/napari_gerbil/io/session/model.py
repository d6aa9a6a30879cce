"""The session data model: :class:`Session`, the calls under review and their attributions.

Its parts are in :mod:`napari_gerbil.io.session.records`; it is read and written by
:mod:`~napari_gerbil.io.session.read` and :mod:`~napari_gerbil.io.session.write`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry
from napari_gerbil.io.session.records import (
    MAX_EDIT_TIME_S,
    NOT_REVIEWED,
    PREDICTION_FIELDS,
    SCHEMA_VERSION,
    UNASSIGNED,
    AudioRef,
    CallTable,
    FileRef,
    PredictedAttribution,
    Predictions,
    UserAttribution,
    _ArrayEq,
)


@dataclasses.dataclass(eq=False)
class Session(_ArrayEq):
    """Everything the review loop needs, except the raw data it references.

    Frame <-> sample: with ``frame_times_s`` (audio-clock time of each video frame)
    the nearest frame is used; otherwise frame k is at ``video_offset_s + k / fps``.
    """

    audio: AudioRef
    arena: ArenaGeometry
    calls: CallTable = dataclasses.field(default_factory=CallTable.empty)
    video: FileRef | None = None
    tracks: FileRef | None = None
    frame_times_s: np.ndarray | None = None
    fps: float | None = None
    video_offset_s: float = 0.0
    animal_names: list[str] = dataclasses.field(default_factory=list)
    predictions: Predictions | None = None
    predicted: PredictedAttribution | None = None
    #: None in the constructor means no call reviewed (set in ``__post_init__``).
    user: UserAttribution = None  # type: ignore[assignment]
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    #: Where the session was loaded from / saved to (not stored).
    path: Path | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.frame_times_s is not None:
            self.frame_times_s = np.asarray(self.frame_times_s, dtype=np.float64).reshape(-1)
        self.animal_names = [str(a) for a in self.animal_names]
        if self.user is None:
            self.user = UserAttribution.unreviewed(len(self.calls))
        self.check()

    @property
    def n_calls(self) -> int:
        """Number of calls."""
        return len(self.calls)

    def check(self, source: str | os.PathLike | None = None) -> None:
        """Raise :class:`InvalidInputError` if the parts do not agree with each other."""
        n = self.n_calls
        src = source if source is not None else self.path
        parts = {
            "predictions/point_mm": None
            if self.predictions is None
            else len(self.predictions.point_mm),
            "attribution/predicted/animal": None
            if self.predicted is None
            else len(self.predicted.animal),
            "attribution/user/animal": len(self.user.animal),
        }
        for field, length in parts.items():
            if length is not None and length != n:
                raise InvalidInputError(src, field, f"{n} rows (one per call)", f"{length} rows")
        n_animals = len(self.animal_names)
        for field, codes in (
            ("attribution/user/animal", self.user.animal),
            (
                "attribution/predicted/animal",
                None if self.predicted is None else self.predicted.animal,
            ),
        ):
            if codes is not None and ((codes < NOT_REVIEWED) | (codes >= n_animals)).any():
                raise InvalidInputError(
                    src,
                    field,
                    f"codes -3..{n_animals - 1} ({n_animals} animals)",
                    f"{sorted(set(codes.tolist()))}",
                )
        if self.predicted is not None and self.predicted.probabilities.shape[1] != n_animals:
            raise InvalidInputError(
                src,
                "attribution/predicted/probabilities",
                f"{n_animals} columns (animals)",
                f"{self.predicted.probabilities.shape[1]}",
            )
        if self.arena.n_mics != self.audio.n_channels:
            raise InvalidInputError(
                src,
                "arena/mic_positions_mm",
                f"{self.audio.n_channels} mics (one per channel)",
                f"{self.arena.n_mics}",
            )
        if n and self.calls.stop_sample.max() > self.audio.n_samples:
            raise InvalidInputError(
                src,
                "calls/stop_sample",
                f"calls within the audio ({self.audio.n_samples} samples)",
                f"a call ending at sample {self.calls.stop_sample.max()}",
            )
        edit = self.user.edit_time_s
        bad = ~np.isnan(edit) & ~((edit >= 0) & (edit < MAX_EDIT_TIME_S))
        if bad.any():
            raise InvalidInputError(
                src,
                "attribution/user/edit_time_s",
                "unix seconds (0 .. year 9999) or NaN (never edited)",
                f"{edit[bad][0]!r} at call {int(np.argmax(bad))}",
            )
        if self.fps is not None and not self.fps > 0:
            raise InvalidInputError(src, "fps", "a positive frame rate", str(self.fps))
        ft = self.frame_times_s
        if ft is not None and (
            len(ft) == 0 or (np.diff(ft) <= 0).any() or not np.isfinite(ft).all()
        ):
            raise InvalidInputError(
                src, "frame_times_s", "finite increasing timestamps, one per frame", f"{ft[:5]}..."
            )

    # -- attribution helpers -----------------------------------------------------------
    def set_user_attribution(self, call_index: int, animal: int, now: float | None = None) -> None:
        """Record the user's decision for a call (animal index, UNASSIGNED or AMBIGUOUS)."""
        if not -2 <= animal < len(self.animal_names):
            raise InvalidInputError(
                self.path, "animal", f"-2..{len(self.animal_names) - 1}", str(animal)
            )
        self.user.animal[call_index] = animal
        self.user.edit_time_s[call_index] = time.time() if now is None else now
        assert self.user.decided_against is not None
        localized = self.predictions is not None and self.localized()[call_index]
        predicted = self.predicted.animal[call_index] if self.predicted is not None else UNASSIGNED
        self.user.decided_against[call_index] = predicted if localized else UNASSIGNED

    def clear_user_attribution(self, call_index: int, now: float | None = None) -> None:
        """Mark a call as not reviewed again."""
        self.user.animal[call_index] = NOT_REVIEWED
        self.user.edit_time_s[call_index] = time.time() if now is None else now
        assert self.user.decided_against is not None
        self.user.decided_against[call_index] = NOT_REVIEWED

    def effective_attribution(self) -> np.ndarray:
        """(n,) the user's decision where reviewed, else the predicted one (or -1)."""
        pred = (
            self.predicted.animal
            if self.predicted is not None
            else np.full(self.n_calls, UNASSIGNED)
        )
        return np.where(self.user.reviewed, self.user.animal, pred)

    def calls_table(self) -> dict[str, np.ndarray]:
        """Plain columns, one row per call (for tables and CSV export).

        ``call_id``, ``start_s``, ``stop_s``, ``point_x_mm``, ``point_y_mm``,
        ``set_area_mm2`` (NaN when not predicted), ``predicted``, ``user`` and
        ``effective`` attribution codes, ``edit_time_s``.
        """
        rate = self.audio.sample_rate_hz
        nan = np.full(self.n_calls, np.nan)
        pred = self.predictions
        return {
            "call_id": self.calls.call_id.copy(),
            "start_s": self.calls.start_sample / rate,
            "stop_s": self.calls.stop_sample / rate,
            "point_x_mm": nan.copy() if pred is None else pred.point_mm[:, 0].copy(),
            "point_y_mm": nan.copy() if pred is None else pred.point_mm[:, 1].copy(),
            "set_area_mm2": nan.copy() if pred is None else pred.set_area_mm2.copy(),
            "predicted": np.full(self.n_calls, UNASSIGNED)
            if self.predicted is None
            else self.predicted.animal.copy(),
            "user": self.user.animal.copy(),
            "effective": self.effective_attribution(),
            "edit_time_s": self.user.edit_time_s.copy(),
        }

    # -- row operations (one row per call; every per-call table kept aligned) ---------
    def _rows(self, index: Any) -> tuple[Any, ...]:
        """Copies of the per-call tables restricted to ``index`` (mask or indices)."""
        c, p, q, u = self.calls, self.predictions, self.predicted, self.user
        calls = CallTable(c.call_id[index], c.start_sample[index], c.stop_sample[index])
        predictions = None
        if p is not None:
            predictions = Predictions(
                p.point_mm[index],
                p.member_means_mm[index],
                p.member_chol_mm[index],
                p.set_area_mm2[index],
                p.model_version,
                p.call_model_version[index],
            )
        predicted = (
            None if q is None else PredictedAttribution(q.animal[index], q.probabilities[index])
        )
        assert u.decided_against is not None
        user = UserAttribution(u.animal[index], u.edit_time_s[index], u.decided_against[index])
        return calls, predictions, predicted, user

    def _indices(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = (idx < 0) | (idx >= self.n_calls)
        if bad.any():
            raise InvalidInputError(
                self.path,
                "call index",
                f"0..{self.n_calls - 1}",
                str(int(idx[np.argmax(bad)])),
            )
        return idx

    def take(self, indices: Any) -> Session:
        """A new session holding only calls ``indices`` (in that order), tables copied."""
        calls, predictions, predicted, user = self._rows(self._indices(indices))
        return dataclasses.replace(
            self, calls=calls, predictions=predictions, predicted=predicted, user=user
        )

    def append_calls(self, start_sample: Any, stop_sample: Any) -> np.ndarray:
        """Append calls [start, stop) with no prediction and no review; returns their rows.

        New calls get ids after the largest existing one. Raises InvalidInputError for
        bounds outside the audio (checked before anything changes).
        """
        starts = np.asarray(start_sample, np.int64).reshape(-1)
        stops = np.asarray(stop_sample, np.int64).reshape(-1)
        n_old, n_new = self.n_calls, len(starts)
        first_id = int(self.calls.call_id.max()) + 1 if n_old else 0
        calls = CallTable(
            np.concatenate([self.calls.call_id, first_id + np.arange(n_new)]),
            np.concatenate([self.calls.start_sample, starts]),
            np.concatenate([self.calls.stop_sample, stops]),
        )
        if n_new and stops.max() > self.audio.n_samples:
            raise InvalidInputError(
                self.path,
                "calls/stop_sample",
                f"calls within the audio ({self.audio.n_samples} samples)",
                f"a call ending at sample {stops.max()}",
            )
        self.calls = calls
        if self.predictions is not None:
            p, empty = self.predictions, Predictions.empty(n_new, self.predictions.n_members)
            self.predictions = Predictions(
                np.concatenate([p.point_mm, empty.point_mm]),
                np.concatenate([p.member_means_mm, empty.member_means_mm]),
                np.concatenate([p.member_chol_mm, empty.member_chol_mm]),
                np.concatenate([p.set_area_mm2, empty.set_area_mm2]),
                p.model_version,
                np.concatenate([p.call_model_version, empty.call_model_version]),
            )
        if self.predicted is not None:
            q = self.predicted
            n_animals = q.probabilities.shape[1]
            self.predicted = PredictedAttribution(
                np.concatenate([q.animal, np.full(n_new, UNASSIGNED)]),
                np.concatenate([q.probabilities, np.full((n_new, n_animals), np.nan)]),
            )
        assert self.user.decided_against is not None
        self.user = UserAttribution(
            np.concatenate([self.user.animal, np.full(n_new, NOT_REVIEWED)]),
            np.concatenate([self.user.edit_time_s, np.full(n_new, np.nan)]),
            np.concatenate([self.user.decided_against, np.full(n_new, NOT_REVIEWED)]),
        )
        return np.arange(n_old, n_old + n_new)

    def delete_calls(self, indices: Any) -> None:
        """Remove calls ``indices`` with their predictions and attributions."""
        keep = np.ones(self.n_calls, bool)
        keep[self._indices(indices)] = False
        self.calls, self.predictions, self.predicted, self.user = self._rows(keep)

    def clear_predictions(self, indices: Any) -> None:
        """Forget the prediction and predicted attribution of calls ``indices``.

        For calls whose audio changed; user attributions are kept.
        """
        idx = self._indices(indices)
        if self.predictions is not None:
            for k in PREDICTION_FIELDS:
                getattr(self.predictions, k)[idx] = np.nan
            self.predictions.call_model_version[idx] = ""
        if self.predicted is not None:
            self.predicted.animal[idx] = UNASSIGNED
            self.predicted.probabilities[idx] = np.nan

    def set_predictions(
        self,
        indices: Any,
        *,
        point_mm: np.ndarray,
        member_means_mm: np.ndarray,
        member_chol_mm: np.ndarray,
        set_area_mm2: np.ndarray,
        model_version: str,
        animal: np.ndarray,
        probabilities: np.ndarray,
    ) -> None:
        """Store predictions and predicted attributions of calls ``indices``.

        The other calls keep their predictions, whichever ensemble made them
        (``call_model_version`` says which). Only an ensemble with another member count
        replaces every earlier prediction (see :meth:`drops_predictions`). User
        attributions are never touched.
        """
        idx = self._indices(indices)
        n_members = np.shape(member_means_mm)[1]
        p = self.predictions
        if p is None or p.n_members != n_members:
            self.predictions = p = Predictions.empty(self.n_calls, n_members, model_version)
            self.predicted = None
        p.model_version = model_version
        p.call_model_version[idx] = model_version
        p.point_mm[idx] = point_mm
        p.member_means_mm[idx] = member_means_mm
        p.member_chol_mm[idx] = member_chol_mm
        p.set_area_mm2[idx] = set_area_mm2
        n_animals = len(self.animal_names)
        if self.predicted is None:
            self.predicted = PredictedAttribution(
                np.full(self.n_calls, UNASSIGNED), np.full((self.n_calls, n_animals), np.nan)
            )
        self.predicted.animal[idx] = animal
        self.predicted.probabilities[idx] = probabilities

    def localized(self) -> np.ndarray:
        """(n,) bool: the call has a prediction."""
        if self.predictions is None:
            return np.zeros(self.n_calls, bool)
        return np.isfinite(self.predictions.point_mm).all(axis=1)

    def localized_by(self, model_version: str) -> np.ndarray:
        """(n,) bool: the call has a prediction made by ensemble ``model_version``."""
        if self.predictions is None:
            return np.zeros(self.n_calls, bool)
        return self.localized() & (self.predictions.call_model_version == model_version)

    def drops_predictions(self, indices: Any, n_members: int) -> np.ndarray:
        """Rows whose prediction storing calls ``indices`` from an ensemble would drop.

        Only an ensemble with another member count than the stored predictions drops
        those of the calls it does not localize (:meth:`set_predictions`).
        """
        p = self.predictions
        if p is None or p.n_members == int(n_members):
            return np.zeros(0, np.int64)
        others = self.localized()
        others[self._indices(indices)] = False
        return np.flatnonzero(others)

    def read_call_audio(self, index: int, audio: Any = None) -> np.ndarray:
        """Audio of call ``index``: float32 (stop - start, n_channels).

        ``audio`` is an opened :class:`~napari_gerbil.io.audio.AudioSource` of this
        session (reuse it when reading many calls); None opens (and closes) one.
        """
        i = int(self._indices([index])[0])
        start, stop = int(self.calls.start_sample[i]), int(self.calls.stop_sample[i])
        if audio is not None:
            return audio.read(start, stop)
        source = self.audio.open()
        try:
            return source.read(start, stop)
        finally:
            source.close()

    def read_calls_audio(self, indices: Any, audio: Any = None) -> list[np.ndarray]:
        """Audio of calls ``indices`` (a list of (n_i, n_channels) arrays)."""
        idx = self._indices(indices)
        if audio is not None:
            return [self.read_call_audio(int(i), audio) for i in idx]
        source = self.audio.open()
        try:
            return [self.read_call_audio(int(i), source) for i in idx]
        finally:
            source.close()

    # -- clocks ------------------------------------------------------------------------
    def _frame_times(self, frames: np.ndarray) -> np.ndarray:
        if self.frame_times_s is not None:
            idx = np.clip(frames, 0, len(self.frame_times_s) - 1)
            return self.frame_times_s[idx]
        if self.fps is None:
            raise InvalidInputError(self.path, "fps", "a frame rate or frame_times_s", "neither")
        return self.video_offset_s + frames / self.fps

    def frame_of_sample(self, sample: Any) -> np.ndarray | int:
        """Video frame nearest in time to audio ``sample`` (scalar or array).

        With timestamps the result is clipped to the video's frames; with fps + offset
        it can be negative or past the end for calls outside the video.
        """
        t = np.asarray(sample, dtype=np.float64) / self.audio.sample_rate_hz
        if self.frame_times_s is None:
            self._frame_times(np.zeros(1, np.int64))  # raises when there is no fps
            frame = np.rint((t - self.video_offset_s) * float(self.fps or 0.0)).astype(np.int64)
        else:
            ft = self.frame_times_s
            right = np.clip(np.searchsorted(ft, t), 0, len(ft) - 1)
            left = np.maximum(right - 1, 0)
            frame = np.where(np.abs(ft[left] - t) <= np.abs(ft[right] - t), left, right)
        return int(frame) if np.ndim(frame) == 0 else frame

    def sample_of_frame(self, frame: Any) -> np.ndarray | int:
        """Audio sample at the time of video ``frame`` (scalar or array)."""
        frames = np.asarray(frame, dtype=np.int64)
        sample = np.rint(self._frame_times(frames) * self.audio.sample_rate_hz).astype(np.int64)
        return int(sample) if np.ndim(sample) == 0 else sample

    def verify_files(self) -> dict[str, str]:
        """Status (``ok``/``missing``/``changed``) of every referenced file by role."""
        out = {f"audio[{i}]": ref.verify() for i, ref in enumerate(self.audio.files)}
        for role in ("video", "tracks"):
            ref = getattr(self, role)
            if ref is not None:
                out[role] = ref.verify()
        return out
