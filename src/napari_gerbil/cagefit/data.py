"""The calibration recording a cage is fitted to: calls with known source positions.

:func:`load_calibration` opens any VCL dataset whose calls carry their source position
(a speaker moved through the cage, a robot with an earbud, positions from the video),
checks it against the start cage and groups its calls by position.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.cage import Cage
from napari_gerbil.io.vcl import VCLDataset

#: Fewest distinct source positions a fit accepts: the microphones' 3-D positions and
#: the temperature need at least this many independent time-difference patterns, and
#: the wall/floor/ceiling split needs sources both near walls and in the middle.
MIN_POSITIONS = 12
#: Sources closer than this (mm) count as one position.
POSITION_MERGE_MM = 5.0
#: Largest difference (mm) between the data's cage size and the start cage's.
DIMS_TOLERANCE_MM = 5.0


@dataclasses.dataclass
class CalibrationData:
    """Calls of a calibration recording, grouped by source position.

    Attributes
    ----------
    path
        The VCL file.
    sample_rate_hz
        Sampling rate of the audio.
    positions_mm
        (n_positions, 3) distinct source positions, arena frame.
    call_position
        (n_calls,) index into ``positions_mm`` of each selected call.
    call_index
        (n_calls,) index of each selected call in the file.
    classes
        Stimulus class of each selected call (None where the file has none).
    audio
        One float32 (n_samples, n_mics) recording per selected call.
    """

    path: Path
    sample_rate_hz: float
    positions_mm: np.ndarray
    call_position: np.ndarray
    call_index: np.ndarray
    classes: list[str | None]
    audio: list[np.ndarray]

    @property
    def n_calls(self) -> int:
        """Number of selected calls."""
        return len(self.call_index)

    @property
    def n_positions(self) -> int:
        """Number of distinct positions."""
        return len(self.positions_mm)

    @property
    def n_mics(self) -> int:
        """Number of channels."""
        return self.audio[0].shape[1]


def _group_positions(xyz_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct positions (first call's coordinates) and each call's position index."""
    keys = np.round(xyz_mm / POSITION_MERGE_MM).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return xyz_mm[first], inverse.reshape(-1)


def load_calibration(
    path: str | Path,
    start: Cage,
    max_calls: int | None = None,
    seed: int = 0,
    default_height_mm: float = 40.0,
) -> CalibrationData:
    """Read and check a calibration recording against the start cage.

    Parameters
    ----------
    path
        A VCL dataset whose calls have source positions (``/locations``).
    start
        The cage the fit starts from (its size must match the data's, its microphone
        count the data's channels).
    max_calls
        Use at most this many calls, spread evenly over the positions (None: all).
    seed
        Which calls are kept when ``max_calls`` leaves some out.
    default_height_mm
        Source height where the file stores floor (x, y) positions only.

    Raises
    ------
    InvalidInputError
        No positions, no geometry, a size or channel count unlike the start cage's,
        too few distinct positions; the message names the file and field.
    """
    path = Path(path)
    with VCLDataset(path) as ds:
        if not ds.has_locations:
            raise InvalidInputError(
                path,
                "/locations",
                "the source position of every call (mm)",
                "no positions",
                hint="cage fit needs calls at known positions: a speaker or robot dataset.",
            )
        dims = ds.arena_dims_mm
        if dims is None or not np.isfinite(dims).all():
            raise InvalidInputError(
                path,
                "arena_dims_mm",
                "the cage size [x, y, z] in mm (file attribute)",
                "none" if dims is None else str(dims.tolist()),
                hint="Write the cage size into the file (napari-gerbil validate shows it).",
            )
        if np.abs(dims - start.dims).max() > DIMS_TOLERANCE_MM:
            raise InvalidInputError(
                path,
                "arena_dims_mm",
                f"the start cage's size {start.dims.tolist()} mm (within {DIMS_TOLERANCE_MM:g} mm)",
                f"{np.round(dims, 1).tolist()} mm",
            )
        if ds.n_channels != start.n_mics:
            raise InvalidInputError(
                path,
                "/audio",
                f"{start.n_mics} channels, one per microphone of the start cage {start.name}",
                f"{ds.n_channels} channels",
            )
        fs = ds.sample_rate_hz
        if fs is None:
            raise InvalidInputError(path, "sample_rate_hz", "the sampling rate (Hz)", "none")
        loc = ds.locations_mm
        assert loc is not None
        if loc.ndim == 4:
            raise InvalidInputError(
                path,
                "/locations",
                "one source per call (n_calls, n_nodes, 2|3)",
                f"multi-animal shape {loc.shape}",
            )
        xyz = loc[:, 0, :]
        if xyz.shape[1] == 2:
            xyz = np.c_[xyz, np.full(len(xyz), default_height_mm)]
        finite = np.isfinite(xyz).all(axis=1)
        inside = finite & (np.abs(xyz[:, :2]) < start.dims[:2] / 2).all(axis=1)
        inside &= (xyz[:, 2] > 0) & (xyz[:, 2] < start.dims[2])
        if not inside.any():
            raise InvalidInputError(
                path,
                "/locations",
                "source positions inside the cage (mm, origin at the floor centre)",
                "none inside",
            )
        calls = np.flatnonzero(inside)
        positions, call_position = _group_positions(xyz[calls])
        if len(positions) < MIN_POSITIONS:
            raise InvalidInputError(
                path,
                "/locations",
                f"calls at >= {MIN_POSITIONS} distinct positions (more "
                f"than {POSITION_MERGE_MM:g} mm apart), spread over the floor",
                f"{len(positions)} position(s)",
                hint="Record the speaker (or robot) at more places.",
            )
        if max_calls is not None and max_calls < len(calls):
            keep = _spread(call_position, max_calls, seed)
            calls, call_position = calls[keep], call_position[keep]
            used = np.unique(call_position)
            positions = positions[used]
            call_position = np.searchsorted(used, call_position)
        classes_all = ds.stimulus_classes
        classes = [None if classes_all is None else classes_all[k] for k in calls]
        audio = [ds.call_audio(int(k)) for k in calls]
    return CalibrationData(path, float(fs), positions, call_position, calls, classes, audio)


def _spread(call_position: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` calls taken round-robin over the positions (random within one)."""
    rng = np.random.default_rng(seed)
    queues = [
        rng.permutation(np.flatnonzero(call_position == p)).tolist()
        for p in rng.permutation(call_position.max() + 1)
    ]
    picked: list[int] = []
    while len(picked) < n:
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop())
    return np.sort(np.asarray(picked))
