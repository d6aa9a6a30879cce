"""The image-source renderer of shoebox cages in one place.

Each idea lives in its own module; this one re-exports their public names for callers
that import them from here:

- :mod:`~napari_gerbil.simulate.shoebox`: the image-source table, the renderer's bands
  and their filters, the diffuse field's decay;
- :mod:`~napari_gerbil.simulate.room`: the renderer's settings and one acoustic state
  of a cage;
- :mod:`~napari_gerbil.simulate.renderer`: the vectorized renderer (the physics);
- :mod:`~napari_gerbil.simulate.cage_simulator`: one cage's responses, one source at a
  time.
"""

from __future__ import annotations

from napari_gerbil.simulate.cage_simulator import CageSimulator
from napari_gerbil.simulate.renderer import ImageSourceRenderer
from napari_gerbil.simulate.room import RenderConfig, Room
from napari_gerbil.simulate.shoebox import (
    RENDER_BANDS_HZ,
    SURFACE_ORDER,
    band_filters,
    highpass_power,
    image_table,
)

__all__ = [
    "RENDER_BANDS_HZ",
    "SURFACE_ORDER",
    "CageSimulator",
    "ImageSourceRenderer",
    "RenderConfig",
    "Room",
    "band_filters",
    "highpass_power",
    "image_table",
]
