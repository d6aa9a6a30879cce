"""Simulated training datasets in VCL format: speaker grid, robot walk, vocalizing animal.

Each scenario plans source positions in a cage (any cage file or built-in name),
renders its stimuli there in batches with the image-source renderer
(:mod:`napari_gerbil.simulate.render`), adds fresh noise and streams the calls into a
VCL file (:class:`~napari_gerbil.io.vcl.VCLWriter`) with the ground truth in mm (arena
frame) and the stimulus class of every call. Shift variants (other absorption, cage
size, microphone positions) come from :data:`SHIFTS`. Same arguments + same seed ->
identical file contents, for any number of worker processes.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry
from napari_gerbil.io.cage import ABSORPTION_PRESETS, Cage, load_cage, preset_absorption
from napari_gerbil.simulate.cage_simulator import CageSimulator
from napari_gerbil.simulate.motion import random_walk
from napari_gerbil.simulate.noise import NoiseSource
from napari_gerbil.simulate.renderer import ImageSourceRenderer
from napari_gerbil.simulate.rir_bank import compute_rir_bank
from napari_gerbil.simulate.room import RenderConfig, Room
from napari_gerbil.simulate.stimuli import CALL_CLASSES, STIMULUS_CLASSES, StimulusGenerator

SCENARIOS = ("speaker", "robot", "animal")

#: Distribution shifts for generalization experiments: changes to the cage or acoustics.
#: ``cage_size`` scales the cage (and its microphones) by 7/6, 9/8, 8/7 (600 x 400 x 350 ->
#: 700 x 450 x 400 mm); ``mic_positions`` moves every mic 55 mm inwards and 50 mm down.
SHIFTS: dict[str, dict[str, Any]] = {
    "none": {},
    "absorption": {"absorption_preset": "reverberant"},
    "damped": {"absorption_preset": "damped"},
    "cage_size": {"scale": (700.0 / 600.0, 450.0 / 400.0, 400.0 / 350.0)},
    "mic_positions": {"mic_inward_mm": 55.0, "mic_down_mm": 50.0},
}


@dataclasses.dataclass
class ScenarioConfig(Config):
    """Settings of a simulated dataset.

    Parameters
    ----------
    scenario
        ``speaker``, ``robot`` or ``animal``.
    n_calls
        Calls to write; for ``speaker`` None means the full grid x 18 classes.
    seed
        Seed of every random draw (positions, stimuli, noise).
    shift
        Key of :data:`SHIFTS`.
    snr_db
        Typical signal-to-noise ratio of a loud (``high``) call; None for no noise.
    grid_spacing_mm, grid_margin_mm
        ``speaker`` grid over the floor.
    grid_offset_mm
        Shift of the ``speaker`` grid along x and y (half the spacing: a grid whose
        points lie between those of the unshifted one, for testing on new positions).
    tail_s
        Reverberation kept after the end of each stimulus.
    classes
        Stimulus classes to use (default: all 18 for ``speaker``, the 15 call
        classes otherwise).
    cage
        A built-in cage name or a cage file.
    absorption_preset
        Replace the cage's absorption by a named preset (the shift's overrides it).
    render
        Renderer settings.
    """

    scenario: str = "speaker"
    n_calls: int | None = None
    seed: int = 0
    shift: str = "none"
    snr_db: float | None = None
    grid_spacing_mm: float = 20.0
    grid_margin_mm: float = 50.0
    grid_offset_mm: float = 0.0
    tail_s: float = 0.01
    classes: tuple[str, ...] | None = None
    cage: str = "paper"
    absorption_preset: str | None = None
    render: RenderConfig = dataclasses.field(default_factory=RenderConfig)

    def __post_init__(self) -> None:
        if self.absorption_preset is not None and self.absorption_preset not in ABSORPTION_PRESETS:
            raise InvalidInputError(
                None,
                "absorption_preset",
                f"one of {sorted(ABSORPTION_PRESETS)}",
                repr(self.absorption_preset),
            )
        if self.scenario not in SCENARIOS:
            raise InvalidInputError(None, "scenario", f"one of {SCENARIOS}", repr(self.scenario))
        if self.shift not in SHIFTS:
            raise InvalidInputError(None, "shift", f"one of {sorted(SHIFTS)}", repr(self.shift))
        if self.n_calls is not None and self.n_calls < 1:
            raise InvalidInputError(None, "n_calls", ">= 1 (or None)", str(self.n_calls))
        if not abs(self.grid_offset_mm) < self.grid_margin_mm:
            raise InvalidInputError(
                None, "grid_offset_mm", "smaller than grid_margin_mm", str(self.grid_offset_mm)
            )
        for c in self.classes or ():
            if c not in STIMULUS_CLASSES:
                raise InvalidInputError(None, "classes", f"names from {STIMULUS_CLASSES}", repr(c))
        if self.classes is not None and not self.classes:
            raise InvalidInputError(None, "classes", "at least one class (or None)", "none")
        if self.snr_db is None:
            self.snr_db = {"speaker": 35.0, "robot": 30.0, "animal": 15.0}[self.scenario]


def shifted_cage(
    cage: Cage | str, shift: str = "none", absorption_preset: str | None = None
) -> Cage:
    """The cage of a shift variant (:data:`SHIFTS`; ``"none"`` = the cage as given)."""
    if shift not in SHIFTS:
        raise InvalidInputError(None, "shift", f"one of {sorted(SHIFTS)}", repr(shift))
    cage = load_cage(cage)
    spec = SHIFTS[shift]
    preset = spec.get("absorption_preset", absorption_preset)
    changes: dict = {}
    if preset is not None:
        changes["absorption"] = preset_absorption(preset)
    if "scale" in spec:
        scale = np.asarray(spec["scale"])
        changes["dims_mm"] = (cage.dims * scale).tolist()
        changes["mic_positions_mm"] = (cage.mics * scale).tolist()
    if "mic_inward_mm" in spec:
        mics = cage.mics.copy()
        norm = np.linalg.norm(mics[:, :2], axis=1, keepdims=True)
        mics[:, :2] -= spec["mic_inward_mm"] * mics[:, :2] / np.maximum(norm, 1e-9)
        mics[:, 2] -= spec["mic_down_mm"]
        changes["mic_positions_mm"] = mics.tolist()
    return cage.with_changes(**changes) if changes else cage


def speaker_grid_mm(
    arena: ArenaGeometry, spacing_mm: float = 20.0, margin_mm: float = 50.0
) -> np.ndarray:
    """(n, 2) grid of floor points ``spacing_mm`` apart, ``margin_mm`` from the walls."""
    hx, hy = arena.half_extent_mm - margin_mm
    if hx < 0 or hy < 0 or spacing_mm <= 0:
        raise InvalidInputError(None, "grid", "a margin inside the floor", f"{margin_mm} mm")
    xs = np.arange(-hx, hx + 1e-9, spacing_mm)
    ys = np.arange(-hy, hy + 1e-9, spacing_mm)
    xs += (hx - xs[-1]) / 2  # centre the grid
    ys += (hy - ys[-1]) / 2
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.c_[gx.ravel(), gy.ravel()]


@dataclasses.dataclass
class _Plan:
    """Where each call comes from (before rendering)."""

    sources_mm: np.ndarray  # (n_positions, 3) emitter positions
    headings_rad: np.ndarray  # (n_positions,) NaN = omnidirectional
    call_position: np.ndarray  # (n_calls,) index into sources
    call_class: list[str]
    locations_mm: np.ndarray  # (n_calls, n_nodes, 3) stored ground truth
    node_names: list[str]
    variability: float = 1.0


def _plan_speaker(cfg: ScenarioConfig, arena: ArenaGeometry, rng) -> _Plan:
    grid = speaker_grid_mm(arena, cfg.grid_spacing_mm, cfg.grid_margin_mm) + cfg.grid_offset_mm
    class_list = cfg.classes or STIMULUS_CLASSES
    n_classes = len(class_list)
    if cfg.n_calls is not None:
        n_points = min(len(grid), int(np.ceil(cfg.n_calls / n_classes)))
        grid = grid[np.sort(rng.choice(len(grid), n_points, replace=False))]
    height_mm = rng.uniform(30.0, 50.0, len(grid))  # tweeter centre a few cm above floor
    sources = np.c_[grid, height_mm]
    pos = np.repeat(np.arange(len(grid)), n_classes)
    classes = [class_list[k % n_classes] for k in range(len(pos))]
    if cfg.n_calls is not None:
        pos, classes = pos[: cfg.n_calls], classes[: cfg.n_calls]
    return _Plan(
        sources, np.full(len(grid), np.nan), pos, classes, sources[pos][:, None, :], ["speaker"]
    )


def _plan_robot(cfg: ScenarioConfig, arena: ArenaGeometry, rng) -> _Plan:
    n = cfg.n_calls or 500
    # one call every ~0.5-2 s while the robot drives at ~60 mm/s
    xy, _ = random_walk(n, 1.0, arena.half_extent_mm, rng, speed_mm_s=60.0, margin_mm=40.0)
    sources = np.c_[xy, np.full(n, 60.0)]  # earbud ~6 cm above the floor
    class_list = cfg.classes or CALL_CLASSES
    classes = [class_list[i] for i in rng.integers(len(class_list), size=n)]
    return _Plan(sources, np.full(n, np.nan), np.arange(n), classes, sources[:, None, :], ["robot"])


def _plan_animal(cfg: ScenarioConfig, arena: ArenaGeometry, rng) -> _Plan:
    n = cfg.n_calls or 500
    body, heading = random_walk(
        n, 0.7, arena.half_extent_mm, rng, speed_mm_s=120.0, margin_mm=45.0, rest_prob_s=0.3
    )
    heading = heading + rng.normal(0.0, 0.5, n)  # head turns relative to the body
    u = np.c_[np.cos(heading), np.sin(heading)]
    head_z = rng.uniform(25.0, 60.0, n)  # rearing lifts the head
    nose = np.c_[body + 40.0 * u, head_z]
    head = np.c_[body + 25.0 * u, head_z + 5.0]
    nose[:, :2] = np.clip(nose[:, :2], -arena.half_extent_mm + 5, arena.half_extent_mm - 5)
    class_list = cfg.classes or CALL_CLASSES
    classes = [class_list[i] for i in rng.integers(len(class_list), size=n)]
    locs = np.stack([nose, head], axis=1)
    return _Plan(nose, heading, np.arange(n), classes, locs, ["nose", "head"], variability=3.0)


_PLANNERS = {"speaker": _plan_speaker, "robot": _plan_robot, "animal": _plan_animal}


def _render_batch(job: tuple) -> list[np.ndarray]:
    """Render one batch of calls (in a worker process): noisy recordings, in call order.

    ``job`` is (cage, render config, sources (n, 3), headings (n,), classes, call seeds,
    variability, noise RMS, tail samples); each call's stimulus and noise come from its
    own seed, the diffuse tail from the first one's.
    """
    cage, render, sources, headings, classes, seeds, variability, noise_rms, tail = job
    renderer = _cached_renderer(cage, render)
    generator = StimulusGenerator(renderer.fs)
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    stimuli = [generator.sample(c, r, variability) for c, r in zip(classes, rngs, strict=True)]
    clean = renderer.render(sources, [st.waveform for st in stimuli], headings, tail, int(seeds[0]))
    out = []
    for y, st, r in zip(clean, stimuli, rngs, strict=True):
        y = y[: len(st.waveform) + tail]
        if noise_rms > 0:
            y = y + NoiseSource(renderer.n_mics, renderer.fs, noise_rms, r).next(len(y))
        out.append(y.astype(np.float32, copy=False))
    return out


_RENDERERS: dict[str, ImageSourceRenderer] = {}


def _cached_renderer(cage: Cage, render: RenderConfig) -> ImageSourceRenderer:
    key = repr((cage.to_dict(), render.to_dict()))
    if key not in _RENDERERS:
        _RENDERERS.clear()
        _RENDERERS[key] = ImageSourceRenderer(Room.from_cage(cage), 125000.0, render)
    return _RENDERERS[key]


def reference_rms(simulator: CageSimulator) -> float:
    """Typical RMS norm of the cage's responses (a unit-RMS call arrives about this loud)."""
    half = simulator.cage.dims[:2] / 4.0
    grid = np.array([[x, y, 40.0] for x in (-half[0], 0.0, half[0]) for y in (-half[1], half[1])])
    norms = [np.linalg.norm(simulator.rir(p), axis=0) for p in grid]
    return float(np.median(np.concatenate(norms)))


