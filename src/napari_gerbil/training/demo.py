"""The demo ensemble: a small ensemble trained on simulated calls, built once and cached.

:func:`ensure_demo_ensemble` computes a RIR bank of the default cage on a jittered
grid of floor positions, trains :data:`DEMO_MEMBERS` ``fast`` members (steered
response power map + learned read-out) on calls freshly rendered from it every epoch
(about 3 minutes on 2 CPU cores), fits a covariance temperature on the validation
calls, and keeps the model
directory under ``napari_gerbil.paths.cache_dir() / "models"``. Later calls return
the cached directory at once. ``napari-gerbil train --demo`` rebuilds it.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.manifest import is_model_dir
from napari_gerbil.paths import cache_dir
from napari_gerbil.progress import CancelCheck, ProgressCallback, check_cancel, report

DEMO_NAME = "demo-srp-v2"
DEMO_MEMBERS = 3
DEMO_PRESET = "srp"
DEMO_GRID_MM = 50.0
DEMO_EPOCHS = 3
DEMO_CALLS_PER_EPOCH = 256


def demo_model_dir() -> Path:
    """Where the demo ensemble lives (it may not exist yet)."""
    return cache_dir() / "models" / DEMO_NAME


def _bank_positions_mm(rng: np.random.Generator) -> np.ndarray:
    from napari_gerbil.io.arena import default_cage

    half = default_cage().half_extent_mm - 30.0
    xs = np.arange(-half[0], half[0] + 1e-9, DEMO_GRID_MM)
    ys = np.arange(-half[1], half[1] + 1e-9, DEMO_GRID_MM)
    gx, gy = np.meshgrid(xs, ys)
    xy = np.c_[gx.ravel(), gy.ravel()] + rng.uniform(-15, 15, (gx.size, 2))
    xy = np.clip(xy, -half, half)
    return np.c_[xy, rng.uniform(20.0, 60.0, len(xy))]


@contextlib.contextmanager
def _build_lock(work: Path) -> Iterator[None]:
    """Hold the build folder for one build at a time (also across processes, POSIX)."""
    work.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        yield
        return
    with open(work / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInputError(
                work,
                "demo build",
                "no other build of the demo ensemble running",
                "a build in progress",
                hint="Wait for it to finish, or cancel it first.",
            ) from None
        yield  # closing the file releases the lock


def ensure_demo_ensemble(
    progress: ProgressCallback | None = None,
    rebuild: bool = False,
    cancel: CancelCheck | None = None,
) -> Path:
    """Return the demo model directory, building it first if needed.

    Parameters
    ----------
    progress
        Gets a :class:`~napari_gerbil.progress.Progress` now and then while building.
    rebuild
        Build again even if a cached one exists.
    cancel
        Checked between steps and at every training step; a cancelled build raises
        :class:`InterruptedError` and resumes from its checkpoints next time. A second
        build while one runs (another thread or process) raises InvalidInputError.
    """
    out = demo_model_dir()
    if is_model_dir(out) and not rebuild:
        return out
    work = out.parent / f".{DEMO_NAME}.building"
    with _build_lock(work):
        return _build(out, work, progress, cancel)


def _build(
    out: Path, work: Path, progress: ProgressCallback | None, cancel: CancelCheck | None
) -> Path:
    """Build the demo ensemble in ``work`` and move it to ``out`` (see ensure_demo_ensemble)."""
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.model.presets import get_preset
    from napari_gerbil.simulate.acoustics import AcousticConfig, CageAcoustics
    from napari_gerbil.simulate.rir_bank import compute_rir_bank
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.trainer import train_ensemble

    bank = work / "rir_bank.h5"
    check_cancel(cancel, "demo build")
    if not bank.exists():
        report(progress, 0.0, "computing room impulse responses")
        positions = _bank_positions_mm(np.random.default_rng(0))
        # One process: this runs inside napari (Qt threads), where forking is unsafe.
        compute_rir_bank(
            bank, CageAcoustics(default_cage(), AcousticConfig()), positions, n_workers=1
        )
    # Adam at 1e-3: the SRP read-out starts at the map's peak; larger rates pulled the
    # means toward the arena centre (measured, docs/architecture.md).
    config = TrainingConfig(
        epochs=DEMO_EPOCHS,
        batch_size=16,
        optimizer="adam",
        learning_rate=0.001,
        sim_calls_per_epoch=DEMO_CALLS_PER_EPOCH,
        checkpoint_every_s=30.0,
        fit_temperature=True,
    )
    total = DEMO_MEMBERS * DEMO_EPOCHS
    done_epochs = {"n": 0}

    def on_progress(info: dict[str, Any]) -> None:
        if "val_median_error_mm" in info:
            done_epochs["n"] += 1
            report(
                progress,
                0.2 + 0.8 * done_epochs["n"] / total,
                f"training {info['member']}: epoch {info['epoch']}/{info['epochs']}, "
                f"median error {info['val_median_error_mm']:.0f} mm",
            )

    check_cancel(cancel, "demo build")
    report(progress, 0.2, "training the demo ensemble")
    model = work / "model"
    train_ensemble(
        get_preset(DEMO_PRESET),
        config,
        [],
        model,
        DEMO_MEMBERS,
        rir_bank=bank,
        progress=on_progress,
        cancel=cancel,
        show_progress=progress is None,
    )
    if out.exists():
        shutil.rmtree(out)
    model.rename(out)
    shutil.rmtree(work, ignore_errors=True)
    report(progress, 1.0, "demo ensemble ready")
    return out
