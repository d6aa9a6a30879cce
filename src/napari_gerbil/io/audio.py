"""Lazy access to long multichannel recordings (HDF5 dataset or WAV files).

Nothing is loaded until :meth:`AudioSource.read` asks for a slice: HDF5 datasets are
sliced by h5py, WAV files are memory-mapped (``scipy.io.wavfile.read(mmap=True)``).
Samples come back as float32 (n, n_channels). Integer PCM WAV is scaled to [-1, 1);
HDF5 samples are returned as stored (cast to float32).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.h5values import hdf5_errors, number
from napari_gerbil.io.inputs import check_input_file

_WAV_SUFFIXES = (".wav", ".wave")


def _nonempty(path: Path, n_samples: int) -> int:
    """``n_samples``, refusing an empty (0 s) recording: it has no call to find."""
    if n_samples <= 0:
        raise InvalidInputError(path, "n_samples", "a recording of at least one sample", "0 s")
    return int(n_samples)


def _pcm_scale(dtype: np.dtype) -> float:
    if dtype.kind == "f":
        return 1.0
    if dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return 1.0 / 128.0
    return 1.0 / float(2 ** (8 * dtype.itemsize - 1))


def _read_wav_mmap(path: Path) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    check_input_file(path, "<file>", "WAV file")
    try:
        rate, data = wavfile.read(path, mmap=True)
    except ValueError as exc:
        raise InvalidInputError(
            path, "<file>", "a PCM (8/16/32-bit int) or float WAV file", str(exc)
        ) from None
    if int(rate) <= 0:  # the header's rate: 0 would divide every time by zero
        raise InvalidInputError(
            path, "sample_rate_hz", "a positive sample rate in the WAV header", f"{int(rate)} Hz"
        )
    if data.ndim == 1:
        data = data[:, None]
    return int(rate), data


class AudioSource:
    """A multichannel recording read in slices.

    Build with :meth:`open`. Picklable (reopens lazily in each process).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        dataset: str | None,
        sample_rate_hz: float,
        n_channels: int,
        n_samples: int,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.dataset = dataset
        self.sample_rate_hz = float(sample_rate_hz)
        self.n_channels = int(n_channels)
        self.n_samples = int(n_samples)
        self._handles: Any = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike | Sequence[str | os.PathLike],
        dataset: str = "audio",
        sample_rate_hz: float | None = None,
    ) -> AudioSource:
        """Open an HDF5 file (dataset ``dataset``), a WAV, or a list of per-channel WAVs.

        For HDF5 the sample rate comes from ``sample_rate_hz`` here, else the dataset's
        or the file's ``sample_rate_hz`` attribute; an HDF5 file with neither is refused.
        """
        paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
        if not paths:
            raise InvalidInputError(None, "path", "at least one audio file", "none")
        if all(p.suffix.lower() in _WAV_SUFFIXES for p in paths):
            return cls._open_wavs(paths, sample_rate_hz)
        if len(paths) != 1:
            raise InvalidInputError(
                paths[0], "path", "one HDF5 file or WAV files only", f"{len(paths)} files"
            )
        return cls._open_h5(paths[0], dataset, sample_rate_hz)

    @classmethod
    def _open_h5(cls, path: Path, dataset: str, sample_rate_hz: float | None) -> AudioSource:
        import h5py

        check_input_file(path, "<file>", "audio file")
        try:
            f = h5py.File(path, "r")
        except OSError:
            raise InvalidInputError(
                path, "<file>", "an HDF5 or WAV audio file", f"unreadable {path.suffix} file"
            ) from None
        with f, hdf5_errors(path):
            ds = f.get(dataset)
            if not isinstance(ds, h5py.Dataset):
                raise InvalidInputError(path, f"/{dataset}", "an audio dataset", "no such dataset")
            if ds.ndim != 2 or ds.dtype.kind not in "fiu":
                raise InvalidInputError(
                    path,
                    ds.name,
                    "numeric shape (n_samples, n_channels)",
                    f"shape {ds.shape}, dtype {ds.dtype}",
                )
            rate = sample_rate_hz
            for attrs in (ds.attrs, f.attrs):
                if "sample_rate_hz" in attrs:
                    own = number(path, "sample_rate_hz", attrs["sample_rate_hz"], positive=True)
                    if rate is not None and not np.isclose(rate, own, rtol=1e-9):
                        raise InvalidInputError(
                            path, "sample_rate_hz", f"{rate:g} Hz (as given)", f"{own:g} Hz"
                        )
                    rate = own
                    break
            if rate is None or not rate > 0:
                raise InvalidInputError(
                    path,
                    "sample_rate_hz",
                    "a positive sample rate (attribute or argument)",
                    repr(rate),
                )
            return cls([path], ds.name, rate, ds.shape[1], _nonempty(path, ds.shape[0]))

    @classmethod
    def _open_wavs(cls, paths: list[Path], sample_rate_hz: float | None) -> AudioSource:
        infos = [_read_wav_mmap(p) for p in paths]
        rate0, data0 = infos[0]
        if len(paths) > 1:
            for p, (rate, data) in zip(paths[1:], infos[1:], strict=True):
                if rate != rate0:
                    raise InvalidInputError(
                        p, "sample_rate_hz", f"{rate0} Hz like {paths[0].name}", f"{rate} Hz"
                    )
                if len(data) != len(data0):
                    raise InvalidInputError(
                        p, "n_samples", f"{len(data0)} like {paths[0].name}", f"{len(data)}"
                    )
                if data.shape[1] != 1:
                    raise InvalidInputError(
                        p, "n_channels", "1 channel per file", f"{data.shape[1]} channels"
                    )
        if sample_rate_hz is not None and not np.isclose(sample_rate_hz, rate0):
            raise InvalidInputError(
                paths[0], "sample_rate_hz", f"{sample_rate_hz:g} Hz", f"{rate0} Hz"
            )
        n_channels = data0.shape[1] if len(paths) == 1 else len(paths)
        return cls(paths, None, rate0, n_channels, _nonempty(paths[0], len(data0)))

    # -- access ------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.n_samples / self.sample_rate_hz

    @property
    def is_wav(self) -> bool:
        """Whether the audio comes from WAV file(s)."""
        return self.dataset is None

    def _ensure_open(self) -> Any:
        if self._handles is None:
            if self.is_wav:
                self._handles = [_read_wav_mmap(p)[1] for p in self.paths]
            else:
                import h5py

                f = h5py.File(self.paths[0], "r")
                self._handles = (f, f[self.dataset])
        return self._handles

    def read(self, start_sample: int, stop_sample: int) -> np.ndarray:
        """Samples ``[start_sample, stop_sample)`` as float32 (n, n_channels)."""
        start, stop = int(start_sample), int(stop_sample)
        if not 0 <= start <= stop <= self.n_samples:
            raise InvalidInputError(
                self.paths[0],
                "sample range",
                f"0 <= start <= stop <= {self.n_samples}",
                f"[{start}, {stop})",
            )
        handles = self._ensure_open()
        if not self.is_wav:
            with hdf5_errors(self.paths[0]):
                return np.asarray(handles[1][start:stop], dtype=np.float32)
        out = np.empty((stop - start, self.n_channels), dtype=np.float32)
        col = 0
        for data in handles:
            block = data[start:stop]
            if data.dtype == np.uint8:
                out[:, col : col + block.shape[1]] = (block.astype(np.float32) - 128.0) / 128.0
            else:
                out[:, col : col + block.shape[1]] = block * np.float32(_pcm_scale(data.dtype))
            col += block.shape[1]
        return out

    def read_seconds(self, start_s: float, stop_s: float) -> np.ndarray:
        """Samples between two times (clipped to the recording)."""
        sr = self.sample_rate_hz
        a = int(np.clip(round(start_s * sr), 0, self.n_samples))
        b = int(np.clip(round(stop_s * sr), a, self.n_samples))
        return self.read(a, b)

    def close(self) -> None:
        """Release file handles / memory maps (reopened on the next read)."""
        if self._handles is not None and not self.is_wav:
            self._handles[0].close()
        self._handles = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = None
        return state

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.paths[0].name + (f":{self.dataset}" if self.dataset else "")
        return (
            f"AudioSource({where}, {self.n_channels} ch, {self.sample_rate_hz:g} Hz, "
            f"{self.duration_s:.2f} s)"
        )
