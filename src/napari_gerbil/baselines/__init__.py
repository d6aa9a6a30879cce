"""Classical sound-source localizers: MUSE (steered response power) and GCC-PHAT.

>>> result = localize("muse", audio, mic_positions_mm, 125000, (600, 400, 350))  # doctest: +SKIP
>>> result.point_mm  # (B, 2) mm, arena frame  # doctest: +SKIP
"""

from napari_gerbil.baselines.geometry import FloorGrid, speed_of_sound_m_s
from napari_gerbil.baselines.localize import METHODS, BaselineResult, canonical_method, localize

__all__ = [
    "METHODS",
    "BaselineResult",
    "FloorGrid",
    "canonical_method",
    "localize",
    "speed_of_sound_m_s",
]
