"""Session files (``*.gerbil.h5``): the plugin's working file.

A session references the recording (audio, video, pose tracks) by path, size and
checksum, and holds the arena geometry, the calls table, the ensemble predictions, the
predicted attributions and — kept apart, like SLEAP's user vs predicted instances — the
user's attributions with their edit times. It never holds raw audio, so saving is cheap
and atomic (temporary file, flush, fsync, ``os.replace``). Layout: docs/formats.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry
from napari_gerbil.io.atomic import atomic_h5_file
from napari_gerbil.io.h5values import number, strings, text
from napari_gerbil.io.inputs import check_input_file

FORMAT_NAME = "session"
SCHEMA_VERSION = 1
SESSION_SUFFIX = ".gerbil.h5"
#: Bytes hashed at each end of a referenced file (see :func:`file_checksum`).
CHECKSUM_BLOCK_BYTES = 1 << 20
#: Attribution codes (``animal`` arrays hold an animal index >= 0 or one of these).
UNASSIGNED = -1
AMBIGUOUS = -2
NOT_REVIEWED = -3
_STR = h5py.string_dtype("utf-8")
#: Per-call arrays of :class:`Predictions`, in constructor order.
PREDICTION_FIELDS = ("point_mm", "member_means_mm", "member_chol_mm", "set_area_mm2")


def file_checksum(path: str | os.PathLike) -> str:
    """Cheap content fingerprint: sha256 of the size and the first and last 1 MiB.

    Returns ``"sha256-ends:<hex>"``. Detects replaced, truncated or re-encoded files
    in constant time even for hours of audio (it does not detect a change confined to
    the middle of a file larger than 2 MiB).
    """
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(CHECKSUM_BLOCK_BYTES))
        if size > CHECKSUM_BLOCK_BYTES:
            fh.seek(max(size - CHECKSUM_BLOCK_BYTES, CHECKSUM_BLOCK_BYTES))
            h.update(fh.read())
    return "sha256-ends:" + h.hexdigest()


def _eq(a: Any, b: Any) -> bool:
    """Deep equality for dataclasses holding numpy arrays (NaN equals NaN)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return False
        return all(
            _eq(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a) if f.compare
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if a is None or b is None:
            return False
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class _ArrayEq:
    def __eq__(self, other: object) -> bool:
        return _eq(self, other)

    __hash__ = None  # type: ignore[assignment]


#: Latest edit time a session may hold (unix s, year 9999).
MAX_EDIT_TIME_S = 253402300799.0


@dataclasses.dataclass(eq=False)
class FileRef(_ArrayEq):
    """A referenced file: absolute ``path`` in memory, relative to the session on disk.

    Parameters
    ----------
    path
        Absolute path of the file.
    size_bytes
        Size when referenced.
    checksum
        :func:`file_checksum` when referenced.
    """

    path: Path
    size_bytes: int
    checksum: str

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.size_bytes = int(self.size_bytes)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> FileRef:
        """Reference an existing file (computes size and checksum)."""
        p = Path(path).absolute()
        if not p.is_file():
            raise InvalidInputError(p, "<file>", "an existing file", "no such file")
        return cls(p, p.stat().st_size, file_checksum(p))

    def verify(self) -> str:
        """``"ok"``, ``"missing"`` (moved/deleted) or ``"changed"`` (size or checksum)."""
        if not self.path.is_file():
            return "missing"
        if self.path.stat().st_size != self.size_bytes or file_checksum(self.path) != self.checksum:
            return "changed"
        return "ok"


@dataclasses.dataclass(eq=False)
class AudioRef(_ArrayEq):
    """The session's audio: an HDF5 dataset, one multichannel WAV or one WAV per channel.

    Parameters
    ----------
    files
        One file, or one WAV per channel (in channel order).
    dataset
        HDF5 dataset path inside ``files[0]`` (None for WAV).
    sample_rate_hz, n_channels, n_samples
        As read when the session was made.
    """

    files: list[FileRef]
    dataset: str | None
    sample_rate_hz: float
    n_channels: int
    n_samples: int

    @classmethod
    def from_source(cls, source: Any) -> AudioRef:
        """Reference the files of an opened :class:`~napari_gerbil.io.audio.AudioSource`."""
        return cls(
            [FileRef.from_file(p) for p in source.paths],
            source.dataset,
            float(source.sample_rate_hz),
            int(source.n_channels),
            int(source.n_samples),
        )

    def open(self) -> Any:
        """Open the referenced audio lazily (:class:`~napari_gerbil.io.audio.AudioSource`)."""
        from napari_gerbil.io.audio import AudioSource

        paths = [f.path for f in self.files]
        src = AudioSource.open(
            paths if len(paths) > 1 else paths[0],
            dataset=self.dataset or "audio",
            sample_rate_hz=self.sample_rate_hz,
        )
        for field, want, got in (
            ("n_channels", self.n_channels, src.n_channels),
            ("n_samples", self.n_samples, src.n_samples),
        ):
            if want != got:
                raise InvalidInputError(paths[0], field, f"{want} (as the session)", f"{got}")
        return src


@dataclasses.dataclass(eq=False)
class CallTable(_ArrayEq):
    """Calls: id and [start, stop) in audio samples (the master clock)."""

    call_id: np.ndarray
    start_sample: np.ndarray
    stop_sample: np.ndarray

    def __post_init__(self) -> None:
        self.call_id = np.asarray(self.call_id, dtype=np.int64).reshape(-1)
        self.start_sample = np.asarray(self.start_sample, dtype=np.int64).reshape(-1)
        self.stop_sample = np.asarray(self.stop_sample, dtype=np.int64).reshape(-1)
        n = len(self.call_id)
        for name in ("start_sample", "stop_sample"):
            if len(getattr(self, name)) != n:
                raise InvalidInputError(
                    None,
                    f"calls/{name}",
                    f"{n} values (one per call)",
                    str(len(getattr(self, name))),
                )
        if (self.stop_sample <= self.start_sample).any() or (self.start_sample < 0).any():
            i = int(np.argmax((self.stop_sample <= self.start_sample) | (self.start_sample < 0)))
            raise InvalidInputError(
                None,
                "calls",
                "0 <= start_sample < stop_sample",
                f"call {i}: [{self.start_sample[i]}, {self.stop_sample[i]})",
            )
        if len(np.unique(self.call_id)) != n:
            raise InvalidInputError(None, "calls/call_id", "unique ids", "duplicates")

    @classmethod
    def empty(cls) -> CallTable:
        """A table with no calls."""
        return cls(np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def from_samples(cls, start_sample: Any, stop_sample: Any) -> CallTable:
        """Calls numbered 0..n-1 from their sample bounds."""
        start = np.asarray(start_sample)
        return cls(np.arange(len(start)), start, stop_sample)

    def __len__(self) -> int:
        return len(self.call_id)


@dataclasses.dataclass(eq=False)
class Predictions(_ArrayEq):
    """Ensemble output per call (NaN rows for calls not predicted yet).

    Parameters
    ----------
    point_mm
        (n, 2) point estimate (mixture mean or mode) in the arena frame.
    member_means_mm
        (n, M, 2) mean of each ensemble member.
    member_chol_mm
        (n, M, 2, 2) lower Cholesky factor of each member's covariance (mm).
    set_area_mm2
        (n,) area of the 95% confidence set.
    model_version
        Identifier of the ensemble (its manifest version / hash) that localized last.
    call_model_version
        (n,) str: the ensemble that made each call's prediction ("" where none). Files
        written before it was stored: ``model_version`` for every localized call.
    """

    point_mm: np.ndarray
    member_means_mm: np.ndarray
    member_chol_mm: np.ndarray
    set_area_mm2: np.ndarray
    model_version: str = ""
    call_model_version: np.ndarray = None  # type: ignore[assignment]  # filled in __post_init__

    def __post_init__(self) -> None:
        self.point_mm = np.asarray(self.point_mm, dtype=np.float64)
        self.member_means_mm = np.asarray(self.member_means_mm, dtype=np.float64)
        self.member_chol_mm = np.asarray(self.member_chol_mm, dtype=np.float64)
        self.set_area_mm2 = np.asarray(self.set_area_mm2, dtype=np.float64).reshape(-1)
        n = len(self.point_mm)
        m = self.member_means_mm.shape[1] if self.member_means_mm.ndim == 3 else -1
        for name, shape in (
            ("point_mm", (n, 2)),
            ("member_means_mm", (n, m, 2)),
            ("member_chol_mm", (n, m, 2, 2)),
            ("set_area_mm2", (n,)),
        ):
            found = getattr(self, name).shape
            if found != shape or m < 1:
                raise InvalidInputError(
                    None,
                    f"predictions/{name}",
                    f"shape {shape} (n_calls={n}, members={m})",
                    f"shape {found}",
                )
        if self.call_model_version is None:
            made = np.isfinite(self.point_mm).all(axis=1)
            self.call_model_version = np.where(made, self.model_version, "").astype(object)
        self.call_model_version = np.asarray(
            [str(v) for v in np.asarray(self.call_model_version, dtype=object).reshape(-1)],
            dtype=object,
        ).reshape(-1)
        if self.call_model_version.shape != (n,):
            raise InvalidInputError(
                None,
                "predictions/call_model_version",
                f"shape {(n,)} (one per call)",
                f"shape {self.call_model_version.shape}",
            )

    @property
    def n_members(self) -> int:
        """Number of ensemble members M."""
        return self.member_means_mm.shape[1]

    @classmethod
    def empty(cls, n_calls: int, n_members: int, model_version: str = "") -> Predictions:
        """All-NaN predictions (nothing predicted yet)."""
        nan = np.nan
        return cls(
            np.full((n_calls, 2), nan),
            np.full((n_calls, n_members, 2), nan),
            np.full((n_calls, n_members, 2, 2), nan),
            np.full(n_calls, nan),
            model_version,
            np.full(n_calls, "", dtype=object),
        )


@dataclasses.dataclass(eq=False)
class PredictedAttribution(_ArrayEq):
    """Attribution computed from predictions and poses.

    ``animal`` (n,) index into ``Session.animal_names``, or UNASSIGNED (-1) /
    AMBIGUOUS (-2); ``probabilities`` (n, n_animals) (NaN when not computed).
    """

    animal: np.ndarray
    probabilities: np.ndarray

    def __post_init__(self) -> None:
        self.animal = np.asarray(self.animal, dtype=np.int64).reshape(-1)
        self.probabilities = np.asarray(self.probabilities, dtype=np.float64)
        if self.probabilities.ndim != 2 or len(self.probabilities) != len(self.animal):
            raise InvalidInputError(
                None,
                "attribution/predicted/probabilities",
                f"shape ({len(self.animal)}, n_animals)",
                f"shape {self.probabilities.shape}",
            )


@dataclasses.dataclass(eq=False)
class UserAttribution(_ArrayEq):
    """The user's decisions.

    ``animal`` (n,) index / -1 / -2, or NOT_REVIEWED (-3); ``edit_time_s`` (n,) unix time
    of the last edit (NaN if never edited); ``decided_against`` (n,) the predicted code
    the decision was made against (-1 if the call had no prediction; NOT_REVIEWED where
    unknown: files written before it was stored). A call is *confirmed* when the user
    kept that prediction and *corrected* when not, whatever later localizations predict.
    """

    animal: np.ndarray
    edit_time_s: np.ndarray
    decided_against: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.animal = np.asarray(self.animal, dtype=np.int64).reshape(-1)
        self.edit_time_s = np.asarray(self.edit_time_s, dtype=np.float64).reshape(-1)
        if self.decided_against is None:
            self.decided_against = np.full(self.animal.shape, NOT_REVIEWED)
        self.decided_against = np.asarray(self.decided_against, dtype=np.int64).reshape(-1)
        for name in ("edit_time_s", "decided_against"):
            if getattr(self, name).shape != self.animal.shape:
                raise InvalidInputError(
                    None,
                    f"attribution/user/{name}",
                    f"shape {self.animal.shape}",
                    f"shape {getattr(self, name).shape}",
                )

    @classmethod
    def unreviewed(cls, n_calls: int) -> UserAttribution:
        """No call reviewed."""
        return cls(np.full(n_calls, NOT_REVIEWED), np.full(n_calls, np.nan))

    @property
    def reviewed(self) -> np.ndarray:
        """(n,) bool: the user decided on this call."""
        return self.animal != NOT_REVIEWED


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


# ---------------------------------------------------------------------------------------
# HDF5 I/O
# ---------------------------------------------------------------------------------------


def _write_ref(group: h5py.Group, ref: FileRef, base: Path) -> None:
    try:
        rel = os.path.relpath(ref.path, base)
    except ValueError:  # another drive (Windows)
        rel = str(ref.path)
    group.attrs["path"] = Path(rel).as_posix()
    group.attrs["absolute_path"] = str(ref.path)
    group.attrs["size_bytes"] = ref.size_bytes
    group.attrs["checksum"] = ref.checksum


def _read_ref(group: h5py.Group, base: Path, source: Path) -> FileRef:
    for key in ("path", "size_bytes", "checksum"):
        if key not in group.attrs:
            raise InvalidInputError(source, f"{group.name}@{key}", "an attribute", "missing")
    rel = base / text(source, f"{group.name}@path", group.attrs["path"])
    absolute = Path(
        text(source, f"{group.name}@absolute_path", group.attrs.get("absolute_path", str(rel)))
    )
    # Relative to the session first (data moved along with it), else where it was.
    path = rel if rel.exists() or not absolute.exists() else absolute
    size = number(
        source,
        f"{group.name}@size_bytes",
        group.attrs["size_bytes"],
        integer=True,
        nonnegative=True,
    )
    checksum = text(source, f"{group.name}@checksum", group.attrs["checksum"])
    return FileRef(Path(os.path.normpath(path)), int(size), checksum)


def _ds(f: h5py.Group, name: str, source: Path, ndim: int | None = None) -> np.ndarray:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise InvalidInputError(source, f"/{name}", "a dataset", "no such dataset")
    arr = obj[()]
    if ndim is not None and np.ndim(arr) != ndim:
        raise InvalidInputError(source, f"/{name}", f"{ndim}-D array", f"shape {np.shape(arr)}")
    return arr


def _call_versions(p: h5py.Group, source: Path) -> Any:
    """``/predictions/call_model_version`` (None in files written before it was stored)."""
    if "call_model_version" not in p:
        return None
    return np.asarray(
        strings(source, "/predictions/call_model_version", _ds(p, "call_model_version", source, 1)),
        dtype=object,
    )


def save_session(session: Session, path: str | os.PathLike) -> Path:
    """Write ``session`` to ``path`` atomically; a crash leaves the old or the new file."""
    path = Path(path).absolute()
    base = path.parent
    session.check(path)
    with atomic_h5_file(path) as f:  # built in memory: a full disk is one clean error
        f.attrs["napari_gerbil_format"] = FORMAT_NAME
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["provenance"] = json.dumps(session.provenance, sort_keys=True, default=str)
        a = f.create_group("audio")
        a.attrs["dataset"] = session.audio.dataset or ""
        a.attrs["sample_rate_hz"] = float(session.audio.sample_rate_hz)
        a.attrs["n_channels"] = int(session.audio.n_channels)
        a.attrs["n_samples"] = int(session.audio.n_samples)
        a.attrs["n_files"] = len(session.audio.files)
        for i, ref in enumerate(session.audio.files):
            _write_ref(a.create_group(f"file{i}"), ref, base)
        for role in ("video", "tracks"):
            ref = getattr(session, role)
            if ref is not None:
                _write_ref(f.create_group(role), ref, base)
        t = f.create_group("timing")
        t.attrs["fps"] = np.nan if session.fps is None else float(session.fps)
        t.attrs["video_offset_s"] = float(session.video_offset_s)
        if session.frame_times_s is not None:
            t["frame_times_s"] = session.frame_times_s
        g = f.create_group("arena")
        g["dims_mm"] = session.arena.dims_mm
        g["mic_positions_mm"] = session.arena.mic_positions_mm
        if session.arena.arena_to_pixels is not None:
            g["arena_to_pixels"] = session.arena.arena_to_pixels
        f.create_dataset("animal_names", data=session.animal_names, dtype=_STR)
        c = f.create_group("calls")
        c["call_id"] = session.calls.call_id
        c["start_sample"] = session.calls.start_sample
        c["stop_sample"] = session.calls.stop_sample
        if session.predictions is not None:
            p = f.create_group("predictions")
            pr = session.predictions
            p.attrs["model_version"] = pr.model_version
            for name in PREDICTION_FIELDS:
                p[name] = getattr(pr, name)
            p.create_dataset("call_model_version", data=pr.call_model_version.tolist(), dtype=_STR)
        if session.predicted is not None:
            q = f.create_group("attribution/predicted")
            q["animal"] = session.predicted.animal
            q["probabilities"] = session.predicted.probabilities
        u = f.create_group("attribution/user")
        u["animal"] = session.user.animal
        u["edit_time_s"] = session.user.edit_time_s
        u["decided_against"] = session.user.decided_against
    session.path = path
    return path


def is_session_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file marked ``napari_gerbil_format = "session"``."""
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("napari_gerbil_format", "")) == FORMAT_NAME
    except (OSError, ValueError):
        return False


def load_session(path: str | os.PathLike) -> Session:
    """Read a session file; malformed files raise :class:`InvalidInputError`."""
    path = Path(path).absolute()
    check_input_file(path, "<file>", "session file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInputError(path, "<file>", "an HDF5 file", f"unreadable ({exc})") from None
    try:
        with f:
            return _load(f, path)
    except InvalidInputError as exc:
        if exc.source is not None:
            raise
        raise InvalidInputError(path, exc.field, exc.expected, exc.found, exc.hint) from None
    except KeyError as exc:
        raise InvalidInputError(path, str(exc), "an attribute or dataset", "missing") from None
    except (OSError, RuntimeError) as exc:
        raise InvalidInputError(
            path, "<file>", "an intact, readable HDF5 file", f"a damaged file ({exc})"
        ) from None
    except (TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        # a value of the wrong type or shape the checks above do not name
        raise InvalidInputError(
            path,
            "<content>",
            "a session file as napari-gerbil writes it",
            f"{type(exc).__name__}: {exc}",
        ) from None


def _load(f: h5py.File, path: Path) -> Session:
    fmt = f.attrs.get("napari_gerbil_format")
    if fmt is None or str(fmt) != FORMAT_NAME:
        raise InvalidInputError(path, "napari_gerbil_format", f"{FORMAT_NAME!r}", repr(fmt))
    version = int(number(path, "schema_version", f.attrs.get("schema_version", -1), integer=True))
    if version != SCHEMA_VERSION:
        raise InvalidInputError(
            path,
            "schema_version",
            f"{SCHEMA_VERSION}",
            str(version),
            hint="Update napari-gerbil to read newer sessions."
            if version > SCHEMA_VERSION
            else None,
        )
    base = path.parent
    try:
        provenance = json.loads(text(path, "provenance", f.attrs.get("provenance", "{}")))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(path, "provenance", "JSON", str(exc)) from None
    if not isinstance(provenance, dict):
        raise InvalidInputError(path, "provenance", "a JSON object", type(provenance).__name__)
    if "audio" not in f:
        raise InvalidInputError(path, "/audio", "a group", "no such group")
    a = f["audio"]
    n_files = int(
        number(path, "/audio@n_files", a.attrs.get("n_files", 0), integer=True, nonnegative=True)
    )
    files = []
    for i in range(n_files):
        if f"file{i}" not in a:
            raise InvalidInputError(path, f"/audio/file{i}", "a group", "missing")
        files.append(_read_ref(a[f"file{i}"], base, path))
    audio = AudioRef(
        files,
        text(path, "/audio@dataset", a.attrs.get("dataset", "")) or None,
        number(path, "/audio@sample_rate_hz", a.attrs["sample_rate_hz"], positive=True),
        int(number(path, "/audio@n_channels", a.attrs["n_channels"], integer=True, positive=True)),
        int(number(path, "/audio@n_samples", a.attrs["n_samples"], integer=True, nonnegative=True)),
    )
    video = _read_ref(f["video"], base, path) if "video" in f else None
    tracks = _read_ref(f["tracks"], base, path) if "tracks" in f else None
    t = f.get("timing")
    fps = (
        number(path, "/timing@fps", t.attrs.get("fps", np.nan), finite=False)
        if t is not None
        else np.nan
    )
    offset = (
        number(path, "/timing@video_offset_s", t.attrs.get("video_offset_s", 0.0))
        if t is not None
        else 0.0
    )
    frame_times = t["frame_times_s"][()] if t is not None and "frame_times_s" in t else None
    if "arena" not in f:
        raise InvalidInputError(path, "/arena", "a group", "no such group")
    g = f["arena"]
    arena = ArenaGeometry.from_dict(
        {
            "dims_mm": _ds(g, "dims_mm", path, 1),
            "mic_positions_mm": _ds(g, "mic_positions_mm", path, 2),
            "arena_to_pixels": g["arena_to_pixels"][()] if "arena_to_pixels" in g else None,
        },
        source=str(path),
    )
    names = [
        n.decode() if isinstance(n, bytes) else str(n) for n in _ds(f, "animal_names", path, 1)
    ]
    calls = CallTable(
        _ds(f, "calls/call_id", path, 1),
        _ds(f, "calls/start_sample", path, 1),
        _ds(f, "calls/stop_sample", path, 1),
    )
    predictions = None
    if "predictions" in f:
        p = f["predictions"]
        predictions = Predictions(
            _ds(p, "point_mm", path),
            _ds(p, "member_means_mm", path),
            _ds(p, "member_chol_mm", path),
            _ds(p, "set_area_mm2", path),
            text(path, "/predictions@model_version", p.attrs.get("model_version", "")),
            _call_versions(p, path),
        )
    predicted = None
    if "attribution/predicted" in f:
        predicted = PredictedAttribution(
            _ds(f, "attribution/predicted/animal", path, 1),
            _ds(f, "attribution/predicted/probabilities", path, 2),
        )
    user = UserAttribution(
        _ds(f, "attribution/user/animal", path, 1),
        _ds(f, "attribution/user/edit_time_s", path, 1),
        _ds(f, "attribution/user/decided_against", path, 1)
        if "attribution/user/decided_against" in f
        else None,  # files written before it was stored
    )
    return Session(
        audio=audio,
        arena=arena,
        calls=calls,
        video=video,
        tracks=tracks,
        frame_times_s=frame_times,
        fps=None if np.isnan(fps) else fps,
        video_offset_s=offset,
        animal_names=names,
        predictions=predictions,
        predicted=predicted,
        user=user,
        provenance=provenance,
        schema_version=version,
        path=path,
    )
