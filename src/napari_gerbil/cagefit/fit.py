"""``fit_cage``: a lab's calibration recording -> a cage file of that room.

1. **Geometry first guess** (:mod:`~napari_gerbil.cagefit.geometry`): microphone
   positions and the temperature from direct-path time differences, measured in search
   windows that shrink around the current geometry (8, 4, 2, 2 samples at 125 kHz).
2. **Everything together** (:mod:`~napari_gerbil.cagefit.room_fit`): microphones,
   temperature, wall, floor and ceiling absorption, scattering, pattern and gains, with
   the engine rendering the response at every source position; the time differences and
   the spectral level ratios between microphones form one residual.
3. **An independent check** (:mod:`~napari_gerbil.cagefit.decay_check`): the energy decay
   after the calls' offsets, which the fit never saw, rendered in the start and fitted
   cages.

A fit that does not converge raises :class:`CageFitError` and writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.cagefit.data import CalibrationData, load_calibration
from napari_gerbil.cagefit.decay_check import DecayCheck, decay_check
from napari_gerbil.cagefit.features import measure_tdoas_s, noise_power, spectral_ratios
from napari_gerbil.cagefit.geometry import (
    GeometryFit,
    fit_geometry,
    position_medians,
    predict_tdoa_samples,
)
from napari_gerbil.cagefit.room_fit import ACOUSTIC_PARAMETERS, RoomFit, _Model, fit_room
from napari_gerbil.errors import GerbilError, InvalidInputError
from napari_gerbil.io.cage import Cage, load_cage
from napari_gerbil.progress import Progress, ProgressCallback

#: What ``--fit`` may name.
FIT_PARAMETERS = ("absorption", "scattering", "mics", "temperature", "gains", "pattern")
#: What is fitted when ``--fit`` is not given.
DEFAULT_FIT = ("absorption", "scattering", "mics", "temperature", "gains")
#: Search half-windows (samples at 125 kHz) of the time-difference passes.
TDOA_WINDOWS_SAMPLES = (8.0, 4.0, 2.0, 2.0)
#: Largest RMS time-difference residual (samples) of a converged fit.
MAX_TDOA_RMS_SAMPLES = 1.0
#: Farthest (mm) a fitted microphone may lie from the start cage's. A fit that needs more
#: has explained the time differences with a rig the lab did not build (positions in
#: another frame or swapped between calls, channels in another order): not converged.
MAX_MIC_MOVE_MM = 30.0
#: Above this fitted scattering the fit's absorption was measured to drift (a caveat).
SCATTERING_CAVEAT = 0.05
#: Grid step (degC) of the temperature profile that starts the joint fit.
TEMPERATURE_STEP_C = 2.0
#: Share of white noise's power in the band :func:`noise_power` measures.
_NOISE_BAND_SHARE = 56.0 / 62.5


class CageFitError(GerbilError):
    """The fit did not converge (nothing was written)."""


@dataclasses.dataclass
class CageFitResult:
    """A fitted cage with what it was fitted to and how well it fits."""

    cage: Cage
    start: Cage
    data_path: Path
    fitted: tuple[str, ...]
    geometry: GeometryFit
    room: RoomFit
    decay: DecayCheck | None
    n_calls: int
    n_positions: int
    positions_mm: np.ndarray
    wall_s: float

    def parameters(self) -> list[dict[str, Any]]:
        """One row per fitted quantity: name, unit, start, fitted, standard deviation."""
        rows: list[dict[str, Any]] = []
        room = self.room
        for name, a, b, sd in zip(room.names, room.start, room.fitted, room.sd, strict=True):
            unit = "mm" if name.startswith("mic") else "degC" if name == "temperature" else ""
            rows.append(_row(name, unit, a, b, sd))
        if "gains" in self.fitted:
            for k, g in enumerate(room.gains_db):
                rows.append(_row(f"gain{k}", "dB", 0.0, float(g), float("nan")))
        return rows

    def residuals(self) -> dict[str, dict[str, float]]:
        """RMS residual of each feature, start cage vs fitted cage."""
        room = self.room
        out = {
            "time differences (samples)": dict(
                zip(("start", "fitted"), room.tdoa_rms_samples, strict=True)
            ),
            "level ratios (dB)": dict(zip(("start", "fitted"), room.ratio_rms_db, strict=True)),
        }
        if self.decay is not None:
            out["decay after offset (dB, not fitted)"] = {
                "start": self.decay.rms_db("start"),
                "fitted": self.decay.rms_db("fitted"),
            }
        return out

    def caveat(self) -> str | None:
        """A warning where the fit is measured to be less sure (docs/cage_fit.md)."""
        if "scattering" in self.fitted and self.cage.scattering > SCATTERING_CAVEAT:
            return (
                f"scattering {self.cage.scattering:.2f}: with more than "
                f"{SCATTERING_CAVEAT:g} scattering, absorption fitted on simulated rooms was "
                "off by up to 0.21 (the ceiling) and a microphone by up to 6 mm; see "
                "docs/cage_fit.md"
            )
        return None

    def summary(self) -> dict[str, Any]:
        """Everything a report needs, as plain types."""
        from napari_gerbil import __version__

        return {
            "data": str(self.data_path),
            "start_cage": self.start.name,
            "fitted": list(self.fitted),
            "n_calls": self.n_calls,
            "n_positions": self.n_positions,
            "wall_s": round(self.wall_s, 1),
            "engine_evaluations": self.room.n_evaluations,
            "optimizer": self.room.message,
            "caveat": self.caveat(),
            "parameters": self.parameters(),
            "residuals": self.residuals(),
            "cage": self.cage.to_dict(),
            "napari_gerbil": __version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }


def _row(name: str, unit: str, start: float, fitted: float, sd: float) -> dict[str, Any]:
    return {
        "name": name,
        "unit": unit,
        "start": float(start),
        "fitted": float(fitted),
        "sd": float(sd),
    }


def parse_fit(names: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"absorption,mics"`` -> the parameter groups to fit (checked)."""
    if names is None:
        return DEFAULT_FIT
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
    items = [n for n in items if n]
    bad = [n for n in items if n not in FIT_PARAMETERS]
    if bad or not items:
        raise InvalidInputError(
            None,
            "--fit",
            f"a comma-separated list of {list(FIT_PARAMETERS)}",
            repr(",".join(items)) if items else "nothing",
        )
    return tuple(dict.fromkeys(items))


