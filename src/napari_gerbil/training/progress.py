"""Training reports in the common progress protocol (:mod:`napari_gerbil.progress`).

The trainer calls ``progress`` with dicts (member, epoch, step, metrics) and polls
``cancel()``; :class:`TrainingProgress` turns those dicts into
:class:`~napari_gerbil.progress.Progress` records over the whole ensemble, and a
:class:`~napari_gerbil.progress.CancelToken` is itself a valid ``cancel``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_gerbil.progress import CancelCheck, Progress, ProgressCallback


class TrainingProgress:
    """Callable for the trainer's ``progress``: forwards ensemble-wide fractions.

    Parameters
    ----------
    progress
        Receives :class:`~napari_gerbil.progress.Progress` records.
    n_members
        Members trained one after the other.
    """

    def __init__(self, progress: ProgressCallback | None, n_members: int) -> None:
        self.progress = progress
        self.n_members = max(1, int(n_members))
        self._members: list[str] = []

    def __call__(self, info: dict[str, Any]) -> None:
        """Forward one trainer report (step reports only; epoch summaries are skipped)."""
        if self.progress is None or "step" not in info:
            return
        if info["member"] not in self._members:
            self._members.append(info["member"])
        within = (info["epoch"] + info["step"] / info["steps"]) / info["epochs"]
        fraction = (self._members.index(info["member"]) + within) / self.n_members
        self.progress(Progress(min(fraction, 1.0), f"{info['member']} epoch {info['epoch'] + 1}"))


def finetune_with_progress(
    model_dir: str | os.PathLike,
    dataset_path: str | os.PathLike,
    epochs: int,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """Fine-tune the ensemble in ``model_dir`` on ``dataset_path`` into a new version.

    Runs ``epochs`` epochs at a tenth of the parent's learning rate; returns the new
    model directory. ``progress`` and ``cancel`` follow :mod:`napari_gerbil.progress`;
    a cancelled run raises :class:`InterruptedError` (run again to resume).
    """
    from napari_gerbil.model.manifest import read_manifest
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.finetune import finetune

    model_dir = Path(model_dir)
    parent = TrainingConfig.load(model_dir / "training.yaml")
    config = parent.replace(epochs=int(epochs), learning_rate=parent.learning_rate / 10)
    n_members = len(read_manifest(model_dir)["members"])
    return finetune(
        model_dir,
        [dataset_path],
        config=config,
        cancel=cancel,
        show_progress=False,
        progress=TrainingProgress(progress, n_members),
    )
