"""Band-energy call detection on long recordings, read in chunks.

Memory stays bounded on hours of audio: the audio is read ``chunk_s`` at a time, the
per-frame band energies of a long recording go to a temporary file (4 bytes per
``nfft / 2`` samples), the noise floor is the median of a 0.01 dB histogram, and calls
are found as runs above the threshold chunk by chunk.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import numpy as np

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.progress import CancelCheck, ProgressCallback, check_cancel, report

#: Default detection band (Hz): gerbil calls from 2 kHz (above hum and handling noise,
#: which sit below 1-2 kHz) to 60 kHz.
CALL_BAND_HZ = (2000.0, 60000.0)


@dataclasses.dataclass
class DetectorConfig(Config):
    """Parameters of :func:`detect_calls`.

    Attributes
    ----------
    band_hz
        Frequency band whose energy is tracked (low, high). The default covers gerbil
        calls (published from about 1-2 kHz up to 60 kHz: many sit below 15 kHz) and
        starts above mains hum and handling noise (:data:`CALL_BAND_HZ`).
    threshold_db
        A frame is "on" when its band energy exceeds the noise floor (the median
        band energy of the recording) by this many dB.
    min_duration_s
        Shorter detections are dropped.
    max_gap_s
        Detections separated by less than this are merged.
    nfft
        FFT length in samples; frames hop by ``nfft // 2``.
    chunk_s
        Audio read per step (memory bound for hour-long recordings).
    """

    band_hz: tuple[float, float] = CALL_BAND_HZ
    threshold_db: float = 12.0
    min_duration_s: float = 0.004
    max_gap_s: float = 0.01
    nfft: int = 256
    chunk_s: float = 10.0

    def check(self, sample_rate_hz: float) -> None:
        """Raise InvalidInputError if the parameters cannot work at ``sample_rate_hz``."""
        low, high = self.band_hz
        numbers = {
            "threshold_db": self.threshold_db,
            "min_duration_s": self.min_duration_s,
            "max_gap_s": self.max_gap_s,
            "chunk_s": self.chunk_s,
        }
        for name, value in numbers.items():
            if not np.isfinite(value):
                raise InvalidInputError(None, name, "a finite number", repr(value))
        if not 0 <= low < high <= sample_rate_hz / 2:
            raise InvalidInputError(
                None, "band_hz", f"0 <= low < high <= {sample_rate_hz / 2:g} Hz", repr(self.band_hz)
            )
        if self.nfft < 16 or self.nfft & (self.nfft - 1):
            raise InvalidInputError(None, "nfft", "a power of two >= 16", repr(self.nfft))
        if self.min_duration_s < 0 or self.max_gap_s < 0 or self.chunk_s <= 0:
            raise InvalidInputError(
                None, "durations", "min_duration_s, max_gap_s >= 0 and chunk_s > 0", repr(self)
            )


#: Recordings with more frames than this keep their band energies in a temporary file.
IN_MEMORY_FRAMES = 1 << 24  # 64 MiB of float32
#: Histogram of band energies used for the noise floor (dB): edges and bin width.
HISTOGRAM_RANGE_DB = (-210.0, 150.0)
HISTOGRAM_BIN_DB = 0.01


def _energy_array(n_frames: int) -> np.ndarray:
    """(n_frames,) float32 storage: in memory, or a temporary file for long recordings."""
    if n_frames <= IN_MEMORY_FRAMES:
        return np.empty(n_frames, np.float32)
    # The map keeps its own handle; the file has no name and goes when the map does.
    with tempfile.TemporaryFile(prefix="gerbil-energy-") as handle:
        return np.memmap(handle, dtype=np.float32, mode="w+", shape=(n_frames,))


def median_db(energy: np.ndarray, chunk: int = 1 << 20) -> float:
    """Median of ``energy`` (dB) to :data:`HISTOGRAM_BIN_DB`, read ``chunk`` at a time."""
    low, high = HISTOGRAM_RANGE_DB
    n_bins = int(round((high - low) / HISTOGRAM_BIN_DB))
    counts = np.zeros(n_bins, np.int64)
    for a in range(0, len(energy), chunk):
        part = np.asarray(energy[a : a + chunk], np.float64)
        index = np.clip(((part - low) / HISTOGRAM_BIN_DB).astype(np.int64), 0, n_bins - 1)
        counts += np.bincount(index, minlength=n_bins)
    middle = int(np.searchsorted(np.cumsum(counts), (len(energy) + 1) / 2))
    return low + (middle + 0.5) * HISTOGRAM_BIN_DB


def runs_above(
    energy: np.ndarray, threshold_db: float, chunk: int = 1 << 20
) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) frame indices of the runs of ``energy > threshold_db`` (chunked)."""
    starts: list[np.ndarray] = []
    stops: list[np.ndarray] = []
    inside = False
    for a in range(0, len(energy), chunk):
        on = np.asarray(energy[a : a + chunk]) > threshold_db
        edges = np.diff(np.concatenate([[inside], on]).astype(np.int8))
        starts.append(np.flatnonzero(edges == 1) + a)
        stops.append(np.flatnonzero(edges == -1) + a)
        inside = bool(on[-1])
    if inside:
        stops.append(np.array([len(energy)]))
    empty = np.zeros(0, np.int64)
    return (
        np.concatenate([empty, *starts]).astype(np.int64),
        np.concatenate([empty, *stops]).astype(np.int64),
    )