def fit_cage(
    data: str | Path,
    start: str | Path | Cage = "paper",
    fit: str | Sequence[str] | None = None,
    calls: int | None = None,
    max_evaluations: int = 600,
    check_calls: int = 300,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> CageFitResult:
    """Fit a cage to a calibration recording (see the module docstring).

    Parameters
    ----------
    data
        A VCL dataset with the source position of every call.
    start
        The cage the lab wrote down (a built-in name or a cage file).
    fit
        Parameter groups of :data:`FIT_PARAMETERS` (default :data:`DEFAULT_FIT`).
    calls
        Use at most this many calls (spread over the positions).
    max_evaluations
        Engine evaluations the joint fit may spend; exhausting them is a failed fit.
    check_calls
        Calls rendered for the decay check (0: no check).
    seed
        Seed of the call selection, the rendered stimuli and the bootstraps.

    Raises
    ------
    InvalidInputError
        The data cannot be fitted (no positions or geometry, too few positions, a
        channel count unlike the start cage's microphones).
    CageFitError
        The fit did not converge.
    """
    t0 = time.perf_counter()
    names = parse_fit(fit)
    start_cage = load_cage(start)
    report = progress or (lambda p: None)
    report(Progress(0.0, "reading the calibration recording"))
    cal = load_calibration(data, start_cage, max_calls=calls, seed=seed)
    report(Progress(0.05, f"{cal.n_calls} calls at {cal.n_positions} positions"))
    geometry = _fit_geometry(cal, start_cage, names, seed, report)
    if not geometry.success or not geometry.rms_fitted_samples <= 2 * MAX_TDOA_RMS_SAMPLES:
        raise CageFitError(_diverged(cal.path, "geometry", geometry.rms_fitted_samples))
    _check_moves(cal.path, "geometry", start_cage, geometry.mics_mm)
    report(Progress(0.3, "level ratios of the recorded calls"))
    noise_var = noise_power(cal.audio, cal.sample_rate_hz) / _NOISE_BAND_SHARE
    ratios = spectral_ratios(cal.audio, cal.sample_rate_hz, noise_var)
    data_ratios = position_medians(ratios, cal.call_position, cal.n_positions)
    initial = start_cage.with_changes(
        mic_positions_mm=geometry.mics_mm.tolist(), temperature_c=float(geometry.temperature_c)
    )
    if "temperature" in names:
        report(Progress(0.32, "temperature: profile of the level ratios"))
        initial = _profile_temperature(cal, start_cage, geometry, data_ratios, names)
    acoustic = [n for n in ACOUSTIC_PARAMETERS if _wanted(n, names)]

    def step(k: int) -> None:
        report(
            Progress(
                0.35 + 0.5 * min(k / max_evaluations, 1.0),
                f"engine evaluation {k} (budget {max_evaluations})",
            )
        )

    room = fit_room(
        start_cage,
        initial,
        cal.positions_mm,
        geometry.measured_samples,
        data_ratios,
        cal.sample_rate_hz,
        fit_mics="mics" in names,
        fit_temperature="temperature" in names,
        acoustic=acoustic,
        fit_gains="gains" in names,
        max_evaluations=max_evaluations,
        seed=seed,
        progress=step,
    )
    tdoa_rms = room.tdoa_rms_samples[1]
    if not room.success or not tdoa_rms <= MAX_TDOA_RMS_SAMPLES:
        raise CageFitError(_diverged(cal.path, "joint", tdoa_rms, room.message, max_evaluations))
    _check_moves(cal.path, "joint", start_cage, room.cage.mics)
    if not room.ratio_rms_db[1] <= room.ratio_rms_db[0] * 1.001:
        raise CageFitError(
            f"{cal.path}: the fit did not converge: the fitted cage matches the recorded "
            f"level ratios worse than the start cage ({room.ratio_rms_db[1]:.2f} vs "
            f"{room.ratio_rms_db[0]:.2f} dB RMS). Nothing was written."
        )
    decay = None
    if check_calls > 0:
        report(Progress(0.9, "decay check: rendering calls in the start and fitted cages"))
        decay = decay_check(
            start_cage,
            room.cage,
            cal.positions_mm[cal.call_position],
            cal.audio,
            cal.classes,
            cal.sample_rate_hz,
            check_calls,
            seed,
        )
    report(Progress(1.0, "done"))
    return CageFitResult(
        room.cage,
        start_cage,
        cal.path,
        names,
        geometry,
        room,
        decay,
        cal.n_calls,
        cal.n_positions,
        cal.positions_mm,
        time.perf_counter() - t0,
    )


def _profile_temperature(
    cal: CalibrationData, start: Cage, geometry: GeometryFit, data_ratios: np.ndarray, names
) -> Cage:
    """The start of the joint fit: the temperature whose geometry best explains the ratios.

    Time differences hardly tell a warmer room from microphones further away (both
    stretch every path alike), so the first guess of the temperature is poor. Level
    ratios tell them apart (the reflections' ripple spacing is the speed of sound over a
    path difference): at each temperature of a grid the microphones are refitted to the
    time differences, the engine's ratios compared, and the best grid point refined by
    a parabola.
    """
    fs = cal.sample_rate_hz
    grid = np.arange(
        max(start.temperature_c - 10.0, -20.0),
        min(start.temperature_c + 14.0, 50.0) + 1e-9,
        TEMPERATURE_STEP_C,
    )

    def candidate(t_c: float) -> tuple[Cage, float]:
        mics = start.mics
        if "mics" in names:
            mics = fit_geometry(
                geometry.measured_samples,
                cal.positions_mm,
                start.mics,
                float(t_c),
                fs,
                fit_temperature=False,
                n_bootstrap=0,
            ).mics_mm
        cage = start.with_changes(mic_positions_mm=mics.tolist(), temperature_c=float(t_c))
        model = _Model(
            cage,
            False,
            False,
            [],
            "gains" in names,
            cal.positions_mm,
            geometry.measured_samples,
            data_ratios,
            fs,
        )
        _, diff, _, _ = model.parts(cage)
        return cage, float(np.nanmean(diff**2))

    costs = np.array([candidate(t)[1] for t in grid])
    k = int(np.argmin(costs))
    best = float(grid[k])
    if 0 < k < len(grid) - 1:
        a, b, c = costs[k - 1 : k + 2]
        denom = a - 2 * b + c
        if denom > 0:
            best += 0.5 * (a - c) / denom * TEMPERATURE_STEP_C
    return candidate(best)[0]


def _check_moves(path: Path, stage: str, start: Cage, mics_mm: np.ndarray) -> None:
    """Raise :class:`CageFitError` where a microphone moved beyond :data:`MAX_MIC_MOVE_MM`."""
    moved = np.linalg.norm(np.asarray(mics_mm) - start.mics, axis=1)
    k = int(np.argmax(moved))
    if not moved[k] <= MAX_MIC_MOVE_MM:
        raise CageFitError(
            f"{path}: the {stage} fit did not converge to the start cage's rig: microphone "
            f"{k} would move {moved[k]:.0f} mm from its position in {start.name} (at most "
            f"{MAX_MIC_MOVE_MM:g} mm expected). Are /locations the sources' positions in mm, "
            "arena frame (origin at the floor centre), and is channel k microphone k of the "
            "start cage? Nothing was written."
        )


def _diverged(
    path: Path, stage: str, rms: float, message: str = "", budget: int | None = None
) -> str:
    budget_text = f" within {budget} engine evaluations" if budget else ""
    return (
        f"{path}: the {stage} fit did not converge{budget_text} (time-difference residual "
        f"{rms:.2f} samples RMS, at most {MAX_TDOA_RMS_SAMPLES:g} expected"
        f"{'; ' + message if message else ''}). Are /locations the sources' positions in mm, "
        "arena frame (origin at the floor centre), and is channel k microphone k of the "
        "start cage? Nothing was written."
    )


def _wanted(parameter: str, names: Sequence[str]) -> bool:
    if parameter in ("walls", "floor", "ceiling"):
        return "absorption" in names
    return parameter in names


def _fit_geometry(cal: CalibrationData, start: Cage, names, seed: int, report) -> GeometryFit:
    fs = cal.sample_rate_hz
    mics, temp = start.mics, start.temperature_c
    geometry = None
    for k, half in enumerate(TDOA_WINDOWS_SAMPLES):
        report(
            Progress(
                0.05 + 0.25 * k / len(TDOA_WINDOWS_SAMPLES),
                f"geometry: time differences, pass {k + 1}",
            )
        )
        expected = predict_tdoa_samples(cal.positions_mm, mics, temp, fs)[cal.call_position]
        tdoa_s, _ = measure_tdoas_s(cal.audio, fs, expected / fs, half / 125000.0)
        medians = position_medians(tdoa_s * fs, cal.call_position, cal.n_positions)
        geometry = fit_geometry(
            medians,
            cal.positions_mm,
            start.mics,
            start.temperature_c,
            fs,
            fit_mics="mics" in names,
            fit_temperature="temperature" in names,
            seed=seed,
            n_bootstrap=0,
        )
        mics, temp = geometry.mics_mm, geometry.temperature_c
    assert geometry is not None
    geometry.start_samples = predict_tdoa_samples(
        cal.positions_mm, start.mics, start.temperature_c, fs
    )
    return geometry


def fitted_cage_text(result: CageFitResult) -> str:
    """The fitted cage as YAML, with the fit's provenance and residuals in comments."""
    import yaml

    s = result.summary()
    lines = [
        "# napari-gerbil cage fit",
        f"# data: {s['data']} ({s['n_calls']} calls at {s['n_positions']} positions)",
        f"# start cage: {s['start_cage']}; fitted: {', '.join(s['fitted'])}",
        f"# napari-gerbil {s['napari_gerbil']}, {s['date']}, {s['wall_s']} s",
        "# parameter: start -> fitted +- sd (bootstrap over positions)",
    ]
    if s["caveat"]:
        lines.insert(4, f"# note: {s['caveat']}")
    for row in s["parameters"]:
        sd = "" if not np.isfinite(row["sd"]) else f" +- {row['sd']:.3g}"
        lines.append(
            f"#   {row['name']}: {row['start']:.4g} -> {row['fitted']:.4g}{sd} {row['unit']}"
        )
    lines.append("# residual (RMS): start -> fitted")
    for name, v in s["residuals"].items():
        lines.append(f"#   {name}: {v['start']:.3f} -> {v['fitted']:.3f}")
    body = yaml.safe_dump(result.cage.to_dict(), sort_keys=False, default_flow_style=None)
    return "\n".join(lines) + "\n" + body


def write_fitted_cage(result: CageFitResult, path: str | Path) -> Path:
    """Write the fitted cage file atomically (the caller checks ``--overwrite``)."""
    from napari_gerbil.io.atomic import atomic_write_text

    path = Path(path)
    atomic_write_text(path, fitted_cage_text(result))
    return path
