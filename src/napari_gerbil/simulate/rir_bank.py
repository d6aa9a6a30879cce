"""A bank of room impulse responses: computed once per source position, reused forever.

File layout (HDF5, like vocalocator's simulated data, plus our attributes):

- ``/rir`` float32 (total_samples, n_mics): all responses concatenated on axis 0;
- ``/rir_length_idx`` int64 (n_positions + 1,): response i is
  ``rir[rir_length_idx[i]:rir_length_idx[i + 1]]``;
- ``/locations`` float64 (n_positions, 3): source (x, y, z) in mm, arena frame;
- ``/headings_rad`` float64 (n_positions,): direction a directional source faced
  (NaN = omnidirectional);
- attributes ``sample_rate_hz``, ``arena_dims_mm``, ``mic_positions_mm``,
  ``reference_rms`` (median norm of the responses) and ``acoustics`` (JSON).

Sample 0 of each response is the emission time. Rendering a call is one FFT
convolution of a stimulus with a stored response plus fresh noise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
from scipy.signal import fftconvolve

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_h5
from napari_gerbil.io.vcl.validate import LOCATION_TOLERANCE_MM, check_locations
from napari_gerbil.simulate.noise import NoiseSource
from napari_gerbil.simulate.stimuli import CALL_CLASSES, StimulusGenerator

FORMAT_NAME = "napari-gerbil-rir-bank"


def convolve_rir(stimulus: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Play ``stimulus`` (n,) through ``rir`` (m, n_mics): float32 (n + m - 1, n_mics)."""
    stim = np.asarray(stimulus, dtype=np.float32).reshape(-1)
    return fftconvolve(stim[:, None], rir, axes=0).astype(np.float32)


def _rirs(args: tuple) -> list[np.ndarray]:
    acoustics, locs, heads = args
    return [
        acoustics.rir(loc, None if np.isnan(head) else float(head))
        for loc, head in zip(locs, heads, strict=True)
    ]