def _check_finite(source: Any, audio: np.ndarray, start: int) -> None:
    """Refuse NaN or inf samples, naming the audio file, the sample and the channel."""
    if np.isfinite(audio).all():
        return
    row, channel = (int(v) for v in np.argwhere(~np.isfinite(audio))[0])
    paths = [str(p) for p in getattr(source, "paths", [])]
    dataset = getattr(source, "dataset", None)
    raise InvalidInputError(
        ", ".join(paths) or None,
        str(dataset) if dataset else "audio samples",
        "finite samples (no NaN or inf)",
        f"{audio[row, channel]} at sample {start + row}, channel {channel}",
    )


def band_energy_db(
    source,
    config: DetectorConfig,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> tuple[np.ndarray, int]:
    """Band energy (dB) of consecutive frames of the channel mean; returns (energy, hop).

    ``energy`` is an array, or a memory map on a temporary file for long recordings
    (more than :data:`IN_MEMORY_FRAMES` frames). ``progress`` and ``cancel`` follow
    :mod:`napari_gerbil.progress` (checked per chunk).
    """
    rate = float(source.sample_rate_hz)
    config.check(rate)
    nfft, hop = config.nfft, config.nfft // 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)
    band = (freqs >= config.band_hz[0]) & (freqs <= config.band_hz[1])
    window = np.hanning(nfft).astype(np.float32)
    chunk = max(nfft, int(config.chunk_s * rate) // hop * hop)
    n_frames = max(0, 1 + (source.n_samples - nfft) // hop)
    energy = _energy_array(n_frames)
    done = 0
    while done < n_frames:
        check_cancel(cancel, "call detection")
        start = done * hop
        stop = min(source.n_samples, start + chunk + nfft - hop)
        audio = np.asarray(source.read(start, stop), np.float32)
        _check_finite(source, audio, start)
        # Sum over channels: correlated call energy adds coherently, noise does not.
        signal = np.ascontiguousarray(audio.mean(axis=1))
        count = min(n_frames - done, 1 + (signal.size - nfft) // hop)
        frames = np.lib.stride_tricks.as_strided(
            signal, shape=(count, nfft), strides=(hop * signal.strides[0], signal.strides[0])
        )
        spectrum = np.fft.rfft(frames * window, axis=1)[:, band]
        power = (spectrum.real**2 + spectrum.imag**2).sum(axis=1)
        energy[done : done + count] = 10.0 * np.log10(power + 1e-20)
        done += count
        report(progress, done / n_frames, "detecting calls")
    return energy, hop


def detect_calls(
    source,
    config: DetectorConfig | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Detect calls as runs of frames whose band energy exceeds the noise floor.

    Parameters
    ----------
    source
        Audio source (``sample_rate_hz``, ``n_samples``, ``read(start, stop)``).
    config
        Detector parameters (defaults: :class:`DetectorConfig`).
    progress
        Called with a :class:`~napari_gerbil.progress.Progress` after each chunk.
    cancel
        Checked before each chunk; raises :class:`~napari_gerbil.progress.Cancelled`.

    Returns
    -------
    start_samples, stop_samples : ndarray (n_calls,) int64
    """
    config = config or DetectorConfig()
    rate = float(source.sample_rate_hz)
    energy, hop = band_energy_db(source, config, progress, cancel)
    empty = np.zeros(0, np.int64)
    if energy.size == 0:
        return empty, empty
    starts, stops = runs_above(energy, median_db(energy) + config.threshold_db)
    del energy  # a temporary file goes with it
    if starts.size == 0:
        return empty, empty
    max_gap = int(np.ceil(config.max_gap_s * rate / hop))
    keep = np.concatenate([[True], starts[1:] - stops[:-1] > max_gap])
    starts = starts[keep]
    stops = stops[np.concatenate([keep[1:], [True]])]
    start_samples = starts.astype(np.int64) * hop
    stop_samples = np.minimum(stops.astype(np.int64) * hop + config.nfft, source.n_samples)
    long_enough = (stop_samples - start_samples) >= config.min_duration_s * rate
    return start_samples[long_enough], stop_samples[long_enough]
