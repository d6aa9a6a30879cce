"""An independent check of a fitted cage: calls decaying after their offset as recorded.

The fit (:mod:`~napari_gerbil.cagefit.room_fit`) never sees the decay. Here the engine
renders calls at the recording's positions in the start and the fitted cage (the
recorded calls' stimulus classes, their levels and the recording's noise floor), and
:func:`~napari_gerbil.cagefit.features.decay_curves` of rendered and recorded calls
are compared: the energy after each call's offset (dB re its last ms) and its slope.
Stimuli are drawn afresh, so single calls differ; averages over many calls agree when
the room does.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from napari_gerbil.cagefit.features import (
    FEATURE_BAND_HZ,
    _bandpass,
    decay_curves,
    noise_power,
)
from napari_gerbil.io.cage import Cage
from napari_gerbil.simulate.renderer import ImageSourceRenderer
from napari_gerbil.simulate.room import RenderConfig, Room
from napari_gerbil.simulate.stimuli import CALL_CLASSES, STIMULUS_CLASSES, StimulusGenerator

#: Share of white noise's power inside the feature band.
_BAND_SHARE = (FEATURE_BAND_HZ[1] - FEATURE_BAND_HZ[0]) / 62500.0
#: Rendered calls per batch.
BATCH_CALLS = 64


@dataclasses.dataclass
class DecayCheck:
    """Mean decay curves (dB, per microphone) and slopes (dB/ms), recorded and rendered."""

    recorded: np.ndarray  # (n_mics, n_blocks)
    start: np.ndarray
    fitted: np.ndarray
    slope_recorded: np.ndarray  # (n_mics,)
    slope_start: np.ndarray
    slope_fitted: np.ndarray
    n_calls: int

    def rms_db(self, which: str) -> float:
        """RMS difference of a cage's mean decay curves from the recorded ones."""
        curves = self.start if which == "start" else self.fitted
        return float(np.sqrt(np.nanmean((curves - self.recorded) ** 2)))


def _band_power(y: np.ndarray, fs_hz: float) -> float:
    return float(np.mean(_bandpass(y, fs_hz) ** 2))


def _render_like(
    cage: Cage,
    positions_mm: np.ndarray,
    audio: list[np.ndarray],
    classes: Sequence[str | None],
    fs_hz: float,
    noise_var: np.ndarray,
    seed: int,
) -> list[np.ndarray]:
    """One rendered call per recorded call: same position, class, level and noise floor."""
    renderer = ImageSourceRenderer(Room.from_cage(cage), fs_hz, RenderConfig(caller="omni"))
    generator = StimulusGenerator(fs_hz)
    stimuli = []
    for k, cls in enumerate(classes):
        rng = np.random.default_rng([seed, k])
        name = (
            cls if cls in STIMULUS_CLASSES else CALL_CLASSES[int(rng.integers(len(CALL_CLASSES)))]
        )
        stimuli.append(generator.sample(name, rng, 1.0).waveform)
    out: list[np.ndarray] = []
    tail = int(round(0.01 * fs_hz))
    for a in range(0, len(stimuli), BATCH_CALLS):
        sl = slice(a, a + BATCH_CALLS)
        out += renderer.render(positions_mm[sl], stimuli[sl], None, tail, seed + a)
    noisy = []
    for k, y in enumerate(out):
        y = y * np.sqrt(_band_power(audio[k], fs_hz) / max(_band_power(y, fs_hz), 1e-30))
        noise = np.random.default_rng([seed, k, 1]).standard_normal(y.shape)
        noisy.append((y + noise * np.sqrt(noise_var)[None, :]).astype(np.float32))
    return noisy


def decay_check(
    start: Cage,
    fitted: Cage,
    positions_mm: np.ndarray,
    audio: list[np.ndarray],
    classes: Sequence[str | None],
    fs_hz: float,
    max_calls: int = 300,
    seed: int = 0,
) -> DecayCheck:
    """Compare recorded decays with the start and fitted cages' (see the module docstring).

    Parameters
    ----------
    positions_mm
        (n_calls,) source position of each recorded call in ``audio``.
    max_calls
        Compare at most this many calls (an even spread).
    """
    keep = np.linspace(0, len(audio) - 1, min(max_calls, len(audio))).astype(int)
    audio = [audio[k] for k in keep]
    classes = [classes[k] for k in keep]
    positions_mm = positions_mm[keep]
    noise_var = noise_power(audio, fs_hz) / _BAND_SHARE

    def curves(calls: list[np.ndarray]) -> list[np.ndarray]:
        decay, slope = decay_curves(calls, fs_hz)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a block no call reaches: NaN
            return [np.nanmean(decay, axis=0), np.nanmean(slope, axis=0)]

    out = curves(audio)
    for cage in (start, fitted):
        out += curves(_render_like(cage, positions_mm, audio, classes, fs_hz, noise_var, seed))
    return DecayCheck(out[0], out[2], out[4], out[1], out[3], out[5], len(audio))
