"""Sound propagation in air: ISO 9613-1 atmospheric absorption.

pyroomacoustics' own air-absorption table stops at 8 kHz; rodent calls reach 60 kHz,
where air takes more than a decibel per metre, so the simulator computes the
absorption itself from the ISO 9613-1 (1993) formula. The speed of sound is
:func:`napari_gerbil.physics.speed_of_sound_m_s` (shared with the baselines).
"""

from __future__ import annotations

import numpy as np

from napari_gerbil.errors import InvalidInputError

_T0_K = 293.15  # reference air temperature
_T01_K = 273.16  # triple-point isotherm temperature
_PR_KPA = 101.325  # reference ambient pressure
_DB_PER_NEPER = 20.0 / np.log(10.0)  # 8.686 dB per neper (amplitude)


def _check(temperature_c: float, humidity_pct: float, pressure_kpa: float) -> None:
    if not -50.0 <= temperature_c <= 60.0:
        raise InvalidInputError(None, "temperature_c", "-50 .. 60 degC", f"{temperature_c}")
    if not 0.0 <= humidity_pct <= 100.0:
        raise InvalidInputError(None, "humidity_pct", "0 .. 100 %", f"{humidity_pct}")
    if not 10.0 <= pressure_kpa <= 200.0:
        raise InvalidInputError(None, "pressure_kpa", "10 .. 200 kPa", f"{pressure_kpa}")


def air_absorption_db_per_m(
    freq_hz: np.ndarray | float,
    temperature_c: float = 20.0,
    humidity_pct: float = 50.0,
    pressure_kpa: float = 101.325,
) -> np.ndarray:
    """Pure-tone atmospheric attenuation coefficient (ISO 9613-1, eq. 3-5).

    Parameters
    ----------
    freq_hz
        Frequencies in Hz (any shape).
    temperature_c, humidity_pct, pressure_kpa
        Air temperature, relative humidity and ambient pressure.

    Returns
    -------
    ndarray
        Attenuation in dB per metre, same shape as ``freq_hz``. About 1.3 dB/m at
        40 kHz, 20 degC, 50 % relative humidity.
    """
    _check(temperature_c, humidity_pct, pressure_kpa)
    f = np.asarray(freq_hz, dtype=float)
    t = temperature_c + 273.15
    pa = pressure_kpa / _PR_KPA
    psat = 10.0 ** (-6.8346 * (_T01_K / t) ** 1.261 + 4.6151)
    h = humidity_pct * psat / pa  # molar concentration of water vapour, %
    fr_o = pa * (24.0 + 4.04e4 * h * (0.02 + h) / (0.391 + h))
    fr_n = (
        pa
        * (t / _T0_K) ** -0.5
        * (9.0 + 280.0 * h * np.exp(-4.170 * ((t / _T0_K) ** (-1 / 3) - 1)))
    )
    f2 = f**2
    return (
        8.686
        * f2
        * (
            1.84e-11 / pa * (t / _T0_K) ** 0.5
            + (t / _T0_K) ** -2.5
            * (
                0.01275 * np.exp(-2239.1 / t) / (fr_o + f2 / fr_o)
                + 0.1068 * np.exp(-3352.0 / t) / (fr_n + f2 / fr_n)
            )
        )
    )


def air_absorption_nepers_per_m(freq_hz: np.ndarray | float, **air: float) -> np.ndarray:
    """Amplitude attenuation in nepers per metre: pressure decays as ``exp(-a * d)``."""
    return air_absorption_db_per_m(freq_hz, **air) / _DB_PER_NEPER