def _iter_rirs(acoustics, locs, heads, n_workers):
    """Yield the responses in order, computed by ``n_workers`` processes."""
    batch = int(np.clip(np.ceil(len(locs) / max(n_workers, 1)), 1, 8))
    jobs = [
        (acoustics, locs[i : i + batch], heads[i : i + batch]) for i in range(0, len(locs), batch)
    ]
    if n_workers <= 1 or len(jobs) < 2:
        for job in jobs:
            yield from _rirs(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process that runs threads (napari, Qt, pytest-qt,
    # torch, tqdm monitors) can deadlock the child on a lock held by another thread.
    # A calling script needs the ``if __name__ == "__main__":`` guard.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(n_workers, len(jobs)), mp_context=ctx) as pool:
        for result in pool.map(_rirs, jobs):
            yield from result


def compute_rir_bank(
    path: str | os.PathLike,
    acoustics,
    locations_mm: np.ndarray,
    headings_rad: np.ndarray | None = None,
    progress: bool = False,
    n_workers: int | None = 1,
) -> Path:
    """Compute the response at every location and write the bank atomically.

    Parameters
    ----------
    locations_mm
        (n, 3) source positions in the arena frame.
    headings_rad
        (n,) directions of directional sources (NaN entries are omnidirectional), or
        None for all omnidirectional.
    progress
        Show a tqdm progress bar.
    n_workers
        Processes computing responses (default 1; None = all CPUs); results do not
        depend on it. Workers are spawned, so a calling script needs the
        ``if __name__ == "__main__":`` guard.
    """
    from tqdm import tqdm

    locs = np.asarray(locations_mm, dtype=float)
    if locs.ndim != 2 or locs.shape[1] != 3 or len(locs) == 0:
        raise InvalidInputError(None, "locations_mm", "an (n, 3) array, n >= 1", str(locs.shape))
    heads = np.full(len(locs), np.nan) if headings_rad is None else np.asarray(headings_rad, float)
    if heads.shape != (len(locs),):
        raise InvalidInputError(None, "headings_rad", f"shape ({len(locs)},)", str(heads.shape))
    path = Path(path)
    norms = []
    with atomic_h5(path) as f:
        n_mics = acoustics.n_mics
        rir_ds = f.create_dataset(
            "rir", (0, n_mics), maxshape=(None, n_mics), dtype="f4", chunks=(8192, n_mics)
        )
        idx = [0]
        n_workers = (os.cpu_count() or 1) if n_workers is None else n_workers
        rirs = _iter_rirs(acoustics, locs, heads, n_workers)
        for h in tqdm(rirs, total=len(locs), disable=not progress, desc="RIRs"):
            rir_ds.resize(idx[-1] + len(h), axis=0)
            rir_ds[idx[-1] :] = h
            idx.append(idx[-1] + len(h))
            norms.append(np.sqrt((h.astype(float) ** 2).sum(axis=0)))
        f["rir_length_idx"] = np.asarray(idx, dtype=np.int64)
        f["locations"] = locs
        f["locations"].attrs["units"] = "mm, arena frame (origin at the floor centre)"
        f["headings_rad"] = heads
        f.attrs["napari_gerbil_format"] = FORMAT_NAME
        f.attrs["sample_rate_hz"] = acoustics.sample_rate_hz
        f.attrs["arena_dims_mm"] = acoustics.arena.dims_mm
        f.attrs["mic_positions_mm"] = acoustics.arena.mic_positions_mm
        f.attrs["reference_rms"] = float(np.median(np.concatenate(norms)))
        f.attrs["acoustics"] = json.dumps(acoustics.description())
    return path


def _open_bank(path: Path) -> h5py.File:
    if not path.is_file():
        raise InvalidInputError(path, "<file>", "an existing RIR bank (HDF5)", "no such file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInputError(path, "<file>", "an HDF5 file", str(exc)) from exc


def _check_structure(f: h5py.File, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Check everything but the response samples; (length_idx, locations, headings, attrs)."""
    for name in ("rir", "rir_length_idx", "locations"):
        if not isinstance(f.get(name), h5py.Dataset):
            raise InvalidInputError(path, f"/{name}", "a dataset", "missing")
    rir = f["rir"]
    if rir.ndim != 2 or rir.shape[1] < 1 or rir.dtype.kind != "f":
        raise InvalidInputError(
            path, "/rir", "float (total_samples, n_mics)", f"{rir.dtype} {rir.shape}"
        )
    idx = f["rir_length_idx"][()]
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise InvalidInputError(
            path, "/rir_length_idx", "1-D integer offsets", f"{idx.dtype} {idx.shape}"
        )
    idx = idx.astype(np.int64)
    n = len(idx) - 1
    if n < 1 or idx[0] != 0 or idx[-1] != len(rir) or (np.diff(idx) <= 0).any():
        raise InvalidInputError(
            path, "/rir_length_idx", f"increasing from 0 to {len(rir)}", str(idx[:5])
        )
    locs = f["locations"][()]
    if locs.ndim != 2 or len(locs) != n or locs.shape[1] not in (2, 3):
        raise InvalidInputError(path, "/locations", f"shape ({n}, 2 or 3)", str(locs.shape))
    heads = f["headings_rad"][()] if "headings_rad" in f else np.full(n, np.nan)
    if heads.shape != (n,):
        raise InvalidInputError(path, "/headings_rad", f"shape ({n},)", str(heads.shape))
    attrs = dict(f.attrs)
    rate = attrs.get("sample_rate_hz")
    if rate is None:
        raise InvalidInputError(path, "sample_rate_hz", "a root attribute", "missing")
    if not (np.isscalar(rate) and np.isfinite(rate) and rate > 0):  # type: ignore[operator]
        raise InvalidInputError(path, "sample_rate_hz", "a positive rate (Hz)", repr(rate))
    mics = attrs.get("mic_positions_mm")
    if mics is not None and np.shape(mics) != (rir.shape[1], 3):
        raise InvalidInputError(
            path, "mic_positions_mm", f"shape ({rir.shape[1]}, 3)", str(np.shape(mics))
        )
    return idx, locs.astype(float), heads.astype(float), attrs


def validate_rir_bank(
    path: str | os.PathLike,
    tolerance_mm: float = LOCATION_TOLERANCE_MM,
    chunk_samples: int = 1 << 20,
) -> dict:
    """Check an RIR bank completely; raise :class:`InvalidInputError` at the first problem.

    Checks the datasets' presence, shapes and dtypes, ``/rir_length_idx`` (from 0,
    strictly increasing, to the number of response samples), finite responses (read in
    chunks: bounded memory), finite source locations inside the arena when its size is
    known (``tolerance_mm`` beyond the walls allowed), headings and attributes.

    Returns
    -------
    dict
        Summary: n_positions, n_mics, total_samples, sample_rate_hz.
    """
    path = Path(path)
    with _open_bank(path) as f:
        idx, locs, _, attrs = _check_structure(f, path)
        rir = f["rir"]
        for start in range(0, len(rir), chunk_samples):
            bad = ~np.isfinite(rir[start : start + chunk_samples])
            if bad.any():
                row = start + int(np.argmax(bad.any(axis=1)))
                raise InvalidInputError(path, "/rir", "finite samples", f"NaN/inf at row {row}")
        n_mics = rir.shape[1]
    dims = attrs.get("arena_dims_mm")
    dims = None if dims is None else np.asarray(dims, dtype=float)
    check_locations(path, locs, dims, tolerance_mm)
    return {
        "n_positions": len(idx) - 1,
        "n_mics": n_mics,
        "total_samples": int(idx[-1]),
        "sample_rate_hz": float(attrs["sample_rate_hz"]),
    }


class RIRBank:
    """Impulse responses held in memory, ready to render calls.

    Use :meth:`open`. Picklable (plain arrays), so torch data-loader workers can share it.
    """

    def __init__(
        self,
        rir: np.ndarray,
        length_idx: np.ndarray,
        locations_mm: np.ndarray,
        headings_rad: np.ndarray,
        sample_rate_hz: float,
        arena_dims_mm: np.ndarray,
        mic_positions_mm: np.ndarray,
        reference_rms: float,
        acoustics: dict,
    ) -> None:
        self.rir = rir
        self.length_idx = length_idx
        #: (n_positions, 3) source positions in mm (arena frame).
        self.locations_mm = locations_mm
        self.headings_rad = headings_rad
        self.sample_rate_hz = float(sample_rate_hz)
        self.arena_dims_mm = arena_dims_mm
        self.mic_positions_mm = mic_positions_mm
        #: Typical norm of a response: a unit-RMS stimulus arrives with about this RMS.
        self.reference_rms = float(reference_rms)
        self.acoustics = acoustics

    @classmethod
    def open(cls, path: str | os.PathLike) -> RIRBank:
        """Read a bank written by :func:`compute_rir_bank` (or vocalocator-style files)."""
        path = Path(path)
        with _open_bank(path) as f:
            idx, locs, heads, attrs = _check_structure(f, path)
            rir = f["rir"][()].astype(np.float32)
        norms = [
            np.sqrt((rir[a:b].astype(float) ** 2).sum(0))
            for a, b in zip(idx[:-1], idx[1:], strict=True)
        ]
        return cls(
            rir,
            idx,
            locs,
            heads,
            attrs["sample_rate_hz"],
            np.asarray(attrs.get("arena_dims_mm", np.full(3, np.nan))),
            np.asarray(attrs.get("mic_positions_mm", np.full((rir.shape[1], 3), np.nan))),
            attrs.get("reference_rms", float(np.median(np.concatenate(norms)))),
            json.loads(attrs.get("acoustics", "{}")),
        )

    def __len__(self) -> int:
        return len(self.length_idx) - 1

    @property
    def n_mics(self) -> int:
        """Number of microphones (channels)."""
        return self.rir.shape[1]

    def response(self, index: int) -> np.ndarray:
        """(n_samples, n_mics) impulse response of position ``index``."""
        if not 0 <= index < len(self):
            raise InvalidInputError(None, "index", f"0 .. {len(self) - 1}", str(index))
        return self.rir[self.length_idx[index] : self.length_idx[index + 1]]

    def noise_rms_for_snr(self, snr_db: float) -> float:
        """Noise RMS that puts a unit-RMS stimulus ``snr_db`` above the noise (typically)."""
        return self.reference_rms * 10.0 ** (-snr_db / 20.0)

    def render(
        self,
        index: int,
        stimulus: np.ndarray,
        rng: np.random.Generator | None = None,
        noise_rms: float = 0.0,
    ) -> np.ndarray:
        """The microphones' recording of ``stimulus`` played at position ``index``.

        Parameters
        ----------
        stimulus
            (n,) waveform, emitted at sample 0.
        rng
            Source of the noise (required when ``noise_rms > 0``).
        noise_rms
            RMS of the added background + sensor noise per channel.

        Returns
        -------
        ndarray
            float32 (n + rir_length - 1, n_mics).
        """
        out = convolve_rir(stimulus, self.response(index))
        if noise_rms > 0:
            if rng is None:
                raise InvalidInputError(None, "rng", "a Generator when noise_rms > 0", "None")
            out += NoiseSource(self.n_mics, self.sample_rate_hz, noise_rms, rng).next(len(out))
        return out

    def sample(
        self,
        rng: np.random.Generator,
        generator: StimulusGenerator | None = None,
        classes: Iterable[str] = CALL_CLASSES,
        snr_db: float | None = 30.0,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """A fresh training example: random position, random stimulus, fresh noise.

        Returns
        -------
        (audio (n, n_mics) float32, location_mm (3,), stimulus_class)
        """
        generator = generator or StimulusGenerator(self.sample_rate_hz)
        index = int(rng.integers(len(self)))
        stim = generator.sample_any(rng, tuple(classes))
        noise = 0.0 if snr_db is None else self.noise_rms_for_snr(snr_db)
        audio = self.render(index, stim.waveform, rng, noise)
        return audio, self.locations_mm[index].copy(), stim.stimulus_class
