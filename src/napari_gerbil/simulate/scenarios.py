"""Simulated training datasets in VCL format: speaker grid, robot walk, vocalizing animal.

Each scenario draws source positions, computes their impulse responses once (an RIR
bank), renders stimuli through them with fresh noise and streams the calls into a
VCL file (:class:`~napari_gerbil.io.vcl.VCLWriter`) with the ground truth in mm (arena
frame) and the stimulus class of every call. Shift variants (other absorption, cage
size, microphone positions) come from :data:`SHIFTS`. Same arguments + same seed ->
identical file contents.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import DEFAULT_DIMS_MM, ArenaGeometry, default_cage
from napari_gerbil.simulate.acoustics import AcousticConfig, CageAcoustics
from napari_gerbil.simulate.motion import random_walk
from napari_gerbil.simulate.rir_bank import RIRBank, compute_rir_bank
from napari_gerbil.simulate.stimuli import CALL_CLASSES, STIMULUS_CLASSES, StimulusGenerator

SCENARIOS = ("speaker", "robot", "animal")

#: Distribution shifts for generalization experiments: changes to the cage or acoustics.
SHIFTS = {
    "none": {},
    "absorption": {"preset": "reverberant"},
    "damped": {"preset": "damped"},
    "cage_size": {"dims_mm": (700.0, 450.0, 400.0)},
    "mic_positions": {"mic_inset_mm": 80.0, "mic_drop_mm": 60.0},
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
    tail_s
        Reverberation kept after the end of each stimulus.
    classes
        Stimulus classes to use (default: all 18 for ``speaker``, the 15 call
        classes otherwise).
    acoustics
        Absorption preset etc.; the shift's ``preset`` overrides it.
    """

    scenario: str = "speaker"
    n_calls: int | None = None
    seed: int = 0
    shift: str = "none"
    snr_db: float | None = None
    grid_spacing_mm: float = 20.0
    grid_margin_mm: float = 50.0
    tail_s: float = 0.01
    classes: tuple[str, ...] | None = None
    acoustics: AcousticConfig = dataclasses.field(default_factory=AcousticConfig)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise InvalidInputError(None, "scenario", f"one of {SCENARIOS}", repr(self.scenario))
        if self.shift not in SHIFTS:
            raise InvalidInputError(None, "shift", f"one of {sorted(SHIFTS)}", repr(self.shift))
        if self.n_calls is not None and self.n_calls < 1:
            raise InvalidInputError(None, "n_calls", ">= 1 (or None)", str(self.n_calls))
        for c in self.classes or ():
            if c not in STIMULUS_CLASSES:
                raise InvalidInputError(None, "classes", f"names from {STIMULUS_CLASSES}", repr(c))
        if self.classes is not None and not self.classes:
            raise InvalidInputError(None, "classes", "at least one class (or None)", "none")
        if self.snr_db is None:
            self.snr_db = {"speaker": 35.0, "robot": 30.0, "animal": 15.0}[self.scenario]


def shifted_setup(shift: str, acoustics: AcousticConfig) -> tuple[ArenaGeometry, AcousticConfig]:
    """Arena and acoustics of a shift variant (``"none"`` = the default cage)."""
    if shift not in SHIFTS:
        raise InvalidInputError(None, "shift", f"one of {sorted(SHIFTS)}", repr(shift))
    spec: dict[str, Any] = dict(SHIFTS[shift])  # type: ignore[call-overload]
    if "preset" in spec:
        acoustics = acoustics.replace(preset=spec.pop("preset"))
    arena = default_cage(dims_mm=spec.pop("dims_mm", DEFAULT_DIMS_MM), **spec)
    return arena, acoustics


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
    grid = speaker_grid_mm(arena, cfg.grid_spacing_mm, cfg.grid_margin_mm)
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


def simulate_dataset(
    out: str | os.PathLike,
    config: ScenarioConfig | None = None,
    rir_bank_path: str | os.PathLike | None = None,
    progress: bool = False,
    n_workers: int | None = 1,
) -> Path:
    """Simulate a scenario and write it as a VCL dataset.

    Parameters
    ----------
    out
        Output ``.h5`` file (written atomically).
    config
        Scenario settings (default: the full ``speaker`` grid).
    rir_bank_path
        Where to keep the scenario's RIR bank (reusable with :class:`RIRBank`); a
        temporary file when None.
    progress
        Show tqdm progress bars.
    n_workers
        Processes computing impulse responses (None = all CPUs); same output for any.

    Returns
    -------
    Path of the written dataset.
    """
    from tqdm import tqdm

    from napari_gerbil.io.vcl import VCLWriter

    cfg = config or ScenarioConfig()
    arena, acoustic_cfg = shifted_setup(cfg.shift, cfg.acoustics)
    rng = np.random.default_rng(cfg.seed)
    plan = _PLANNERS[cfg.scenario](cfg, arena, rng)
    acoustics = CageAcoustics(arena, acoustic_cfg)
    generator = StimulusGenerator(acoustics.sample_rate_hz)
    tail = int(round(cfg.tail_s * acoustics.sample_rate_hz))
    with tempfile.TemporaryDirectory() as tmpdir:
        bank_path = Path(rir_bank_path) if rir_bank_path else Path(tmpdir) / "bank.h5"
        compute_rir_bank(
            bank_path, acoustics, plan.sources_mm, plan.headings_rad, progress, n_workers
        )
        bank = RIRBank.open(bank_path)
    noise_rms = bank.noise_rms_for_snr(float(cfg.snr_db))  # type: ignore[arg-type]
    provenance = {
        "simulator": "napari_gerbil.simulate",
        "scenario_config": cfg.to_dict(),
        **acoustics.description(),
    }
    out = Path(out)
    with VCLWriter(
        out,
        acoustics.n_mics,
        node_names=plan.node_names,
        sample_rate_hz=acoustics.sample_rate_hz,
        arena_dims_mm=arena.dims_mm,
        mic_positions_mm=arena.mic_positions_mm,
        scenario=cfg.scenario if cfg.shift == "none" else f"{cfg.scenario}/{cfg.shift}",
        provenance=provenance,
    ) as writer:
        for k in tqdm(range(len(plan.call_class)), disable=not progress, desc=cfg.scenario):
            stim = generator.sample(plan.call_class[k], rng, plan.variability)
            audio = bank.render(int(plan.call_position[k]), stim.waveform, rng, noise_rms)
            writer.append(
                audio[: len(stim.waveform) + tail], plan.locations_mm[k], stim.stimulus_class
            )
    return out
