"""Fit the simulator to a lab's own cage: calibration recordings -> a cage file.

``napari-gerbil cage fit DATA.h5 --start CAGE --out FITTED.yaml`` (:func:`fit_cage`):
microphone positions and temperature from direct-path time differences, absorption,
scattering, gains and patterns with the engine rendering calls at the recording's
source positions. See docs/cage_fit.md.
"""

from napari_gerbil.cagefit.data import MIN_POSITIONS, CalibrationData, load_calibration
from napari_gerbil.cagefit.fit import (
    DEFAULT_FIT,
    FIT_PARAMETERS,
    CageFitError,
    CageFitResult,
    fit_cage,
    fitted_cage_text,
    parse_fit,
    write_fitted_cage,
)

__all__ = [
    "DEFAULT_FIT",
    "FIT_PARAMETERS",
    "MIN_POSITIONS",
    "CageFitError",
    "CageFitResult",
    "CalibrationData",
    "fit_cage",
    "fitted_cage_text",
    "load_calibration",
    "parse_fit",
    "write_fitted_cage",
]
