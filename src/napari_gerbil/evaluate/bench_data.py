"""The benchmark's data and models.

Simulated datasets, their splits and subsets, and one run's training
(:class:`_Context`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.evaluate.bench_scales import DATASETS, UNSEEN_SEED_OFFSET, BenchmarkScale
from napari_gerbil.io.atomic import atomic_write_text
from napari_gerbil.io.vcl import VCLDataset, write_vcl


def _log(progress: Callable[[str], None] | None, t0: float, message: str) -> None:
    if progress is not None:
        progress(f"[{time.perf_counter() - t0:7.1f} s] {message}")


def _simulated(cfg, path: Path) -> Path:
    """Simulate ``cfg`` into ``path``, or reuse it when its sidecar holds the same config."""
    from napari_gerbil.simulate.scenarios import simulate_dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = path.with_suffix(".json")
    wanted = json.dumps(cfg.to_dict(), sort_keys=True)
    if not (path.exists() and sidecar.exists() and sidecar.read_text() == wanted):
        simulate_dataset(path, cfg, n_workers=None)
        atomic_write_text(sidecar, wanted)
    return path


def simulate_datasets(scale: BenchmarkScale, data_dir: Path) -> dict[str, Path]:
    """Simulate (or reuse, when the stored config matches) the three datasets."""
    from napari_gerbil.simulate.scenarios import ScenarioConfig

    return {
        name: _simulated(
            ScenarioConfig(scenario=name, n_calls=getattr(scale, f"{name}_calls"), seed=scale.seed),
            data_dir / f"{name}.h5",
        )
        for name in DATASETS
    }


def simulate_unseen(scale: BenchmarkScale, data_dir: Path) -> dict[str, Path]:
    """Simulate (or reuse) each dataset's test calls at positions its file never has.

    As many calls as the held-out split (``test_fraction``); robot and animal walks
    from another seed, the speaker grid offset by half its spacing.
    """
    from napari_gerbil.simulate.scenarios import ScenarioConfig

    files = {}
    for name in DATASETS:
        n_calls = max(1, int(round(scale.test_fraction * getattr(scale, f"{name}_calls"))))
        cfg = ScenarioConfig(scenario=name, n_calls=n_calls, seed=scale.seed + UNSEEN_SEED_OFFSET)
        if name == "speaker":
            cfg = cfg.replace(grid_offset_mm=cfg.grid_spacing_mm / 2)
        files[name] = _simulated(cfg, data_dir / f"{name}_unseen.h5")
    return files


def write_subset(source: VCLDataset, indices, out_path: Path) -> Path:
    """Copy the calls ``indices`` of a VCL file (audio, locations, classes) into a new file."""
    indices = np.asarray(indices, dtype=int)
    classes = source.stimulus_classes
    return write_vcl(
        out_path,
        (source.call_audio(int(i)) for i in indices),
        source.locations_mm[indices],  # type: ignore[index]
        node_names=source.node_names,
        sample_rate_hz=source.sample_rate_hz,  # type: ignore[arg-type]
        arena_dims_mm=source.arena_dims_mm,
        mic_positions_mm=source.mic_positions_mm,
        stimulus_classes=None if classes is None else [classes[i] for i in indices],
        scenario=source.scenario,
        provenance={**source.provenance, "subset_of": str(source.path), "n_calls": len(indices)},
    )


def split_dataset(path: Path, test_fraction: float, seed: int) -> tuple[Path, Path]:
    """Split a file once into ``<name>_trainval.h5`` and ``<name>_test.h5`` (random calls)."""
    trainval = path.with_name(f"{path.stem}_trainval.h5")
    test = path.with_name(f"{path.stem}_test.h5")
    source = VCLDataset(path)
    order = np.random.default_rng(seed).permutation(source.n_calls)
    n_test = max(1, int(round(test_fraction * source.n_calls)))
    stamp = path.with_name(f"{path.stem}_split.json")
    key = json.dumps({"mtime": path.stat().st_mtime_ns, "test": test_fraction, "seed": seed})
    if not (trainval.exists() and test.exists() and stamp.exists() and stamp.read_text() == key):
        write_subset(source, np.sort(order[:n_test]), test)
        write_subset(source, np.sort(order[n_test:]), trainval)
        atomic_write_text(stamp, key)
    source.close()
    return trainval, test


class _Context:
    """Shared state of one benchmark run."""

    def __init__(self, scale, out_dir, progress):
        from napari_gerbil.model.presets import get_preset
        from napari_gerbil.training.config import TrainingConfig
        from napari_gerbil.training.trainer import resolve_device

        self.scale = scale
        self.out = out_dir
        self.progress = progress
        self.t0 = time.perf_counter()
        self.device = resolve_device(scale.device)
        self.cluster: Any = None  # a ClusterSpec: members as cluster jobs
        self.network = get_preset(scale.preset)
        self.training = TrainingConfig(
            epochs=scale.epochs,
            batch_size=scale.batch_size,
            optimizer=scale.optimizer,
            learning_rate=scale.learning_rate,
            # train / validation (best checkpoint) / calibration calls (the temperature
            # of ensemble_t); the test calls live in separate files
            split=(0.8, 0.1, 0.1),
            split_seed=scale.seed,
            seed=scale.seed,
            device=scale.device,
            clip_grad_norm=scale.clip_grad_norm,
        )

    def log(self, message: str) -> None:
        _log(self.progress, self.t0, message)

    def train(self, name: str, paths, n_members: int, epochs: int):
        """Train (or resume) an ensemble under ``models/<name>`` and load it."""
        from napari_gerbil.model.ensemble import load_ensemble
        from napari_gerbil.training.trainer import train_ensemble

        start = time.perf_counter()
        model_dir = self.out / "models" / name
        train_ensemble(
            self.network,
            self.training.replace(epochs=epochs),
            [str(p) for p in paths],
            model_dir,
            n_members,
            jobs=1 if self.cluster is not None else min(self.scale.jobs, n_members),
            cluster=self.cluster,
            report=self.log,
            show_progress=False,
        )
        self.log(f"trained {name} ({n_members} x {epochs} epochs) in "
                 f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        return load_ensemble(model_dir, device=self.device)


def _predict(ensemble, calls) -> tuple[Any, float]:
    start = time.perf_counter()
    pred = ensemble.predict(calls)
    return pred, time.perf_counter() - start
