"""Matched-field fingerprint lookup: the training call whose cross-spectra match best.

In a reverberant cage the inter-microphone phase at each frequency depends on the
direct sound *and* every reflection, so it is a fingerprint of the source position,
the same for any stimulus at the frequencies the stimulus covers. A call played again
at a position already in the reference (training) set is found by comparing its
cross-spectral phases with each reference call's over the frequencies both occupy.

This is a *trained* baseline: it localizes nothing it has not heard, so it measures how
much of a benchmark can be solved by recalling the cage's response at training
positions (the paper's speaker set: every test call sits at a training position) as
opposed to localizing new ones (robot, animal: it fails there). Its ``similarity``
(1: identical phases, 0: unrelated) says which case a call is in.

>>> index = FingerprintIndex(train_calls, train_xy_mm)  # doctest: +SKIP
>>> match = index.match(test_calls)  # doctest: +SKIP
>>> match.point_mm, match.similarity  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from napari_gerbil.baselines.geometry import mic_pairs
from napari_gerbil.errors import InvalidInputError

#: STFT frame (samples); 512 at 125 kHz: 4.1 ms frames, 244 Hz bins.
FRAME_SAMPLES = 512
#: Samples of each call used (centred crop), as the networks see it.
CROP_SAMPLES = 8192
#: Level below the peak of the smoothed power spectrum (dB) that counts as in-band.
BAND_DB = 25.0
#: Fewest frequency bins two calls must share to be compared.
MIN_SHARED_BINS = 5


@dataclasses.dataclass(frozen=True)
class Fingerprints:
    """Cross-spectral phase of calls.

    Attributes
    ----------
    phase
        (n_calls, n_freqs, n_pairs) complex64 of unit modulus: the phase of the
        frame-summed cross-spectrum of each microphone pair.
    band
        (n_calls, n_freqs) bool: the bins inside each call's band.
    """

    phase: np.ndarray
    band: np.ndarray

    def __len__(self) -> int:
        return len(self.phase)


@dataclasses.dataclass(frozen=True)
class FingerprintMatch:
    """Best reference call per query call.

    Attributes
    ----------
    index
        (n,) index of the best-matching reference call (-1: no reference shares
        ``MIN_SHARED_BINS`` bins with the call).
    similarity
        (n,) mean cosine of the phase differences over shared bins and pairs, in
        [-1, 1] (-1 where ``index`` is -1).
    point_mm
        (n, 2) the best reference call's position (NaN where ``index`` is -1).
    """

    index: np.ndarray
    similarity: np.ndarray
    point_mm: np.ndarray


def _check_call(call, i: int, n_channels: int | None) -> np.ndarray:
    arr = np.asarray(call, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
        raise InvalidInputError(
            None, f"calls[{i}]", "(n_samples >= 1, n_channels >= 2) audio", f"shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(None, f"calls[{i}]", "finite samples", "NaN or inf")
    if n_channels is not None and arr.shape[1] != n_channels:
        raise InvalidInputError(
            None, f"calls[{i}]", f"{n_channels} channels (as calls[0])", f"{arr.shape[1]}"
        )
    return arr


def fingerprints(calls: Sequence[np.ndarray]) -> Fingerprints:
    """Cross-spectral phase and band of each call ((n_samples, n_channels) arrays).

    Calls longer than ``CROP_SAMPLES`` are cropped at their centre; calls shorter than
    one frame are zero-padded to it.
    """
    if len(calls) == 0:
        raise InvalidInputError(None, "calls", "at least one call", "none")
    n_channels = _check_call(calls[0], 0, None).shape[1]
    pairs = mic_pairs(n_channels)
    window = np.hanning(FRAME_SAMPLES)
    hop = FRAME_SAMPLES // 2
    smooth = np.ones(5) / 5  # over 5 bins (1.2 kHz) before the band threshold
    phases, bands = [], []
    for i, call in enumerate(calls):
        audio = _check_call(call, i, n_channels)
        if len(audio) > CROP_SAMPLES:
            start = (len(audio) - CROP_SAMPLES) // 2
            audio = audio[start : start + CROP_SAMPLES]
        elif len(audio) < FRAME_SAMPLES:  # a call shorter than one frame: centred, padded
            start = (FRAME_SAMPLES - len(audio)) // 2
            audio = np.pad(audio, ((start, FRAME_SAMPLES - len(audio) - start), (0, 0)))
        starts = np.arange(0, len(audio) - FRAME_SAMPLES + 1, hop)
        frames = audio[starts[:, None] + np.arange(FRAME_SAMPLES)] * window[None, :, None]
        spec = np.fft.rfft(frames, axis=1)  # (n_frames, n_freqs, n_channels)
        cross = np.einsum("tfp,tfp->fp", spec[..., pairs[:, 0]], spec[..., pairs[:, 1]].conj())
        phases.append((cross / np.maximum(np.abs(cross), 1e-30)).astype(np.complex64))
        power = np.convolve((np.abs(spec) ** 2).sum(axis=(0, 2)), smooth, mode="same")
        bands.append(power > power.max() * 10 ** (-BAND_DB / 10))
    return Fingerprints(np.stack(phases), np.stack(bands))


class FingerprintIndex:
    """Reference calls with known positions, searched by cross-spectral phase.

    Parameters
    ----------
    calls
        Reference calls, each (n_samples, n_channels).
    points_mm
        (n, 2) their (x, y) positions in mm.
    """

    def __init__(self, calls: Sequence[np.ndarray], points_mm) -> None:
        points = np.asarray(points_mm, dtype=float)
        if points.ndim != 2 or points.shape != (len(calls), 2):
            raise InvalidInputError(
                None, "points_mm", f"shape ({len(calls)}, 2): one (x, y) per call",
                f"shape {points.shape}",
            )  # fmt: skip
        self.reference = fingerprints(calls)
        self.points_mm = points
        self._features = self._real_features(self.reference)

    @staticmethod
    def _real_features(prints: Fingerprints) -> np.ndarray:
        """(n, n_freqs * n_pairs * 2) in-band cos/sin of the phases.

        Dot products of these sum cos(phase difference) over shared bins and pairs.
        """
        z = prints.phase * prints.band[..., None]
        return np.concatenate([z.real, z.imag], axis=-1).reshape(len(prints), -1)

    def match(self, calls: Sequence[np.ndarray], chunk_calls: int = 64) -> FingerprintMatch:
        """Best reference call for each call (see :class:`FingerprintMatch`)."""
        query = fingerprints(calls)
        n_pairs = query.phase.shape[-1]
        if query.phase.shape[1:] != self.reference.phase.shape[1:]:
            raise InvalidInputError(
                None, "calls", f"{self.reference.phase.shape[-1]} microphone pairs, as the "
                "reference calls", f"{n_pairs}",
            )  # fmt: skip
        feats = self._real_features(query)
        ref_band = self.reference.band.astype(np.float32)
        index = np.empty(len(query), dtype=int)
        similarity = np.empty(len(query))
        for start in range(0, len(query), chunk_calls):
            stop = start + chunk_calls
            shared = query.band[start:stop].astype(np.float32) @ ref_band.T
            score = (feats[start:stop] @ self._features.T) / np.maximum(shared * n_pairs, 1)
            score[shared < MIN_SHARED_BINS] = -np.inf
            best = np.argmax(score, axis=1)
            index[start:stop] = best
            similarity[start:stop] = score[np.arange(len(best)), best]
        missing = ~np.isfinite(similarity)
        index[missing], similarity[missing] = -1, -1.0
        point = np.where(missing[:, None], np.nan, self.points_mm[np.maximum(index, 0)])
        return FingerprintMatch(index, similarity, point)
