"""One cage's responses, one source at a time (:class:`CageSimulator`)."""

from __future__ import annotations

import numpy as np

from napari_gerbil.io.cage import Cage
from napari_gerbil.simulate.renderer import ImageSourceRenderer
from napari_gerbil.simulate.room import RenderConfig, Room


class CageSimulator:
    """The acoustics of one cage: responses and direct delays, one source at a time.

    A thin per-source front of :class:`ImageSourceRenderer` for code that walks through
    positions (sessions, RIR banks); picklable, so process pools can share it.

    Parameters
    ----------
    cage
        The nominal cage (its absorption, scattering, microphones, air).
    render
        Renderer settings.
    sample_rate_hz
        Sampling rate.
    """

    def __init__(
        self, cage: Cage, render: RenderConfig | None = None, sample_rate_hz: float = 125000.0
    ) -> None:
        self.cage = cage
        self.sample_rate_hz = float(sample_rate_hz)
        self.renderer = ImageSourceRenderer(Room.from_cage(cage), self.sample_rate_hz, render)
        self.arena = cage.arena()

    @property
    def n_mics(self) -> int:
        """Number of microphones."""
        return self.cage.n_mics

    @property
    def speed_m_per_s(self) -> float:
        """Speed of sound in the cage's air."""
        return self.renderer.c

    def max_rir_samples(self) -> int:
        """Length of every response, in samples."""
        return self.renderer.rir_samples

    def rir(
        self, source_mm: np.ndarray, heading_rad: float | None = None, seed: int = 0
    ) -> np.ndarray:
        """(n_samples, n_mics) float32 response of one source; sample 0 = emission."""
        heading = np.array([np.nan if heading_rad is None else float(heading_rad)])
        return self.renderer.rirs(np.asarray(source_mm, float).reshape(1, 3), heading, seed)[0]

    def direct_delay_samples(self, source_mm: np.ndarray) -> np.ndarray:
        """(n_mics,) straight-line travel time from the source to each microphone."""
        return self.renderer.direct_delay_samples(source_mm)

    def description(self) -> dict:
        """Metadata stored with simulated files."""
        return {
            "cage": self.cage.to_dict(),
            "cage_source": self.cage.name,
            "render": self.renderer.config.to_dict(),
            "renderer": "napari_gerbil.simulate.render.ImageSourceRenderer",
            "speed_of_sound_m_per_s": self.renderer.c,
        }
