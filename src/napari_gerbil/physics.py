"""Physical constants and formulas shared by the simulator and the classical baselines."""

from __future__ import annotations

import numpy as np

from napari_gerbil.errors import InvalidInputError

#: Default air temperature (degrees Celsius) when none is given.
DEFAULT_TEMPERATURE_C = 20.0


def speed_of_sound_m_s(temperature_c: float = DEFAULT_TEMPERATURE_C) -> float:
    """Speed of sound in dry air, ``331.3 * sqrt(1 + T / 273.16)`` m/s (T in Celsius).

    343.2 m/s at 20 degC.

    Raises
    ------
    InvalidInputError
        If the temperature is not above absolute zero or is not finite.
    """
    t = float(temperature_c)
    if not np.isfinite(t) or t <= -273.15:
        raise InvalidInputError(None, "temperature_c", "a finite temperature > -273.15 C", str(t))
    return 331.3 * float(np.sqrt(1.0 + t / 273.16))
