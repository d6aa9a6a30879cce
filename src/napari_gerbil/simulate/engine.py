"""The data engine: fresh simulated calls at fresh positions, on the fly, for any cage.

A training call is a fresh source position (uniform over the floor inside a margin,
height 0-100 mm by default, a heading for directional emitters), a fresh stimulus
and fresh noise, rendered by :class:`~napari_gerbil.simulate.render.ImageSourceRenderer`
in a randomly perturbed copy of the cage (domain randomization around the cage's own
values: absorption per surface, scattering, microphone position, gain, orientation
and pattern, temperature, cage size; plus SNR and directional emission). Every batch
is a pure function of ``(seed, batch index)``, so results do not depend on the number
of worker processes.

The labels are the source positions in the *nominal* cage's arena frame: the network
never sees the perturbations, so it has to be robust to them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.cage import Cage, load_cage
from napari_gerbil.simulate.noise import NoiseSource
from napari_gerbil.simulate.renderer import ImageSourceRenderer
from napari_gerbil.simulate.room import RenderConfig, Room
from napari_gerbil.simulate.stimuli import CALL_CLASSES, STIMULUS_CLASSES, StimulusGenerator


def _check_range(name: str, value: tuple[float, float], lo: float, hi: float) -> None:
    if len(value) != 2 or not (lo <= value[0] <= value[1] <= hi):
        raise InvalidInputError(None, name, f"[min, max] within {lo:g} .. {hi:g}", str(list(value)))


@dataclasses.dataclass
class Randomization(Config):
    """Ranges of the domain randomization (each draw is uniform in its range).

    Every acoustic draw perturbs the cage's own value (a cage file with scattering 0.9
    trains near 0.9); none replaces it.

    Parameters
    ----------
    absorption_db
        The reflected energy ``1 - absorption`` of each of the 6 surfaces is scaled by
        ``10 ** (u / 10)``, ``u`` in ``[-absorption_db, absorption_db]``.
    scattering
        Offset range added to the cage's ``scattering`` (clipped to 0 .. 1).
    mic_jitter_mm
        Each microphone coordinate moves by up to this much.
    mic_gain_db
        Each microphone's gain changes by up to this much.
    mic_orientation_deg
        Each microphone's axis tilts by up to this angle.
    mic_pattern_p
        Offset range added to the cage's ``mic_pattern_p`` (clipped to 0 .. 1).
    temperature_c
        Offset range (degrees C) added to the cage's ``temperature_c`` (clipped to
        -20 .. 50 C).
    dims_mm
        Each cage dimension changes by up to this much.
    snr_db
        Signal-to-noise ratio range of a call (noise RMS re the call's RMS).
    directional_fraction
        Share of calls emitted by a directional (cardioid) source.
    """

    absorption_db: float = 6.0
    scattering: tuple[float, float] = (-0.1, 0.2)
    mic_jitter_mm: float = 2.0
    mic_gain_db: float = 3.0
    mic_orientation_deg: float = 10.0
    mic_pattern_p: tuple[float, float] = (-0.25, 0.0)
    temperature_c: tuple[float, float] = (-5.0, 10.0)
    dims_mm: float = 5.0
    snr_db: tuple[float, float] = (0.0, 40.0)
    directional_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name, hi in (
            ("absorption_db", 20.0),
            ("mic_jitter_mm", 20.0),
            ("mic_gain_db", 12.0),
            ("mic_orientation_deg", 45.0),
            ("dims_mm", 50.0),
            ("directional_fraction", 1.0),
        ):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= hi):
                raise InvalidInputError(None, name, f"0 .. {hi:g}", str(value))
        _check_range("scattering", self.scattering, -1.0, 1.0)
        _check_range("mic_pattern_p", self.mic_pattern_p, -1.0, 1.0)
        _check_range("temperature_c", self.temperature_c, -70.0, 70.0)
        _check_range("snr_db", self.snr_db, -20.0, 100.0)

    @classmethod
    def none(cls) -> Randomization:
        """No randomization: the nominal cage, a fixed SNR of 30 dB, omni sources."""
        return cls(
            absorption_db=0.0,
            scattering=(0.0, 0.0),
            mic_jitter_mm=0.0,
            mic_gain_db=0.0,
            mic_orientation_deg=0.0,
            mic_pattern_p=(0.0, 0.0),
            temperature_c=(0.0, 0.0),
            dims_mm=0.0,
            snr_db=(30.0, 30.0),
            directional_fraction=0.0,
        )


@dataclasses.dataclass
class EngineConfig(Config):
    """What the engine draws.

    Parameters
    ----------
    sample_rate_hz
        Audio sampling rate.
    margin_mm
        Sources stay this far from the walls.
    height_mm
        Source height range above the floor.
    classes
        Stimulus classes drawn uniformly (default: the 15 call classes).
    tail_s
        Reverberation kept after each stimulus.
    calls_per_room
        Calls rendered in one randomized room draw (the batch size).
    randomize
        Domain randomization on (training) or off (the nominal cage, omni sources, SNR
        the middle of ``randomization.snr_db``).
    randomization
        Ranges of the randomization.
    render
        Renderer settings.
    """

    sample_rate_hz: float = 125000.0
    margin_mm: float = 30.0
    height_mm: tuple[float, float] = (0.0, 100.0)
    classes: tuple[str, ...] | None = None
    tail_s: float = 0.01
    calls_per_room: int = 32
    randomize: bool = True
    randomization: Randomization = dataclasses.field(default_factory=Randomization)
    render: RenderConfig = dataclasses.field(default_factory=RenderConfig)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sample_rate_hz) and 120000.0 <= self.sample_rate_hz <= 1e6):
            raise InvalidInputError(
                None, "sample_rate_hz", "120000 .. 1000000 Hz", str(self.sample_rate_hz)
            )
        if not (np.isfinite(self.margin_mm) and self.margin_mm >= 0):
            raise InvalidInputError(None, "margin_mm", ">= 0 mm", str(self.margin_mm))
        _check_range("height_mm", self.height_mm, 0.0, 10000.0)
        for c in self.classes or ():
            if c not in STIMULUS_CLASSES:
                raise InvalidInputError(None, "classes", f"names from {STIMULUS_CLASSES}", repr(c))
        if not 1 <= self.calls_per_room <= 4096:
            raise InvalidInputError(None, "calls_per_room", "1 .. 4096", str(self.calls_per_room))
        if not 0.0 <= self.tail_s <= 0.5:
            raise InvalidInputError(None, "tail_s", "0 .. 0.5 s", str(self.tail_s))


def perturbed_room(cage: Cage, rng: np.random.Generator, ranges: Randomization) -> Room:
    """One random draw of the cage's acoustics and hardware around its own values.

    See :class:`Randomization`: absorption, scattering, pattern and temperature are the
    cage's values perturbed, clipped to their valid ranges.
    """
    room = Room.from_cage(cage)
    n = room.n_mics
    dims_mm = cage.dims + rng.uniform(-ranges.dims_mm, ranges.dims_mm, 3)
    reflected = (1.0 - room.absorption) * 10.0 ** (
        rng.uniform(-ranges.absorption_db, ranges.absorption_db, (6, 1)) / 10.0
    )
    mics_mm = cage.mics + rng.uniform(-ranges.mic_jitter_mm, ranges.mic_jitter_mm, (n, 3))
    half = np.r_[dims_mm[:2] / 2.0, dims_mm[2]]
    mics_mm = np.clip(mics_mm, np.r_[-half[:2] + 1.0, 1.0], half - 1.0)
    # tilt each microphone axis by a random angle up to the range, about a random axis
    tilt = np.deg2rad(rng.uniform(0.0, ranges.mic_orientation_deg, n))
    directions = room.mic_directions.copy()
    for k in range(n):
        axis = np.cross(directions[k], rng.standard_normal(3))
        axis /= max(np.linalg.norm(axis), 1e-12)
        d = directions[k]
        directions[k] = (
            d * np.cos(tilt[k])
            + np.cross(axis, d) * np.sin(tilt[k])
            + axis * np.dot(axis, d) * (1 - np.cos(tilt[k]))
        )
    return dataclasses.replace(
        room,
        dims_m=dims_mm / 1000.0,
        mics_m=(mics_mm + np.r_[dims_mm[:2] / 2.0, 0.0]) / 1000.0,
        mic_directions=directions,
        mic_pattern_p=float(np.clip(room.mic_pattern_p + rng.uniform(*ranges.mic_pattern_p), 0, 1)),
        mic_gains=room.mic_gains
        * 10.0 ** (rng.uniform(-ranges.mic_gain_db, ranges.mic_gain_db, n) / 20.0),
        absorption=np.clip(1.0 - reflected, 0.0, 1.0),
        scattering=float(np.clip(room.scattering + rng.uniform(*ranges.scattering), 0.0, 1.0)),
        temperature_c=float(
            np.clip(room.temperature_c + rng.uniform(*ranges.temperature_c), -20.0, 50.0)
        ),
    )


@dataclasses.dataclass
class CallBatch:
    """Rendered calls of one batch.

    Attributes
    ----------
    audio
        One float32 (n_samples_i, n_mics) recording per call, sample 0 = emission.
    locations_mm
        (n, 3) source positions, nominal arena frame.
    headings_rad
        (n,) direction each directional source faced (NaN = omnidirectional).
    stimulus_classes
        Class of each call's stimulus.
    snr_db
        (n,) signal-to-noise ratio of each call.
    """

    audio: list[np.ndarray]
    locations_mm: np.ndarray
    headings_rad: np.ndarray
    stimulus_classes: list[str]
    snr_db: np.ndarray


class DataEngine:
    """Draw and render fresh calls in a cage, deterministically per (seed, batch).

    Parameters
    ----------
    cage
        A :class:`~napari_gerbil.io.cage.Cage`, a built-in name or a cage file.
    config
        What to draw (positions, classes, randomization, renderer).
    seed
        Seed of every draw.
    device
        Where the renderer runs: ``cpu`` or ``cuda`` (the training GPU). Positions,
        rooms, stimuli and the additive noise are drawn on the CPU, so they do not
        depend on the device; the diffuse tail's noise comes from the device's
        generator, so a GPU batch matches a CPU one where scattering is 0.
    kernel
        The image-sum kernel (None: ``compiled`` on a CPU, ``torch`` elsewhere).
    """

    def __init__(
        self,
        cage: Cage | str = "paper",
        config: EngineConfig | None = None,
        seed: int = 0,
        device: str = "cpu",
        kernel: str | None = None,
    ) -> None:
        self.cage = load_cage(cage)
        self.config = config or EngineConfig()
        self.seed = int(seed)
        self.device = str(device)
        #: ``compiled`` (numba, CPU only) or ``torch`` (the kernel GPUs run).
        self.kernel = kernel or ("compiled" if self.device == "cpu" else "torch")
        if self.seed < 0:
            raise InvalidInputError(None, "seed", "an integer >= 0", str(seed))
        half = self.cage.dims[:2] / 2.0 - self.config.margin_mm
        if (half <= 0).any():
            raise InvalidInputError(
                self.cage.name, "margin_mm", "a margin smaller than half the floor", str(half)
            )
        if self.config.height_mm[1] >= self.cage.dims[2]:
            raise InvalidInputError(
                self.cage.name,
                "height_mm",
                f"heights below the ceiling ({self.cage.dims[2]:g} mm)",
                str(list(self.config.height_mm)),
            )
        self._half_floor_mm = half
        self._stimuli = StimulusGenerator(self.config.sample_rate_hz)
        self._nominal: ImageSourceRenderer | None = None

    @property
    def n_mics(self) -> int:
        """Channels of every call."""
        return self.cage.n_mics

    def draw_room(self, rng: np.random.Generator) -> Room | None:
        """The batch's randomized room (None when randomization is off)."""
        if not self.config.randomize:
            return None
        return perturbed_room(self.cage, rng, self.config.randomization)

    def _renderer(self, room: Room | None) -> ImageSourceRenderer:
        cfg = self.config
        if room is None:
            if self._nominal is None:
                self._nominal = ImageSourceRenderer(
                    Room.from_cage(self.cage), cfg.sample_rate_hz, cfg.render, self.device,
                    self.kernel,
                )  # fmt: skip
            return self._nominal
        return ImageSourceRenderer(room, cfg.sample_rate_hz, cfg.render, self.device, self.kernel)

    def positions(self, index: int, n_calls: int | None = None) -> np.ndarray:
        """(n, 3) source positions of batch ``index`` without rendering it."""
        n = self.config.calls_per_room if n_calls is None else int(n_calls)
        rng = np.random.default_rng([self.seed, int(index), 0x5EED])
        self.draw_room(rng)
        return self.draw_positions(rng, n)[0]

    def draw_positions(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) source positions and (n,) headings (NaN = omnidirectional)."""
        xy = rng.uniform(-self._half_floor_mm, self._half_floor_mm, (n, 2))
        z = rng.uniform(*self.config.height_mm, n)
        heading = rng.uniform(-np.pi, np.pi, n)
        fraction = self.config.randomization.directional_fraction if self.config.randomize else 0.0
        heading[rng.random(n) >= fraction] = np.nan
        return np.c_[xy, np.maximum(z, 1.0)], heading

    def batch(self, index: int, n_calls: int | None = None) -> CallBatch:
        """Batch ``index``: ``calls_per_room`` fresh calls (a pure function of seed, index)."""
        cfg = self.config
        n = cfg.calls_per_room if n_calls is None else int(n_calls)
        rng = np.random.default_rng([self.seed, int(index), 0x5EED])
        renderer = self._renderer(self.draw_room(rng))
        sources, headings = self.draw_positions(rng, n)
        classes = cfg.classes or CALL_CLASSES
        stimuli = [
            self._stimuli.sample(classes[int(rng.integers(len(classes)))], rng) for _ in range(n)
        ]
        snr = (
            rng.uniform(*cfg.randomization.snr_db, n)
            if cfg.randomize
            else np.full(n, float(np.mean(cfg.randomization.snr_db)))
        )
        tail = int(round(cfg.tail_s * cfg.sample_rate_hz))
        clean = renderer.render(
            sources, [s.waveform for s in stimuli], headings, tail, seed=int(rng.integers(2**62))
        )
        audio = []
        for k, y in enumerate(clean):
            rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
            noise_rms = rms * 10.0 ** (-snr[k] / 20.0)
            noise = NoiseSource(self.n_mics, cfg.sample_rate_hz, noise_rms, rng).next(len(y))
            audio.append(y + noise)
        return CallBatch(audio, sources, headings, [s.stimulus_class for s in stimuli], snr)

    def iter_batches(self, start: int = 0, stop: int | None = None) -> Iterator[CallBatch]:
        """Batches ``start, start + 1, ...`` (forever when ``stop`` is None)."""
        index = start
        while stop is None or index < stop:
            yield self.batch(index)
            index += 1


def render_positions(
    cage: Cage | str,
    sources_mm: np.ndarray,
    stimuli: Sequence[np.ndarray],
    headings_rad: np.ndarray | None = None,
    render: RenderConfig | None = None,
    sample_rate_hz: float = 125000.0,
    tail_samples: int = 1250,
    seed: int = 0,
) -> list[np.ndarray]:
    """Noise-free recordings of given stimuli at given positions in the nominal cage."""
    renderer = ImageSourceRenderer(Room.from_cage(load_cage(cage)), sample_rate_hz, render)
    return renderer.render(sources_mm, list(stimuli), headings_rad, tail_samples, seed)
