"""Room impulse responses of a shoebox cage by pyroomacoustics: the reference renderer.

Simulated data comes from :mod:`napari_gerbil.simulate.render` (about 5x faster per
response, batched); this module is what it is checked against.

The image-source method of pyroomacoustics (ShoeBox) gives the reflections with their
per-octave wall damping; ISO 9613-1 air absorption, which pyroomacoustics only
tabulates up to 8 kHz, is then applied as a time-varying filter: the part of the
response arriving at time ``t`` travelled ``c * t`` metres, so each short frame of the
response is multiplied in frequency by ``exp(-a(f) * c * t)``. The response is cut
where its energy decay curve is ``tail_db`` below the total (or at ``max_rir_s``).

Time origin: sample 0 of every impulse response is the emission time.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
from scipy.signal import butter, sosfilt, sosfiltfilt

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry
from napari_gerbil.io.cage import ABSORPTION_PRESETS, BAND_CENTRES_HZ, MATERIALS
from napari_gerbil.physics import speed_of_sound_m_s
from napari_gerbil.simulate.air import air_absorption_nepers_per_m

#: Surface names of pyroomacoustics' ShoeBox: west/east are x = 0 / x = length,
#: south/north are y = 0 / y = width.
SURFACES = ("west", "east", "south", "north", "floor", "ceiling")


@dataclasses.dataclass
class AcousticConfig(Config):
    """How the cage sounds.

    Parameters
    ----------
    preset
        One of :data:`ABSORPTION_PRESETS`.
    temperature_c, humidity_pct, pressure_kpa
        Air state (speed of sound, ISO 9613-1 absorption).
    max_order
        Highest image-source reflection order.
    octave_bands
        Frequency-dependent wall absorption (octave bands); False uses each material's
        32 kHz value for all frequencies, about 6x faster.
    highpass_hz
        Corner of the microphones' 4th-order high-pass (ultrasonic condenser mics roll
        off below about 1 kHz; it also removes the image method's build-up of very low
        frequencies in a closed box).
    max_rir_s
        Longest impulse response kept.
    tail_db
        Responses are cut where the energy decay curve is this far below the total.
    mic_directivity_p
        Cardioid-family pattern of the microphones pointing at the floor:
        1 = omnidirectional, 0.5 = cardioid, 0 = figure-of-eight.
    mic_gain_spread_db
        Standard deviation of the per-microphone gain (drawn once from ``gain_seed``).
    gain_seed
        Seed of the per-microphone gains.
    """

    preset: str = "cage"
    temperature_c: float = 20.0
    humidity_pct: float = 50.0
    pressure_kpa: float = 101.325
    max_order: int = 25
    octave_bands: bool = True
    highpass_hz: float = 1000.0
    max_rir_s: float = 0.03
    tail_db: float = 60.0
    mic_directivity_p: float = 1.0
    mic_gain_spread_db: float = 0.0
    gain_seed: int = 0

    def __post_init__(self) -> None:
        if self.preset not in ABSORPTION_PRESETS:
            raise InvalidInputError(
                None, "preset", f"one of {sorted(ABSORPTION_PRESETS)}", repr(self.preset)
            )
        if not 0.0 <= self.highpass_hz < 20000.0:
            raise InvalidInputError(None, "highpass_hz", "0 .. 20000 Hz", str(self.highpass_hz))
        if not 0 <= self.max_order <= 80:
            raise InvalidInputError(None, "max_order", "0 .. 80", str(self.max_order))
        if not 0.001 <= self.max_rir_s <= 1.0:
            raise InvalidInputError(None, "max_rir_s", "0.001 .. 1 s", str(self.max_rir_s))
        if not 0.0 <= self.mic_directivity_p <= 1.0:
            raise InvalidInputError(
                None, "mic_directivity_p", "0 .. 1", str(self.mic_directivity_p)
            )
        if self.mic_gain_spread_db < 0:
            raise InvalidInputError(
                None, "mic_gain_spread_db", ">= 0 dB", str(self.mic_gain_spread_db)
            )
        air_absorption_nepers_per_m(1000.0, **self._air())  # validates the air state

    def _air(self) -> dict[str, float]:
        return {
            "temperature_c": self.temperature_c,
            "humidity_pct": self.humidity_pct,
            "pressure_kpa": self.pressure_kpa,
        }


def surface_absorption(preset: str) -> dict[str, tuple[float, ...]]:
    """Energy absorption per octave band (:data:`BAND_CENTRES_HZ`) of each surface."""
    if preset not in ABSORPTION_PRESETS:
        raise InvalidInputError(None, "preset", f"one of {sorted(ABSORPTION_PRESETS)}", preset)
    spec = ABSORPTION_PRESETS[preset]
    return {s: MATERIALS[spec["walls" if s not in ("floor", "ceiling") else s]] for s in SURFACES}


def apply_air_absorption(
    rir: np.ndarray,
    sample_rate_hz: float,
    speed_m_per_s: float,
    nepers_per_m: Callable[[np.ndarray], np.ndarray],
    frame_samples: int = 128,
) -> np.ndarray:
    """Apply distance-dependent air absorption to impulse responses whose t=0 is emission.

    Short Hann frames (75 % overlap) of the response are filtered with the zero-phase
    gain ``exp(-a(f) * c * t_frame)``, ``t_frame`` the frame centre, and overlap-added.

    Parameters
    ----------
    rir
        (n_samples, n_channels) impulse responses.
    nepers_per_m
        Function of frequency (Hz) -> amplitude attenuation in nepers per metre.
    """
    n, n_ch = rir.shape
    hop = frame_samples // 4
    half = frame_samples // 2
    window = np.hanning(frame_samples + 1)[:-1]  # periodic: shifted copies sum to 2
    padded = np.zeros((n + 2 * frame_samples, n_ch))
    padded[frame_samples : frame_samples + n] = rir
    starts = np.arange(0, n + frame_samples, hop)
    idx = starts[:, None] + np.arange(frame_samples)[None, :]
    frames = padded[idx] * window[None, :, None]  # (n_frames, L, ch)
    n_fft = 2 * frame_samples
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
    t_centre_s = (starts + half - frame_samples) / sample_rate_hz
    dist_m = np.clip(t_centre_s, 0.0, None) * speed_m_per_s
    gain = np.exp(-np.outer(dist_m, nepers_per_m(freqs)))  # (n_frames, n_freq)
    # Zero-phase filtering: centre each frame in the FFT buffer, filter, un-centre.
    buf = np.zeros((len(starts), n_fft, n_ch))
    buf[:, half : half + frame_samples] = frames
    spec = np.fft.rfft(np.fft.ifftshift(buf, axes=1), axis=1) * gain[:, :, None]
    out_frames = np.fft.fftshift(np.fft.irfft(spec, n=n_fft, axis=1), axes=1)
    out = np.zeros((n + 3 * frame_samples, n_ch))
    for k, s in enumerate(starts):
        out[s : s + n_fft] += out_frames[k]
    # out[o] is padded sample o - half; data sample i is padded sample i + frame_samples
    return out[frame_samples + half : frame_samples + half + n] / 2.0


def energy_decay_db(rir: np.ndarray) -> np.ndarray:
    """Schroeder backward-integrated energy decay curve (dB re total), per channel."""
    energy = np.cumsum((rir**2)[::-1], axis=0)[::-1]
    return 10.0 * np.log10(np.maximum(energy / np.maximum(energy[:1], 1e-300), 1e-30))


def rt60_s(
    rir: np.ndarray,
    sample_rate_hz: float,
    band_hz: tuple[float, float] | None = None,
    fit_db: tuple[float, float] = (-5.0, -25.0),
) -> float:
    """Reverberation time from a straight-line fit of the energy decay (T20 by default).

    Parameters
    ----------
    rir
        (n_samples,) or (n_samples, n_channels); channels are summed in energy.
    band_hz
        Optional (low, high) band the response is filtered to first.
    """
    h = np.asarray(rir, dtype=float)
    h = h if h.ndim == 2 else h[:, None]
    if band_hz is not None:
        sos = butter(4, band_hz, "bandpass", fs=sample_rate_hz, output="sos")
        h = sosfilt(sos, h, axis=0)
    edc = energy_decay_db(np.sqrt((h**2).sum(axis=1, keepdims=True)))[:, 0]
    hi, lo = fit_db
    sel = np.nonzero((edc <= hi) & (edc >= lo))[0]
    if len(sel) < 4:
        raise InvalidInputError(None, "rir", f"a decay through {hi}..{lo} dB", "too short")
    slope_db_per_s = np.polyfit(sel / sample_rate_hz, edc[sel], 1)[0]
    return float(-60.0 / slope_db_per_s)


class CageAcoustics:
    """Impulse responses from any source position to every microphone of a cage.

    Parameters
    ----------
    arena
        Cage dimensions and microphone positions (mm, arena frame).
    config
        Absorption preset, air state, truncation, microphone pattern and gains.
    sample_rate_hz
        Sampling rate of the responses.
    """

    def __init__(
        self,
        arena: ArenaGeometry,
        config: AcousticConfig | None = None,
        sample_rate_hz: float = 125000.0,
    ) -> None:
        self.arena = arena
        self.config = config or AcousticConfig()
        self.sample_rate_hz = float(sample_rate_hz)
        self.speed_m_per_s = speed_of_sound_m_s(self.config.temperature_c)
        self._half_mm = np.r_[arena.dims_mm[:2] / 2.0, 0.0]
        mics_room = self.to_room_m(arena.mic_positions_mm)
        if ((mics_room <= 0) | (mics_room >= arena.dims_mm / 1000.0)).any():
            raise InvalidInputError(
                None, "mic_positions_mm", "microphones strictly inside the cage", "outside"
            )
        self._mics_room_m = mics_room
        gains_db = np.random.default_rng(self.config.gain_seed).normal(
            0.0, self.config.mic_gain_spread_db, arena.n_mics
        )
        #: (n_mics,) linear gain of each microphone.
        self.mic_gains = (10.0 ** (gains_db / 20.0)).astype(np.float32)
        self._absorption = surface_absorption(self.config.preset)
        self._anechoic = self.config.preset == "anechoic"

    @property
    def n_mics(self) -> int:
        """Number of microphones."""
        return self.arena.n_mics

    def to_room_m(self, xyz_mm: np.ndarray) -> np.ndarray:
        """Arena-frame mm (origin at the floor centre) -> room metres (corner origin)."""
        return (np.asarray(xyz_mm, dtype=float) + self._half_mm) / 1000.0

    def max_rir_samples(self) -> int:
        """Upper bound on the length of a response, in samples."""
        return int(round(self.config.max_rir_s * self.sample_rate_hz))

    @functools.cached_property
    def _materials(self):
        import pyroomacoustics as pra

        if self._anechoic:  # flat materials: pyroomacoustics skips its octave filters
            return {s: pra.Material(1.0) for s in SURFACES}
        if not self.config.octave_bands:
            k = BAND_CENTRES_HZ.index(32000.0)
            return {s: pra.Material(c[k]) for s, c in self._absorption.items()}
        return {
            s: pra.Material({"coeffs": list(c), "center_freqs": list(BAND_CENTRES_HZ)})
            for s, c in self._absorption.items()
        }

    def rir(
        self,
        source_mm: np.ndarray,
        heading_rad: float | None = None,
        source_directivity_p: float = 0.5,
    ) -> np.ndarray:
        """Impulse responses from one source position to all microphones.

        Parameters
        ----------
        source_mm
            (3,) source position (x, y, z) in the arena frame.
        heading_rad
            Horizontal direction the source faces (0 = +x, counter-clockwise); None
            for an omnidirectional source.
        source_directivity_p
            Cardioid-family pattern of a directional source (0.5 = cardioid).

        Returns
        -------
        ndarray
            (n_samples, n_mics) float32, sample 0 = emission time.
        """
        import pyroomacoustics as pra
        from pyroomacoustics.directivities import CardioidFamily, DirectionVector

        src = self.to_room_m(np.asarray(source_mm, dtype=float).reshape(3))
        dims_m = self.arena.dims_mm / 1000.0
        if ((src <= 0) | (src >= dims_m)).any():
            raise InvalidInputError(
                None, "source_mm", "a point strictly inside the cage", f"{np.round(source_mm, 1)}"
            )
        fs = self.sample_rate_hz
        room = pra.ShoeBox(
            dims_m,
            fs=int(round(fs)),
            materials=self._materials,
            max_order=0 if self._anechoic else self.config.max_order,
            air_absorption=False,
            use_rand_ism=False,
        )
        room.set_sound_speed(self.speed_m_per_s)
        src_dir = None
        if heading_rad is not None:
            src_dir = CardioidFamily(
                orientation=DirectionVector(
                    azimuth=float(heading_rad), colatitude=np.pi / 2, degrees=False
                ),
                p=source_directivity_p,
            )
        room.add_source(src, directivity=src_dir)
        mic_dir = None
        if self.config.mic_directivity_p < 1.0:
            down = DirectionVector(azimuth=0.0, colatitude=np.pi, degrees=False)
            mic_dir = [
                CardioidFamily(orientation=down, p=self.config.mic_directivity_p)
                for _ in range(self.n_mics)
            ]
        room.add_microphone_array(self._mics_room_m.T, directivity=mic_dir)
        room.compute_rir()
        delay = pra.constants.get("frac_delay_length") // 2  # pyroomacoustics' t=0 offset
        n = max(len(room.rir[m][0]) for m in range(self.n_mics)) - delay
        h = np.zeros((n, self.n_mics))
        for m in range(self.n_mics):
            r = np.asarray(room.rir[m][0])[delay:]
            h[: len(r), m] = r
        if self.config.highpass_hz > 0:
            # Zero-phase, so arrival times stay put. pyroomacoustics' octave-band
            # synthesis leaves a large sub-kHz component that starts before t = 0; a
            # causal filter would turn it into a transient at the emission time.
            sos = butter(4, self.config.highpass_hz, "highpass", fs=fs, output="sos")
            h = sosfiltfilt(sos, h, axis=0)
        h = self._causal(h, src_mm=np.asarray(source_mm, dtype=float).reshape(3), half=delay)
        h = apply_air_absorption(
            h,
            fs,
            self.speed_m_per_s,
            functools.partial(air_absorption_nepers_per_m, **self.config._air()),
        )
        h = h[: self._cut_samples(h)] * self.mic_gains[None, :]
        return h.astype(np.float32)

    def _causal(self, h: np.ndarray, src_mm: np.ndarray, half: int) -> np.ndarray:
        """Zero each response before its direct sound can arrive.

        The direct path is a windowed sinc ``2 * half + 1`` samples long centred on the
        geometric delay; everything earlier than ``delay - half`` is filter leakage and
        is faded out over ``half`` samples before that.
        """
        t = np.arange(len(h))[:, None]
        start = self.direct_delay_samples(src_mm)[None, :] - 2 * half
        ramp = np.clip((t - start) / half, 0.0, 1.0)
        return h * (0.5 - 0.5 * np.cos(np.pi * ramp))

    def _cut_samples(self, h: np.ndarray) -> int:
        edc = energy_decay_db(np.sqrt((h**2).sum(axis=1, keepdims=True)))[:, 0]
        below = np.nonzero(edc < -self.config.tail_db)[0]
        n = below[0] if len(below) else len(h)
        return int(max(1, min(n, self.max_rir_samples())))

    def direct_delay_samples(self, source_mm: np.ndarray) -> np.ndarray:
        """(n_mics,) straight-line travel time from the source to each microphone."""
        d_m = (
            np.linalg.norm(
                self.arena.mic_positions_mm - np.asarray(source_mm, dtype=float)[None, :], axis=1
            )
            / 1000.0
        )
        return d_m / self.speed_m_per_s * self.sample_rate_hz

    def description(self) -> dict:
        """Metadata describing these acoustics (stored with simulated files)."""
        return {
            "acoustics": self.config.to_dict(),
            "surface_absorption": {k: list(v) for k, v in self._absorption.items()},
            "band_centres_hz": list(BAND_CENTRES_HZ),
            "speed_of_sound_m_per_s": self.speed_m_per_s,
            "mic_gains": self.mic_gains.tolist(),
        }
