"""The demo ensemble: a small ensemble trained by the data engine, built once and cached.

:func:`ensure_demo_ensemble` trains :data:`DEMO_MEMBERS` ``srp`` members (steered
response power map + learned read-out) on calls the data engine
(:mod:`napari_gerbil.simulate.engine`) draws fresh every epoch in randomly perturbed
copies of the built-in ``paper`` cage, at positions the validation calls never use
(4 min 39 s measured on 2 busy CPU cores). It fits a covariance temperature on the validation
calls, adds the packaged learned scorer (``demo_scorer.pt``, built by
``scripts/build_demo_scorer.py``), fits the attribution calibration
(:mod:`napari_gerbil.training.attribution`; every method, the scorer's too, judged on
held-out calls) on fresh calls and keeps the model directory under
``napari_gerbil.paths.cache_dir() / "models"``. Later calls return the cached directory
at once. ``napari-gerbil train --demo`` rebuilds it.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.manifest import is_model_dir
from napari_gerbil.paths import cache_dir
from napari_gerbil.progress import CancelCheck, ProgressCallback, check_cancel, report

DEMO_NAME = "demo-srp-engine-v5"  # v5: plausible callers, the learned scorer
DEMO_MEMBERS = 3
DEMO_PRESET = "srp"
DEMO_CAGE = "paper"
DEMO_EPOCHS = 2
DEMO_CALLS_PER_EPOCH = 2048
#: Fresh simulated calls the attribution calibration is fitted on.
DEMO_CALIBRATION_CALLS = 1024
#: The demo's learned scorer, shipped with the package (``scripts/build_demo_scorer.py``).
DEMO_SCORER_PATH = Path(__file__).with_name("demo_scorer.pt")


def demo_model_dir() -> Path:
    """Where the demo ensemble lives (it may not exist yet)."""
    return cache_dir() / "models" / DEMO_NAME


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
    from napari_gerbil.io.cage import builtin_cage
    from napari_gerbil.model.presets import get_preset
    from napari_gerbil.simulate.engine import EngineConfig
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.ensembles import train_ensemble

    cage = builtin_cage(DEMO_CAGE)
    engine = {
        "cage": cage.to_dict(),
        "cage_source": cage.name,
        "config": EngineConfig().to_dict(),  # domain randomization on, as `train --cage`
        "seed": 0,
    }
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
    total = DEMO_MEMBERS * DEMO_EPOCHS / 0.9  # the last 10%: the attribution calibration
    done_epochs = {"n": 0}

    def on_progress(info: dict[str, Any]) -> None:
        if "val_median_error_mm" in info:
            done_epochs["n"] += 1
            report(
                progress,
                done_epochs["n"] / total,
                f"training {info['member']}: epoch {info['epoch']}/{info['epochs']}, "
                f"median error {info['val_median_error_mm']:.0f} mm",
            )

    report(progress, 0.0, "training the demo ensemble")
    check_cancel(cancel, "demo build")
    model = work / "model"
    train_ensemble(
        get_preset(DEMO_PRESET),
        config,
        [],
        model,
        DEMO_MEMBERS,
        engine=engine,
        progress=on_progress,
        cancel=cancel,
        show_progress=progress is None,
    )
    from napari_gerbil.training.attribution import write_calibration

    if DEMO_SCORER_PATH.is_file():
        from napari_gerbil.model.scorer import SCORER_FILE

        shutil.copyfile(DEMO_SCORER_PATH, model / SCORER_FILE)
    report(progress, 0.9, "fitting the attribution calibration")
    write_calibration(model, cage, DEMO_CALIBRATION_CALLS, seed=7, cancel=cancel)
    if out.exists():
        shutil.rmtree(out)
    model.rename(out)
    shutil.rmtree(work, ignore_errors=True)
    report(progress, 1.0, "demo ensemble ready")
    return out
