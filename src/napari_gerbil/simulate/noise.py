"""Recording noise: a coloured background floor plus white sensor noise, streamable.

The background (fans, animals moving in bedding) is low-frequency noise (first-order
low-pass at ``background_corner_hz``), the sensor noise is white: together, one white
Gaussian sequence through a first-order low-shelf filter (one random draw per sample,
which matters for hours of 4-channel audio). Filter state is kept between calls of
:meth:`NoiseSource.next`, so a long recording can be generated in chunks and stays
continuous across chunk boundaries.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.signal import butter, lfilter

from napari_gerbil.errors import InvalidInputError


@functools.lru_cache(maxsize=16)
def _shelf(
    corner_hz: float, sample_rate_hz: float, background_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """First-order filter (b, a), float32: unit output power on unit white noise.

    ``sqrt(f / P_lp) * lowpass + sqrt(1 - f)``: a share ``f`` (nominal, the two parts
    share the same source) of the power in the low-pass band, the rest white.
    """
    b, a = butter(1, corner_hz, "lowpass", fs=sample_rate_hz)
    impulse = np.r_[1.0, np.zeros(8191)]
    lp_power = np.sum(lfilter(b, a, impulse) ** 2)
    b_shelf = np.sqrt(background_fraction / lp_power) * b + np.sqrt(1 - background_fraction) * a
    b_shelf /= np.sqrt(np.sum(lfilter(b_shelf, a, impulse) ** 2))
    return b_shelf.astype(np.float32), a.astype(np.float32)


class NoiseSource:
    """Stationary multichannel noise of a given total RMS.

    Parameters
    ----------
    n_channels
        Number of microphones (independent noise per channel).
    sample_rate_hz
        Sampling rate.
    rms
        Total RMS per channel (background and sensor together).
    rng
        Random generator (the noise is a deterministic function of it).
    background_fraction
        Share of the noise power in the coloured background (the rest is sensor noise).
    background_corner_hz
        Corner of the background's low-pass.
    """

    def __init__(
        self,
        n_channels: int,
        sample_rate_hz: float,
        rms: float,
        rng: np.random.Generator,
        background_fraction: float = 0.7,
        background_corner_hz: float = 4000.0,
    ) -> None:
        if rms < 0 or not np.isfinite(rms):
            raise InvalidInputError(None, "noise rms", "a finite value >= 0", str(rms))
        if not 0.0 <= background_fraction <= 1.0:
            raise InvalidInputError(None, "background_fraction", "0 .. 1", str(background_fraction))
        self.n_channels = int(n_channels)
        self.rms = float(rms)
        self._rng = rng
        b, self._a = _shelf(
            float(background_corner_hz), float(sample_rate_hz), float(background_fraction)
        )
        self._b = (b * np.float32(self.rms)).astype(np.float32)
        self._zi = np.zeros((1, self.n_channels), np.float32)
        self.next(256)  # run the filter into its stationary state (time constant < 10 samples)

    def next(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` of noise: float32 (n_samples, n_channels)."""
        shape = (int(n_samples), self.n_channels)
        if self.rms == 0.0:
            return np.zeros(shape, np.float32)
        white = self._rng.standard_normal(shape, dtype=np.float32)
        noise, self._zi = lfilter(self._b, self._a, white, axis=0, zi=self._zi)
        return noise.astype(np.float32, copy=False)
