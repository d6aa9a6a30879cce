"""Geometry and acoustics together, with the engine in the loop.

For a trial cage the engine renders the expected energy spectrum of the response at
every source position of the recording (the image sources exactly, the diffuse tail's
expected energy: no random draw, so no preference for settings whose draws stray less)
and :func:`~napari_gerbil.cagefit.features.response_ratios` turns them into
each microphone's 1 kHz band level re the other microphones. The recording gives the
same ratios without knowing the source's waveform
(:func:`~napari_gerbil.cagefit.features.spectral_ratios`): the call cancels, the room
stays (distances, patterns, gains, and the ripple of the floor, ceiling and wall
reflections, whose spacing is the speed of sound over their path difference). With the
direct-path time differences (one residual per position and pair) they form one
residual vector, minimized by scipy's ``least_squares`` (trust region, soft-L1 loss,
finite-difference Jacobian: the engine is a black box, no derivative of it is needed).
Microphone gains have a closed form (each microphone's mean level residual) and are
profiled out at every evaluation.

Uncertainty: a linearized bootstrap over positions (the Jacobian at the optimum; each
resample of positions one Gauss-Newton step from it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares

from napari_gerbil.cagefit.features import response_ratios
from napari_gerbil.cagefit.geometry import TDOA_SCALE_SAMPLES, predict_tdoa_samples
from napari_gerbil.io.cage import Cage
from napari_gerbil.simulate.renderer import ImageSourceRenderer
from napari_gerbil.simulate.room import RenderConfig, Room

#: Acoustic parameters (coefficients in 0 .. 1, fitted in logit space).
ACOUSTIC_PARAMETERS = ("walls", "floor", "ceiling", "scattering", "pattern")
#: Residual scale (dB) of a spectral level ratio.
RATIO_SCALE_DB = 1.0
#: Unit of each parameter kind in the optimizer's coordinates (its finite-difference step
#: is :data:`STEP` of it): mm, degC, logit.
UNITS = {"mic": 1.0, "temperature": 1.0, "coefficient": 0.5}
STEP = 0.3
#: How far (mm) the fit may move a microphone from where the joint fit starts.
MIC_RANGE_MM = 30.0
#: How far (degC) the fit may move the temperature from where it starts.
TEMPERATURE_RANGE_C = 15.0
#: Bootstrap resamples of the positions.
N_BOOTSTRAP = 200


@dataclasses.dataclass
class RoomFit:
    """Result of :func:`fit_room`."""

    cage: Cage  # the fitted cage (gains included when fitted)
    names: list[str]  # fitted parameters: mic{k}.{x,y,z}, temperature, walls, ...
    start: np.ndarray  # start value of each (mm, degC, coefficient)
    fitted: np.ndarray
    sd: np.ndarray  # linearized bootstrap standard deviation
    gains_db: np.ndarray
    tdoa_rms_samples: tuple[float, float]  # start, fitted
    ratio_rms_db: tuple[float, float]
    data_ratios: np.ndarray  # (n_positions, n_bands, n_mics)
    start_ratios: np.ndarray
    fitted_ratios: np.ndarray
    n_evaluations: int
    success: bool
    message: str


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-3)
    return float(np.log(p / (1 - p)))


def _sigmoid(u):
    return 1.0 / (1.0 + np.exp(-np.asarray(u, float)))


class _Model:
    """The trial cage for a parameter vector, and its residuals against the recording."""

    def __init__(
        self,
        cage: Cage,
        fit_mics: bool,
        fit_temperature: bool,
        acoustic: Sequence[str],
        fit_gains: bool,
        positions_mm: np.ndarray,
        tdoa_samples: np.ndarray,
        data_ratios: np.ndarray,
        fs_hz: float,
        render: RenderConfig | None = None,
    ) -> None:
        self.cage, self.fs = cage, float(fs_hz)
        self.positions_mm, self.tdoa, self.data = positions_mm, tdoa_samples, data_ratios
        self.fit_gains = fit_gains
        self.render = render or RenderConfig(caller="omni")
        self.names: list[str] = []
        self.kinds: list[str] = []
        if fit_mics:
            for k in range(cage.n_mics):
                for axis in "xyz":
                    self.names.append(f"mic{k}.{axis}")
                    self.kinds.append("mic")
        if fit_temperature:
            self.names.append("temperature")
            self.kinds.append("temperature")
        for name in acoustic:
            self.names.append(name)
            self.kinds.append("coefficient")
        self.units = np.array([UNITS[k] for k in self.kinds])
        self.start = np.array([self._start_value(n) for n in self.names])
        self.n_evaluations = 0

    def _start_value(self, name: str) -> float:
        cage = self.cage
        if name.startswith("mic"):
            k, axis = int(name[3:].split(".")[0]), "xyz".index(name[-1])
            return float(cage.mics[k, axis])
        band = cage.band_absorption()
        return float(
            {
                "temperature": cage.temperature_c,
                "walls": band["walls"].mean(),
                "floor": band["floor"].mean(),
                "ceiling": band["ceiling"].mean(),
                "scattering": cage.scattering,
                "pattern": cage.mic_pattern_p,
            }[name]
        )

    # optimizer coordinates x <-> natural values
    def x0(self) -> np.ndarray:
        """The start in optimizer coordinates (geometry: offsets from the start)."""
        out = np.zeros(len(self.names))
        for i, kind in enumerate(self.kinds):
            if kind == "coefficient":
                out[i] = _logit(self.start[i]) / self.units[i]
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Optimizer bounds (microphones, temperature; coefficients nearly free).

        Microphones stay within :data:`MIC_RANGE_MM` of the start and inside the cage,
        the temperature within :data:`TEMPERATURE_RANGE_C`.
        """
        lo, hi = np.full(len(self.names), -np.inf), np.full(len(self.names), np.inf)
        dims = self.cage.dims
        inner_lo = np.r_[-dims[:2] / 2.0, 0.0] + 1.0
        inner_hi = np.r_[dims[:2] / 2.0, dims[2]] - 1.0
        for i, name in enumerate(self.names):
            if name.startswith("mic"):
                axis = "xyz".index(name[-1])
                lo[i] = max(-MIC_RANGE_MM, inner_lo[axis] - self.start[i])
                hi[i] = min(MIC_RANGE_MM, inner_hi[axis] - self.start[i])
            elif name == "temperature":
                lo[i] = max(-TEMPERATURE_RANGE_C, -20.0 - self.start[i])
                hi[i] = min(TEMPERATURE_RANGE_C, 50.0 - self.start[i])
            else:
                lo[i], hi[i] = -14.0, 14.0  # logit +-7: coefficients 0.001 .. 0.999
        return lo / self.units, hi / self.units

    def values(self, x: np.ndarray) -> np.ndarray:
        """Natural values (mm, degC, coefficients) of optimizer coordinates."""
        out = np.empty(len(x))
        for i, kind in enumerate(self.kinds):
            if kind == "coefficient":
                out[i] = float(_sigmoid(x[i] * self.units[i]))
            else:
                out[i] = self.start[i] + x[i] * self.units[i]
        return out

    def cage_for(self, values: np.ndarray, gains_db: np.ndarray | None = None) -> Cage:
        """The start cage with these values (and gains)."""
        mics = self.cage.mics.copy()
        changes: dict = {}
        absorption = dict(self.cage.absorption)
        for name, v in zip(self.names, values, strict=True):
            if name.startswith("mic"):
                mics[int(name[3:].split(".")[0]), "xyz".index(name[-1])] = v
            elif name == "temperature":
                changes["temperature_c"] = float(v)
            elif name in ("walls", "floor", "ceiling"):
                absorption[name] = float(v)
            elif name == "scattering":
                changes["scattering"] = float(v)
            elif name == "pattern":
                changes["mic_pattern_p"] = float(v)
        changes["mic_positions_mm"] = mics.tolist()
        changes["absorption"] = absorption
        if gains_db is not None:
            changes["mic_gains_db"] = np.round(gains_db, 3).tolist()
        return self.cage.with_changes(**changes)

    def ratios(self, cage: Cage) -> np.ndarray:
        """(n_positions, n_bands, n_mics) the engine's level ratios in ``cage``."""
        self.n_evaluations += 1
        renderer = ImageSourceRenderer(Room.from_cage(cage), self.fs, self.render)
        n_fft = 1 << int(np.ceil(np.log2(renderer.rir_samples)))
        energy = renderer.expected_energy_spectra(self.positions_mm, n_fft)
        return response_ratios(energy, self.fs, n_fft)

    def parts(self, cage: Cage) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-position TDOA residuals, ratio residuals (dB), gains (dB), model ratios."""
        model = self.ratios(cage.with_changes(mic_gains_db=None))
        diff = self.data - model
        gains = np.zeros(cage.n_mics)
        if self.fit_gains:
            gains = np.nanmean(diff, axis=(0, 1))
            gains = np.nan_to_num(gains - np.nanmean(gains))
            diff = diff - gains[None, None, :]
        pred = predict_tdoa_samples(self.positions_mm, cage.mics, cage.temperature_c, self.fs)
        return self.tdoa - pred, diff, gains, model

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """The scaled residual vector (NaN entries, i.e. unmeasured, count 0)."""
        tdoa, diff, _, _ = self.parts(self.cage_for(self.values(x)))
        r = np.r_[tdoa.reshape(-1) / TDOA_SCALE_SAMPLES, diff.reshape(-1) / RATIO_SCALE_DB]
        return np.nan_to_num(r)

    def position_of_residual(self) -> np.ndarray:
        """Position index of each entry of :meth:`residuals`."""
        n_pos = len(self.positions_mm)
        t = np.repeat(np.arange(n_pos), self.tdoa.shape[1])
        s = np.repeat(np.arange(n_pos), self.data.shape[1] * self.data.shape[2])
        return np.r_[t, s]


def fit_room(
    cage: Cage,
    initial: Cage,
    positions_mm: np.ndarray,
    tdoa_samples: np.ndarray,
    data_ratios: np.ndarray,
    fs_hz: float,
    fit_mics: bool = True,
    fit_temperature: bool = True,
    acoustic: Sequence[str] = ("walls", "floor", "ceiling", "scattering"),
    fit_gains: bool = True,
    max_evaluations: int = 600,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> RoomFit:
    """Fit geometry and acoustics to per-position time differences and level ratios.

    Parameters
    ----------
    cage
        The start cage (the lab's; its values and residuals are reported as "start").
    initial
        Where the optimizer begins: ``cage`` with the geometry of
        :func:`~napari_gerbil.cagefit.geometry.fit_geometry`.
    positions_mm
        (n_positions, 3) source positions.
    tdoa_samples
        (n_positions, n_pairs) measured direct-path time differences (NaN: none).
    data_ratios
        (n_positions, n_bands, n_mics) measured level ratios (NaN: none).
    acoustic
        Which of :data:`ACOUSTIC_PARAMETERS` to fit.
    max_evaluations
        Engine evaluations the optimizer may spend (its Jacobians included).
    """
    model, reference = (
        _Model(c, fit_mics, fit_temperature, acoustic, fit_gains, positions_mm,
               tdoa_samples, data_ratios, fs_hz)
        for c in (initial, cage)
    )  # fmt: skip
    tdoa0, diff0, _, ratios0 = reference.parts(cage)

    def fun(x: np.ndarray) -> np.ndarray:
        r = model.residuals(x)
        if progress is not None:
            progress(model.n_evaluations)
        return r

    x0 = model.x0()
    if len(x0):
        n_par = len(x0)
        result = least_squares(
            fun,
            x0,
            method="trf",
            loss="soft_l1",
            f_scale=1.0,
            diff_step=STEP,
            max_nfev=max(1, max_evaluations // (n_par + 1)),
            x_scale=1.0,
            ftol=1e-4,
            xtol=1e-4,
            bounds=model.bounds(),
        )
        x, success, message = result.x, bool(result.status > 0), str(result.message)
        jac = result.jac
    else:
        x, success, message, jac = x0, True, "nothing to fit", None
    values = model.values(x)
    fitted_geometry = model.cage_for(values)
    tdoa1, diff1, gains, ratios1 = model.parts(fitted_geometry)
    fitted_cage = model.cage_for(values, gains if fit_gains else None)
    sd = np.zeros(len(x))
    if jac is not None:
        sd = _linearized_bootstrap(model, x, model.residuals(x), np.asarray(jac), seed)
    return RoomFit(
        cage=fitted_cage,
        names=model.names,
        start=reference.start,
        fitted=values,
        sd=sd,
        gains_db=gains,
        tdoa_rms_samples=(_rms(tdoa0), _rms(tdoa1)),
        ratio_rms_db=(_rms(diff0), _rms(diff1)),
        data_ratios=data_ratios,
        start_ratios=ratios0,
        fitted_ratios=ratios1,
        n_evaluations=model.n_evaluations,
        success=success,
        message=message,
    )


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean(np.asarray(x) ** 2)))


def _linearized_bootstrap(
    model: _Model, x: np.ndarray, r: np.ndarray, jac: np.ndarray, seed: int
) -> np.ndarray:
    """Standard deviation of each value over position resamples, the fit linearized."""
    where = model.position_of_residual()
    n_pos = len(model.positions_mm)
    rows_of = [np.flatnonzero(where == p) for p in range(n_pos)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(N_BOOTSTRAP):
        pick = np.concatenate([rows_of[p] for p in rng.integers(n_pos, size=n_pos)])
        delta, *_ = np.linalg.lstsq(jac[pick], -r[pick], rcond=None)
        draws.append(model.values(x + delta))
    return np.std(draws, axis=0)
