"""Training configuration (one YAML file), defaults from the paper's supplement."""

from __future__ import annotations

import math
from dataclasses import dataclass

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError


@dataclass
class TrainingConfig(Config):
    """How one ensemble member is trained.

    Defaults: AdamW at learning rate 1e-3 cosine-annealed to 0, gradient norm clipped
    at 1, random crops, and time masking / white noise / polarity inversion each with
    probability 0.5. The supplement's recipe (SGD, momentum 0.7, learning rate 0.03, no
    clipping) diverged on simulated data with the ``fast`` preset (loss 0.98 -> 38.8 in
    the first epoch); it is :meth:`TrainingConfig.paper` (``--config`` a file with those
    keys).

    Attributes
    ----------
    epochs, batch_size, learning_rate, momentum, weight_decay
        Optimizer and schedule (cosine annealing per step to 0 at the last epoch).
    optimizer
        ``"sgd"`` (the paper's, with ``momentum``) or ``"adam"`` (AdamW; ``momentum``
        unused).
    clip_grad_norm
        Clip the gradient norm to this value (0: off, as in the paper).
    split
        Train / validation / test fractions of the pooled calls (8:1:1).
    split_seed
        Seed of the split (shared by the members of an ensemble).
    seed
        Seed of the member (initialization, order, augmentation).
    time_mask_p, time_mask_max_fraction
        Probability of zeroing one random span, and its largest length as a fraction
        of the input.
    noise_p, noise_std_range
        Probability of adding white noise, and its standard deviation range (the
        input is z-scored, so these are relative to the signal).
    invert_p
        Probability of multiplying the audio by -1.
    label_node
        Node of ``/locations`` that is the sound source (name or index).
    sim_calls_per_epoch
        Calls rendered per epoch when training from a simulator RIR bank.
    num_workers
        DataLoader worker processes (each opens the HDF5 files itself).
    device
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"`` or ``"cuda"``.
    checkpoint_every_s
        Also save a resumable checkpoint mid-epoch at this interval (0: only per epoch).
    fit_temperature
        Fit a covariance scale of the ensemble on the validation calls.
    """

    epochs: int = 50
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.7
    weight_decay: float = 0.0
    clip_grad_norm: float = 1.0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    seed: int = 0
    time_mask_p: float = 0.5
    time_mask_max_fraction: float = 0.1
    noise_p: float = 0.5
    noise_std_range: tuple[float, float] = (0.001, 0.05)
    invert_p: float = 0.5
    label_node: str = "0"
    sim_calls_per_epoch: int = 2000
    num_workers: int = 0
    device: str = "auto"
    checkpoint_every_s: float = 60.0
    fit_temperature: bool = False

    @classmethod
    def paper(cls, **changes) -> TrainingConfig:
        """The supplement's recipe: SGD, momentum 0.7, learning rate 0.03, no clipping."""
        return cls(optimizer="sgd", learning_rate=0.03, momentum=0.7, clip_grad_norm=0.0).replace(
            **changes
        )

    def validate(self, source: str | None = None) -> TrainingConfig:
        """Raise :class:`InvalidInputError` on impossible values."""
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", 0 < self.learning_rate < 10, "> 0 and < 10"),
            ("clip_grad_norm", self.clip_grad_norm >= 0, ">= 0 (0: off)"),
            ("sim_calls_per_epoch", self.sim_calls_per_epoch >= 1, ">= 1"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("split", abs(sum(self.split) - 1) < 1e-6 and min(self.split) >= 0, "sums to 1"),
            ("optimizer", self.optimizer in ("sgd", "adam"), "sgd or adam"),
            ("device", self.device in ("auto", "cpu", "cuda"), "auto, cpu or cuda"),
            ("num_workers", self.num_workers >= 0, ">= 0"),
        ]
        for name in ("seed", "split_seed"):
            value = getattr(self, name)
            checks.append((name, 0 <= value < 2**32, "an integer in [0, 2**32)"))
        for name in ("learning_rate", "weight_decay", "clip_grad_norm", "checkpoint_every_s"):
            checks.append((name, math.isfinite(getattr(self, name)), "a finite number"))
        checks.append(("weight_decay", self.weight_decay >= 0, ">= 0"))
        checks.append(("checkpoint_every_s", self.checkpoint_every_s >= 0, ">= 0 (0: off)"))
        checks.append(
            ("time_mask_max_fraction", 0 <= self.time_mask_max_fraction <= 1, "in [0, 1]")
        )
        lo, hi = self.noise_std_range
        checks.append(
            (
                "noise_std_range",
                math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi,
                "0 <= low <= high, finite",
            )
        )
        for name in ("time_mask_p", "noise_p", "invert_p"):
            checks.append((name, 0 <= getattr(self, name) <= 1, "a probability in [0, 1]"))
        for name, ok, expected in checks:
            if not ok:
                raise InvalidInputError(source, name, expected, repr(getattr(self, name)))
        return self

    @property
    def node(self) -> int | str:
        """``label_node`` as an index when it is a number."""
        return int(self.label_node) if self.label_node.isdigit() else self.label_node
