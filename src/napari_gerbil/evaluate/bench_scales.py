"""The benchmark's sizes: :class:`BenchmarkScale` and the predefined :data:`SCALES`."""

from __future__ import annotations

import dataclasses

from napari_gerbil.config import Config
from napari_gerbil.io.cage import PHYSICS_PANEL
from napari_gerbil.simulate.caller import CALLERS

DATASETS = ("speaker", "robot", "animal")
#: Seed offset of the test datasets (new robot/animal walks, an offset speaker grid).
UNSEEN_SEED_OFFSET = 10_000
#: Fewest training calls a stimulus group needs to get a model in the stimulus matrix.
MIN_GROUP_CALLS = 3


@dataclasses.dataclass
class BenchmarkScale(Config):
    """How big the benchmark is.

    Attributes
    ----------
    name
        Scale name (``smoke``, ``quick``, ``full``).
    speaker_calls, robot_calls, animal_calls
        Calls simulated per dataset (speaker: whole positions x 18 stimulus classes).
    test_fraction
        Held-out test share of each dataset.
    preset
        Network preset of every model.
    epochs, batch_size, n_members
        Training of the main ensembles (one per dataset); "single" is member 0.
    optimizer, learning_rate
        Optimizer of every model (``sgd``: the paper's momentum 0.7; ``adam``) and its
        initial learning rate (cosine-annealed to 0).
    clip_grad_norm
        Gradient-norm clipping of every model (0: off, as in the paper).
    aux_epochs
        Epochs of the single models of the generalization and scaling experiments.
    stimulus_groups
        ``type`` (6 call types, volumes pooled) or ``class`` (the 18 classes): one
        single model per group for the stimulus matrix.
    scaling_sizes
        Robot training-set sizes of the scaling experiment (the full set is added).
    baselines
        Classical methods run on every test set.
    n_examples
        Example calls of the 95%-set figure.
    jobs
        Ensemble members trained at once (processes).
    device
        ``auto`` (GPU when present), ``cpu`` or ``cuda``.
    seed
        Seed of the simulations and splits.
    curve_sizes, curve_preset, curve_epochs, curve_test_calls
        The engine learning curve (distinct positions; a new-position test set).
    attribution_cages, attribution_callers, attribution_duration_s, attribution_calibration_calls
        The attribution panel: rooms (the physics panel) x callers, session length (one 2-
        and one 3-animal session per row) and calls each method is calibrated on.
    """

    name: str = "quick"
    speaker_calls: int = 1080
    robot_calls: int = 500
    animal_calls: int = 400
    test_fraction: float = 0.1
    preset: str = "fast"
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    clip_grad_norm: float = 1.0
    n_members: int = 3
    aux_epochs: int = 6
    stimulus_groups: str = "type"
    scaling_sizes: tuple[int, ...] = (100, 200)
    baselines: tuple[str, ...] = ("muse", "gcc_phat")
    n_examples: int = 3
    jobs: int = 1
    device: str = "auto"
    seed: int = 0
    curve_sizes: tuple[int, ...] = (1000, 3000, 10000)
    curve_preset: str = "gcc"
    curve_epochs: int = 8
    curve_test_calls: int = 256
    attribution_cages: tuple[str, ...] = PHYSICS_PANEL
    attribution_callers: tuple[str, ...] = CALLERS
    attribution_duration_s: float = 120.0
    attribution_calibration_calls: int = 768


#: The predefined scales.
SCALES = {
    "smoke": BenchmarkScale(
        name="smoke", speaker_calls=36, robot_calls=16, animal_calls=16, test_fraction=0.25,
        epochs=1, preset="tiny", n_members=2, aux_epochs=1, scaling_sizes=(6,), n_examples=2,
        curve_sizes=(32, 64), curve_preset="tiny", curve_epochs=1, curve_test_calls=32,
        attribution_cages=("paper",), attribution_callers=("plausible", "cardioid"),
        attribution_duration_s=8.0,
        attribution_calibration_calls=64,
    ),
    "quick": BenchmarkScale(),
    "full": BenchmarkScale(
        name="full", speaker_calls=7488, robot_calls=20000, animal_calls=5000, preset="paper",
        epochs=50, optimizer="sgd", learning_rate=0.03, clip_grad_norm=0.0, n_members=10,
        aux_epochs=50, stimulus_groups="class",
        scaling_sizes=(500, 1000, 2000, 4000, 8000), baselines=("muse", "muse_jackknife",
        "srp_phat", "gcc_phat"), n_examples=4,
        curve_sizes=(1000, 3000, 10000, 30000, 100000, 300000), curve_epochs=20,
        curve_test_calls=2048,
    ),
}  # fmt: skip