def simulate_dataset(
    out: str | os.PathLike,
    config: ScenarioConfig | None = None,
    rir_bank_path: str | os.PathLike | None = None,
    progress: bool = False,
    n_workers: int | None = 1,
    batch_calls: int = 64,
) -> Path:
    """Simulate a scenario and write it as a VCL dataset.

    Parameters
    ----------
    out
        Output ``.h5`` file (written atomically).
    config
        Scenario settings (default: the full ``speaker`` grid in the ``paper`` cage).
    rir_bank_path
        Also write the scenario's impulse responses there (a reusable RIR bank).
    progress
        Show a tqdm progress bar.
    n_workers
        Processes rendering calls (None = all CPUs); same output for any.
    batch_calls
        Calls rendered together.

    Returns
    -------
    Path of the written dataset.
    """
    from tqdm import tqdm

    from napari_gerbil.io.vcl import VCLWriter

    cfg = config or ScenarioConfig()
    cage = shifted_cage(cfg.cage, cfg.shift, cfg.absorption_preset)
    arena = cage.arena()
    rng = np.random.default_rng(cfg.seed)
    plan = _PLANNERS[cfg.scenario](cfg, arena, rng)
    simulator = CageSimulator(cage, cfg.render)
    if rir_bank_path is not None:
        compute_rir_bank(
            rir_bank_path, simulator, plan.sources_mm, plan.headings_rad, progress, n_workers
        )
    noise_rms = reference_rms(simulator) * 10.0 ** (-cfg.snr_db / 20.0) if cfg.snr_db else 0.0
    n = len(plan.call_class)
    seeds = rng.integers(2**62, size=n)
    tail = int(round(cfg.tail_s * simulator.sample_rate_hz))
    jobs = (
        (
            cage,
            cfg.render,
            plan.sources_mm[plan.call_position[i : i + batch_calls]],
            plan.headings_rad[plan.call_position[i : i + batch_calls]],
            plan.call_class[i : i + batch_calls],
            seeds[i : i + batch_calls],
            plan.variability,
            noise_rms,
            tail,
        )
        for i in range(0, n, batch_calls)
    )
    provenance = {
        "simulator": "napari_gerbil.simulate",
        "scenario_config": cfg.to_dict(),
        **simulator.description(),
    }
    out = Path(out)
    n_workers = (os.cpu_count() or 1) if n_workers is None else max(1, int(n_workers))
    with (
        VCLWriter(
            out,
            cage.n_mics,
            node_names=plan.node_names,
            sample_rate_hz=simulator.sample_rate_hz,
            arena_dims_mm=arena.dims_mm,
            mic_positions_mm=arena.mic_positions_mm,
            scenario=cfg.scenario if cfg.shift == "none" else f"{cfg.scenario}/{cfg.shift}",
            provenance=provenance,
        ) as writer,
        tqdm(total=n, disable=not progress, desc=cfg.scenario) as bar,
    ):
        k = 0
        for batch in _map_ordered(_render_batch, jobs, n_workers):
            for audio in batch:
                writer.append(audio, plan.locations_mm[k], plan.call_class[k])
                k += 1
            bar.update(len(batch))
    return out


def _map_ordered(func, jobs, n_workers: int):
    """``map(func, jobs)`` in order, in ``n_workers`` spawned processes when > 1."""
    if n_workers <= 1:
        yield from map(func, jobs)
        return
    import collections
    import itertools
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process that runs threads (napari, Qt, torch) can
    # deadlock the child. A calling script needs the ``if __name__ == "__main__":`` guard.
    ctx = multiprocessing.get_context("spawn")
    jobs = iter(jobs)
    with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
        window = collections.deque(
            pool.submit(func, j) for j in itertools.islice(jobs, 2 * n_workers)
        )
        while window:
            result = window.popleft().result()
            window.extend(pool.submit(func, j) for j in itertools.islice(jobs, 1))
            yield result
