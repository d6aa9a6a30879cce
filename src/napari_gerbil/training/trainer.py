"""The training API in one place: the members' loop, ensembles and fine-tuning.

Each idea lives in its own module; this one re-exports their public names for callers
that import them from here:

- :mod:`~napari_gerbil.training.sources`: the training data of a run (VCL files, a RIR
  bank, the data engine, sessions) and their mixes;
- :mod:`~napari_gerbil.training.loop`: one member's training loop (resumable);
- :mod:`~napari_gerbil.training.checkpoints`: its resumable state and metrics;
- :mod:`~napari_gerbil.training.ensembles`: ensembles (processes, cluster jobs, resume);
- :mod:`~napari_gerbil.training.finetune`: fine-tuning a model into a new version.
"""

from __future__ import annotations

from napari_gerbil.training.checkpoints import read_metrics
from napari_gerbil.training.ensembles import (
    RUN_RECORD,
    finalize_model_dir,
    resume_ensemble,
    train_ensemble,
    with_data_geometry,
)
from napari_gerbil.training.finetune import finetune, next_version_dir
from napari_gerbil.training.loop import (
    TrainingDivergedError,
    evaluate_member,
    resolve_device,
    train_member,
)
from napari_gerbil.training.sources import TrainingData, open_training_data

__all__ = [
    "RUN_RECORD",
    "TrainingData",
    "TrainingDivergedError",
    "evaluate_member",
    "finalize_model_dir",
    "finetune",
    "next_version_dir",
    "open_training_data",
    "read_metrics",
    "resolve_device",
    "resume_ensemble",
    "train_ensemble",
    "train_member",
    "with_data_geometry",
]
