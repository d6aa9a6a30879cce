r"""Render a speaker calibration dataset with pyroomacoustics, an independent simulator.

Test data for ``napari-gerbil cage fit``: calls played from a loudspeaker at known
positions in a cage whose true acoustics differ from the nominal (start) cage the way
a real lab's do. The microphones sit a few mm from where the start cage says, the air
is warmer, the surfaces absorb differently and the microphones are sub-cardioid. The
dataset stores the *nominal* microphone positions (what a lab wrote down); the true
cage goes to a separate cage file (``--truth``) and into the dataset's provenance.

Rendering is pyroomacoustics' own (``ShoeBox``, image sources, or its hybrid ray
tracer when ``--scattering`` > 0), not this package's renderer, so a fit cannot pass
just by sharing the simulator's approximations. Per source position: one impulse
response to every microphone, a 1 kHz zero-phase high-pass (the package's
microphones), then each call is its stimulus convolved with that response plus white
Gaussian noise. Same arguments, same files.

Example::

    .venv/bin/python scripts/make_pra_speaker_set.py \
        --out /tmp/pra_check/speaker.h5 --truth /tmp/pra_check/truth.yaml

The defaults give 50 positions x 10 calls in the ``paper`` cage in about 10 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, fftconvolve, sosfiltfilt

from napari_gerbil.io.cage import Cage, load_cage, save_cage
from napari_gerbil.physics import speed_of_sound_m_s
from napari_gerbil.simulate.air import air_absorption_nepers_per_m
from napari_gerbil.simulate.scenarios import speaker_grid_mm
from napari_gerbil.simulate.stimuli import CALL_CLASSES, StimulusGenerator

#: Sampling rate of the recordings (Hz).
FS_HZ = 125000.0
#: Octave-band centres (Hz) at which the air absorption is handed to pyroomacoustics.
AIR_CENTRES_HZ = tuple(125.0 * 2.0**k for k in range(10))  # 125 Hz .. 64 kHz
#: Corner of the microphones' zero-phase 4th-order Butterworth high-pass (Hz).
HIGHPASS_HZ = 1000.0
#: Reverberation kept after the end of each stimulus (s).
TAIL_S = 0.01
#: Speaker grid of the package's own speaker plan (mm).
GRID_SPACING_MM, GRID_MARGIN_MM = 20.0, 50.0
#: Height range of the speaker above the floor (mm).
HEIGHT_RANGE_MM = (30.0, 50.0)
#: pyroomacoustics' ray tracer sized for a cage (its defaults suit rooms: a 0.5 m
#: receiver and 4 ms bins would give a cage about one ray): 1 ms bins, 50 ms of rays.
RAY_TRACING = {
    "n_rays": 20000,
    "receiver_radius": 0.05,
    "energy_thres": 1e-9,
    "time_thres": 0.05,
    "hist_bin_size": 0.001,
}


def pra_air_absorption(temperature_c: float, humidity_pct: float) -> tuple[list, list]:
    """ISO 9613-1 air absorption in pyroomacoustics' units, at :data:`AIR_CENTRES_HZ`.

    pyroomacoustics multiplies the *amplitude* of a path of length ``d`` metres by
    ``exp(-0.5 * m * d)`` (``simulation/ism.py: apply_air_aborption`` and the ray
    tracer's ``simulation/rt.py``) and uses ``4 m V`` in Sabine's formula: its ``m`` is
    the *energy* (intensity) attenuation coefficient in nepers per metre. ISO 9613-1
    gives the pressure attenuation ``a`` (``air_absorption_nepers_per_m``: pressure
    decays as ``exp(-a d)``), so ``m = 2 a`` (= dB per metre / 4.343).

    pyroomacoustics interpolates the values onto its own octave bands, centred 125 Hz
    .. 32 kHz at 125 kHz; its last band reaches the Nyquist frequency, so everything
    above about 45 kHz is attenuated as at 32 kHz (ISO 9613-1: 1.0 dB/m there, 2.3 dB/m
    at 60 kHz and 25 degC). That is the simulator's physics, part of what it differs in.

    Parameters
    ----------
    temperature_c, humidity_pct
        The true air state.

    Returns
    -------
    coefficients, centre_freqs
        Arguments of ``room.set_air_absorption`` (lists of floats).
    """
    freqs = np.asarray(AIR_CENTRES_HZ)
    a = air_absorption_nepers_per_m(freqs, temperature_c=temperature_c, humidity_pct=humidity_pct)
    return (2.0 * a).tolist(), freqs.tolist()


def shifted_mics(mics_mm: np.ndarray, shift_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Each microphone moved ``shift_mm`` along its own random 3-D direction.

    Parameters
    ----------
    mics_mm
        (n_mics, 3) nominal positions.
    shift_mm
        Distance each microphone moves.
    rng
        Source of the directions (uniform on the sphere).

    Returns
    -------
    ndarray
        (n_mics, 3) true positions.
    """
    direction = rng.normal(size=mics_mm.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return mics_mm + shift_mm * direction


def plan_positions(cage: Cage, n_positions: int, rng: np.random.Generator) -> np.ndarray:
    """Speaker positions like the package's plan: a random subset of its floor grid.

    Parameters
    ----------
    cage
        The cage (its floor sets the grid).
    n_positions
        Grid points drawn without replacement (kept in grid order).
    rng
        Source of the draw and the heights.

    Returns
    -------
    ndarray
        (n_positions, 3) positions in mm, arena frame, heights uniform in
        :data:`HEIGHT_RANGE_MM`.
    """
    grid = speaker_grid_mm(cage.arena(), GRID_SPACING_MM, GRID_MARGIN_MM)
    if not 1 <= n_positions <= len(grid):
        raise ValueError(f"--positions must be 1 .. {len(grid)} (the grid), not {n_positions}")
    grid = grid[np.sort(rng.choice(len(grid), n_positions, replace=False))]
    return np.c_[grid, rng.uniform(*HEIGHT_RANGE_MM, n_positions)]


def build_room(truth: Cage, source_mm: np.ndarray, max_order: int, air: tuple[list, list]):
    """A pyroomacoustics ShoeBox of the true cage with one source and its microphones.

    Parameters
    ----------
    truth
        The true cage: dims, microphones (positions, orientations, pattern),
        frequency-flat absorption, scattering, temperature.
    source_mm
        (3,) speaker position, arena frame (mm from the floor centre).
    max_order
        Highest image-source order.
    air
        ``(coefficients, centre_freqs)`` of :func:`pra_air_absorption`.

    Returns
    -------
    pyroomacoustics.ShoeBox
        Ready for ``compute_rir``.
    """
    import pyroomacoustics as pra
    from pyroomacoustics.directivities import CardioidFamily

    half = np.r_[truth.dims[:2] / 2.0, 0.0]  # arena frame -> corner frame
    surface = {"west": "walls", "east": "walls", "south": "walls", "north": "walls"}
    surface.update(floor="floor", ceiling="ceiling")
    materials = {
        name: pra.Material(float(truth.absorption[group]), truth.scattering)
        for name, group in surface.items()
    }
    room = pra.ShoeBox(
        truth.dims / 1000.0,
        fs=int(FS_HZ),
        materials=materials,
        max_order=max_order,
        air_absorption=False,
        ray_tracing=truth.scattering > 0,
        use_rand_ism=False,
    )
    if truth.scattering > 0:
        room.set_ray_tracing(**RAY_TRACING)
    room.set_sound_speed(speed_of_sound_m_s(truth.temperature_c))
    room.set_air_absorption(*air)
    room.add_source((np.asarray(source_mm, float) + half) / 1000.0)
    directivity = None  # omni: also what the ray tracer needs
    if truth.mic_pattern_p < 1.0:
        directivity = [CardioidFamily(d, truth.mic_pattern_p) for d in truth.orientations()]
    room.add_microphone_array(((truth.mics + half) / 1000.0).T, directivity=directivity)
    return room


def position_rir(room) -> np.ndarray:
    """The room's impulse responses, high-passed, with sample 0 = emission time.

    Parameters
    ----------
    room
        A ShoeBox of :func:`build_room`.

    Returns
    -------
    ndarray
        (n_samples, n_mics) float64.
    """
    import pyroomacoustics as pra

    room.compute_rir()
    rirs = [np.asarray(room.rir[m][0], float) for m in range(len(room.rir))]
    h = np.zeros((max(len(r) for r in rirs), len(rirs)))
    for m, r in enumerate(rirs):
        h[: len(r), m] = r
    sos = butter(4, HIGHPASS_HZ, "highpass", fs=FS_HZ, output="sos")
    h = sosfiltfilt(sos, h, axis=0)  # before the cut: no edge at the direct sound
    return h[pra.constants.get("frac_delay_length") // 2 :]  # pra's fractional-delay offset


def render_call(
    waveform: np.ndarray, rir: np.ndarray, noise_rms: float, rng: np.random.Generator
) -> np.ndarray:
    """One recorded call: the stimulus through the responses, its tail, and noise.

    Parameters
    ----------
    waveform
        (n,) stimulus, emitted at sample 0.
    rir
        (n_rir, n_mics) responses of :func:`position_rir`.
    noise_rms
        RMS of the white Gaussian noise added to every channel.
    rng
        The call's own generator (after drawing its stimulus).

    Returns
    -------
    ndarray
        (n + tail, n_mics) float32.
    """
    n = len(waveform) + int(round(TAIL_S * FS_HZ))
    y = fftconvolve(np.asarray(waveform, float)[:, None], rir[:n], axes=0)[:n]
    if len(y) < n:
        y = np.pad(y, ((0, n - len(y)), (0, 0)))
    y = y + rng.normal(0.0, noise_rms, y.shape)
    return y.astype(np.float32)


def true_cage(start: Cage, args: dict[str, Any], rng: np.random.Generator) -> Cage:
    """The true cage: the start cage with moved microphones and other acoustics.

    Parameters
    ----------
    start
        The nominal cage.
    args
        Keyword arguments of :func:`make_pra_speaker_set`.
    rng
        Source of the microphone shifts.

    Returns
    -------
    Cage
        Validated (a microphone moved out of the cage is refused).
    """
    return start.with_changes(
        mic_positions_mm=shifted_mics(start.mics, args["mic_shift_mm"], rng).tolist(),
        mic_pattern_p=args["pattern_p"],
        absorption={g: args[g] for g in ("walls", "floor", "ceiling")},
        scattering=args["scattering"],
        temperature_c=args["temperature_c"],
        humidity_pct=args["humidity_pct"],
    )


def _check_outputs(out: Path, truth: Path, overwrite: bool) -> None:
    if out.resolve() == truth.resolve():
        raise ValueError(f"--out and --truth are the same file: {out}")
    for path in (out, truth):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def _render_positions(truth: Cage, sources_mm: np.ndarray, max_order: int, seed: int) -> list:
    """One (n_samples, n_mics) response per source position."""
    import pyroomacoustics as pra

    air = pra_air_absorption(truth.temperature_c, truth.humidity_pct)
    rirs = []
    for k, source in enumerate(sources_mm):
        if truth.scattering > 0:  # the ray tracer draws rays and its tail at random
            pra.random.seed(seed + k)
        rirs.append(position_rir(build_room(truth, source, max_order, air)))
    return rirs


def make_pra_speaker_set(
    out: str | Path,
    truth: str | Path,
    start: str | Path | Cage = "paper",
    positions: int = 50,
    calls_per_position: int = 10,
    walls: float = 0.35,
    floor: float = 0.5,
    ceiling: float = 0.9,
    scattering: float = 0.0,
    mic_shift_mm: float = 8.0,
    temperature_c: float = 25.0,
    humidity_pct: float = 50.0,
    pattern_p: float = 0.75,
    max_order: int = 25,
    snr_db: float = 35.0,
    seed: int = 0,
    positions_seed: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Render a speaker calibration dataset with pyroomacoustics and write it as VCL.

    Parameters
    ----------
    out
        VCL dataset (``.h5``) to write (atomically).
    truth
        Cage file (YAML) to write the true cage to.
    start
        The nominal cage (built-in name or cage file); its microphone positions are
        the ones the dataset records.
    positions, calls_per_position
        Speaker positions (a random subset of the package's speaker grid) and calls
        played at each (random call classes).
    walls, floor, ceiling
        True frequency-flat energy absorption of the surfaces.
    scattering
        True scattering; > 0 uses pyroomacoustics' hybrid ray tracer (image sources to
        ``max_order``, rays after; :data:`RAY_TRACING`), which needs omnidirectional
        microphones (``pattern_p`` 1); pyroomacoustics' own hybrid examples use a low
        ``max_order`` (e.g. 3).
    mic_shift_mm
        Distance each true microphone lies from its nominal position.
    temperature_c, humidity_pct
        True air state (speed of sound, ISO 9613-1 air absorption).
    pattern_p
        True cardioid-family pattern of the microphones (aimed as the start cage's).
    max_order
        Highest image-source order.
    snr_db
        Signal-to-noise ratio of a unit-RMS call arriving with the median response.
    seed
        Seed of every random draw.
    positions_seed
        When given, the positions, calls and noise come from this seed instead (the
        same true cage as ``seed``'s: a held-out set of that room).
    overwrite
        Replace existing ``out`` / ``truth`` (refused otherwise).

    Returns
    -------
    dict
        ``out``, ``truth``, ``n_calls`` and ``seconds`` (wall time).
    """
    args = dict(locals())  # first: only the parameters
    import pyroomacoustics as pra

    from napari_gerbil.io.vcl import VCLWriter

    t0 = time.perf_counter()
    out, truth = Path(out), Path(truth)
    _check_outputs(out, truth, overwrite)
    if positions < 1 or calls_per_position < 1:
        raise ValueError("--positions and --calls-per-position must be >= 1")
    if scattering > 0 and pattern_p < 1:
        raise ValueError(
            "pyroomacoustics' ray tracer (--scattering > 0) has no microphone directivity; "
            "pass --pattern-p 1 with it"
        )
    if max_order < 1:  # pyroomacoustics' octave-band analysis fails on a ~1 ms response
        raise ValueError(f"--max-order must be >= 1, not {max_order}")
    start_cage = load_cage(start)
    args["start"] = start_cage.name
    rng = np.random.default_rng(seed)
    true = true_cage(start_cage, args, rng)
    if positions_seed is not None:
        rng = np.random.default_rng([seed, positions_seed])
    sources = plan_positions(start_cage, positions, rng)
    n_calls = positions * calls_per_position
    call_pos = np.repeat(np.arange(positions), calls_per_position)
    classes = [CALL_CLASSES[i] for i in rng.integers(len(CALL_CLASSES), size=n_calls)]
    seeds = rng.integers(2**62, size=n_calls)
    rirs = _render_positions(true, sources, max_order, seed)
    norms = np.concatenate([np.linalg.norm(h, axis=0) for h in rirs])
    noise_rms = float(np.median(norms)) * 10.0 ** (-snr_db / 20.0)
    air_coeffs, air_freqs = pra_air_absorption(temperature_c, humidity_pct)
    provenance = {
        "simulator": f"pyroomacoustics {pra.__version__}",
        "generator": "scripts/make_pra_speaker_set.py",
        "truth_file": str(truth),
        "arguments": {k: v for k, v in args.items() if k not in ("out", "truth", "overwrite")},
        "start_cage": start_cage.name,
        "nominal_mic_positions_mm": start_cage.mic_positions_mm,
        "true_mic_positions_mm": true.mic_positions_mm,
        "true_cage": true.to_dict(),
        "speed_of_sound_m_s": speed_of_sound_m_s(temperature_c),
        "air_absorption_pra_energy_nepers_per_m": air_coeffs,
        "air_absorption_centre_freqs_hz": air_freqs,
        "highpass_hz": HIGHPASS_HZ,
        "tail_s": TAIL_S,
        "noise_rms": noise_rms,
        "sources_mm": sources.tolist(),
    }
    generator = StimulusGenerator(FS_HZ)
    with VCLWriter(
        out,
        start_cage.n_mics,
        node_names=["speaker"],
        sample_rate_hz=FS_HZ,
        arena_dims_mm=start_cage.dims,
        mic_positions_mm=start_cage.mics,
        scenario="speaker",
        provenance=provenance,
    ) as writer:
        for k in range(n_calls):
            call_rng = np.random.default_rng(int(seeds[k]))
            wave = generator.sample(classes[k], call_rng, 1.0).waveform
            audio = render_call(wave, rirs[call_pos[k]], noise_rms, call_rng)
            writer.append(audio, sources[call_pos[k]][None, :], classes[k])
    save_cage(true, truth)
    return {"out": out, "truth": truth, "n_calls": n_calls, "seconds": time.perf_counter() - t0}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="VCL dataset to write (.h5)")
    p.add_argument("--truth", required=True, help="cage file (YAML) of the true cage")
    p.add_argument("--start", default="paper", help="nominal cage: built-in name or file")
    p.add_argument("--positions", type=int, default=50)
    p.add_argument("--calls-per-position", type=int, default=10)
    p.add_argument("--walls", type=float, default=0.35, help="energy absorption")
    p.add_argument("--floor", type=float, default=0.5, help="energy absorption")
    p.add_argument("--ceiling", type=float, default=0.9, help="energy absorption")
    p.add_argument("--scattering", type=float, default=0.0, help="> 0: hybrid ray tracing")
    p.add_argument("--mic-shift-mm", type=float, default=8.0)
    p.add_argument("--temperature-c", type=float, default=25.0)
    p.add_argument("--humidity-pct", type=float, default=50.0)
    p.add_argument("--pattern-p", type=float, default=0.75, help="1 omni, 0.5 cardioid")
    p.add_argument("--max-order", type=int, default=25)
    p.add_argument("--snr-db", type=float, default=35.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--positions-seed",
        type=int,
        default=None,
        help="positions and calls from this seed, the room from --seed (a held-out set)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = vars(_parser().parse_args(argv))
    try:
        res = make_pra_speaker_set(**args)
    except (FileExistsError, ValueError) as exc:  # InvalidInputError is a ValueError
        print(f"make_pra_speaker_set: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {res['n_calls']} calls ({args['positions']} positions x "
        f"{args['calls_per_position']}) to {res['out']} and the true cage to {res['truth']} "
        f"in {res['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
