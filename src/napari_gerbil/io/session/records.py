"""The parts of a session: file references, calls, predictions and attributions.

Constants of the file format (name, schema version, suffix) and the attribution codes
(:data:`UNASSIGNED`, :data:`AMBIGUOUS`, :data:`NOT_REVIEWED`) live here too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_gerbil.errors import InvalidInputError

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
