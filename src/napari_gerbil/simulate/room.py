"""What the renderer renders: its settings and one acoustic state of a cage.

:class:`RenderConfig` (orders, lengths, filters, the caller) and :class:`Room` (metres
from the cage corner).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.cage import Cage
from napari_gerbil.physics import speed_of_sound_m_s
from napari_gerbil.simulate.caller import CALLERS


@dataclasses.dataclass
class RenderConfig(Config):
    """How responses are rendered.

    Parameters
    ----------
    max_order
        Highest reflection order counted (specular + diffuse energy).
    specular_order
        Images up to this order are placed with an exact (windowed-sinc) fractional delay.
    coherent_order
        Images up to this order (None: ``max_order``) are placed at their nearest sample;
        the energy of higher orders forms a noise tail with the same envelope (loses the
        low-frequency coherence of a shoebox: > 2 dB decay error against pyroomacoustics).
    max_rir_s
        Longest response rendered (the diffuse tail is cut there).
    fractional_delay_taps
        Length of the windowed-sinc fractional delay of each specular image.
    highpass_hz
        Corner of the microphones' zero-phase 4th-order Butterworth high-pass (0: none).
    air_absorption
        Apply ISO 9613-1 air absorption (False only for comparisons).
    tail_bin_samples
        Time resolution of the diffuse energy envelope.
    caller
        How a source with a heading radiates (:data:`~napari_gerbil.simulate.caller.CALLERS`):
        ``plausible`` (a mouth on a rigid head: a beam that narrows with frequency, no
        null), ``cardioid`` (``source_pattern_p`` at every frequency) or ``omni``.
    source_pattern_p
        Pattern of the ``cardioid`` caller (0.5 = cardioid, a null behind).
    """

    max_order: int = 20
    specular_order: int = 3
    coherent_order: int | None = None
    max_rir_s: float = 0.03
    fractional_delay_taps: int = 32
    highpass_hz: float = 1000.0
    air_absorption: bool = True
    tail_bin_samples: int = 32
    caller: str = "plausible"
    source_pattern_p: float = 0.5

    def __post_init__(self) -> None:
        if self.caller not in CALLERS:
            raise InvalidInputError(None, "caller", " or ".join(CALLERS), repr(self.caller))
        if self.coherent_order is None:
            self.coherent_order = self.max_order
        if not 0 <= self.specular_order <= self.coherent_order <= self.max_order <= 60:
            raise InvalidInputError(
                None,
                "specular_order/coherent_order/max_order",
                "0 <= specular_order <= coherent_order <= max_order <= 60",
                f"{self.specular_order}/{self.coherent_order}/{self.max_order}",
            )
        if not 0.002 <= self.max_rir_s <= 0.5:
            raise InvalidInputError(None, "max_rir_s", "0.002 .. 0.5 s", str(self.max_rir_s))
        if self.fractional_delay_taps < 4 or self.fractional_delay_taps % 2:
            raise InvalidInputError(
                None,
                "fractional_delay_taps",
                "an even number >= 4",
                str(self.fractional_delay_taps),
            )
        if not 0.0 <= self.source_pattern_p <= 1.0:
            raise InvalidInputError(None, "source_pattern_p", "0 .. 1", str(self.source_pattern_p))


@dataclasses.dataclass
class Room:
    """One acoustic state of a cage, as the renderer needs it (metres, corner origin).

    Build with :meth:`from_cage`; the engine perturbs these arrays for domain
    randomization.
    """

    dims_m: np.ndarray  # (3,)
    mics_m: np.ndarray  # (n_mics, 3)
    mic_directions: np.ndarray  # (n_mics, 3) unit
    mic_pattern_p: float
    mic_gains: np.ndarray  # (n_mics,) linear
    absorption: np.ndarray  # (6, 8) energy absorption per surface and octave band
    scattering: float
    temperature_c: float
    humidity_pct: float

    @classmethod
    def from_cage(cls, cage: Cage) -> Room:
        """The cage's nominal acoustics."""
        band = cage.band_absorption()
        walls, floor, ceiling = band["walls"], band["floor"], band["ceiling"]
        return cls(
            dims_m=cage.dims / 1000.0,
            mics_m=(cage.mics + np.r_[cage.dims[:2] / 2.0, 0.0]) / 1000.0,
            mic_directions=cage.orientations(),
            mic_pattern_p=float(cage.mic_pattern_p),
            mic_gains=cage.mic_gains(),
            absorption=np.stack([walls, walls, walls, walls, floor, ceiling]),
            scattering=float(cage.scattering),
            temperature_c=float(cage.temperature_c),
            humidity_pct=float(cage.humidity_pct),
        )

    @property
    def n_mics(self) -> int:
        """Number of microphones."""
        return len(self.mics_m)

    @property
    def speed_m_s(self) -> float:
        """Speed of sound."""
        return speed_of_sound_m_s(self.temperature_c)

    def to_room_m(self, xyz_mm: np.ndarray) -> np.ndarray:
        """Arena-frame mm (origin at the floor centre) -> metres from the cage corner."""
        return (np.asarray(xyz_mm, float) + np.r_[self.dims_m[:2] * 500.0, 0.0]) / 1000.0
