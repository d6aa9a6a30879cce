"""The benchmark: simulate datasets, train models, run baselines, write figures + report.

Reproduces the paper's figures on simulated data (:mod:`napari_gerbil.simulate`):
error CDFs (Fig. 2D), calibration curves (2E), example 95% sets (2B/C), the
stimulus x stimulus (3A) and dataset x dataset (3B) generalization matrices, and the
error vs training-set size power law (3C).

Every headline number is measured at positions no model trained on: each dataset's
test calls are simulated separately (``<name>_unseen.h5``: the robot and animal walks
from another seed, the speaker grid offset by half a cell). Each dataset's own file is
split once into a train+validation file and a held-out call split; on the speaker
grid that split shares every position with training, so it is reported apart, as
recall (``results["speaker"]["on_grid_recall"]``). Every model and baseline is scored
on the same test calls.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.evaluate import plots, runner
from napari_gerbil.evaluate.attribution_panel import attribution_panel
from napari_gerbil.evaluate.metrics import paired_bootstrap_interval, power_law_fit
from napari_gerbil.evaluate.report import acceptance_checks, write_report_md, write_results_json
from napari_gerbil.io.atomic import atomic_write_text
from napari_gerbil.io.cage import PHYSICS_PANEL
from napari_gerbil.io.vcl import VCLDataset, write_vcl
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


def _baseline_options(trainval: VCLDataset) -> dict:
    """Source height (median of the training labels) and the recorded speed of sound."""
    pairs = np.array([(0, i) for i in range(trainval.n_calls)])
    options = {"source_height_mm": runner.source_height_mm([trainval], pairs)}
    c = trainval.provenance.get("speed_of_sound_m_per_s")
    if c:
        options["speed_of_sound"] = float(c)
    return options


#: The learned methods of the main comparison: member 0 alone, the ensemble, and the
#: ensemble with a covariance temperature fitted on its calibration calls.
MODEL_METHODS = ("single", "ensemble", "ensemble_t")


def _calibration_temperature(ensemble, model_dir: Path, trainval: Path) -> float:
    """Covariance scale minimizing the ensemble's NLL on its calibration calls.

    These are the third part of the training split (every member has the same), used
    neither for training nor for choosing checkpoints (validation calls would flatter
    the models).
    """
    from napari_gerbil.model.calibration import fit_temperature
    from napari_gerbil.training.data import load_split

    split, _ = load_split(model_dir / "member_00" / "split.json")
    calls, truth = runner.dataset_calls([VCLDataset(trainval)], split["test"])
    if len(calls) == 0:
        return 1.0
    return fit_temperature(ensemble.predict(calls, temperature=1.0), truth)


def _fingerprint(model_dir: Path, trainval: Path, calls, truth) -> tuple[dict, dict]:
    """The fingerprint lookup with member 0's training calls as its reference."""
    from napari_gerbil.training.data import load_split

    split, _ = load_split(model_dir / "member_00" / "split.json")
    ref_calls, ref_xy = runner.dataset_calls([VCLDataset(trainval)], split["train"])
    return runner.fingerprint_recall(ref_calls, ref_xy, calls, truth)


def _paired_intervals(scores: dict) -> dict:
    """95% bootstrap intervals of the two comparisons the acceptance checks make.

    Test calls are resampled, paired across methods.
    """
    from napari_gerbil.model.calibration import expected_calibration_error as ece

    out = {
        "ece_ensemble_minus_single": paired_bootstrap_interval(
            lambda e, s: ece(e) - ece(s), [scores["ensemble"]["levels"], scores["single"]["levels"]]
        )
    }
    if "muse" in scores:
        out["muse_over_ensemble_median"] = paired_bootstrap_interval(
            lambda m, e: np.median(m) / max(np.median(e), 1e-9),
            [scores["muse"]["errors_mm"], scores["ensemble"]["errors_mm"]],
        )
    return out


def _on_grid_recall(ctx: _Context, ensemble, trainval: Path, split_test: Path) -> dict:
    """The models and the lookup on held-out calls *at* training positions (recall)."""
    test_ds = VCLDataset(split_test)
    calls, truth = runner.dataset_calls([test_ds], np.array([(0, i) for i in range(len(test_ds))]))
    pred, _ = _predict(ensemble, calls)
    points = {"ensemble": pred.point_mm, "single": runner.single_member(pred).point_mm}
    median = {m: float(np.median(np.linalg.norm(p - truth, axis=1))) for m, p in points.items()}
    lookup, recall = _fingerprint(ctx.out / "models" / "speaker", trainval, calls, truth)
    median["fingerprint"] = lookup["median_mm"]
    return {"n_test_calls": len(calls), "median_error_mm": median, **recall}


def _evaluate_dataset(ctx: _Context, name: str, trainval: Path, test: Path, figures: dict):
    """Main comparison on one dataset: single, ensemble and baselines on its test calls."""
    scale = ctx.scale
    ensemble = ctx.train(name, [trainval], scale.n_members, scale.epochs)
    test_ds = VCLDataset(test)
    calls, truth = runner.dataset_calls([test_ds], np.array([(0, i) for i in range(len(test_ds))]))
    pred, seconds = _predict(ensemble, calls)
    arena = test_ds.arena_dims_mm
    scores = {
        "ensemble": runner.score_mixture(pred, truth, arena),
        "single": runner.score_mixture(runner.single_member(pred), truth, arena),
    }
    scores["ensemble"]["calls_per_s"] = len(calls) / seconds
    scores["single"]["calls_per_s"] = len(calls) / seconds * pred.n_members
    temperature = _calibration_temperature(ensemble, ctx.out / "models" / name, trainval)
    scores["ensemble_t"] = runner.score_mixture(pred.with_temperature(temperature), truth, arena)
    options = _baseline_options(VCLDataset(trainval))
    for method in scale.baselines:
        point, secs = runner.run_baseline(method, calls, test_ds, **options)
        scores[method] = runner.score_points(point, truth)
        scores[method]["calls_per_s"] = len(calls) / secs
    scores["fingerprint"], recall = _fingerprint(ctx.out / "models" / name, trainval, calls, truth)
    ctx.log(f"{name}: " + ", ".join(f"{m} {s['median_mm']:.1f} mm" for m, s in scores.items()))
    out: dict[str, Any] = {
        "n_test_calls": len(calls),
        "n_trainval_calls": VCLDataset(trainval).n_calls,
    }
    out["ensemble_t_temperature"] = temperature
    out.update(recall)
    keys = {
        "median_error_mm": "median_mm", "mean_error_mm": "mean_mm", "p90_error_mm": "p90_mm",
        "p95_error_mm": "p95_mm", "within_10_mm": "within_10_mm", "within_20_mm": "within_20_mm",
        "calls_per_s": "calls_per_s", "ece": "ece", "coverage_95": "coverage_95",
        "median_set_area_mm2": "median_set_area_mm2",
    }  # fmt: skip
    for key, src in keys.items():
        out[key] = {m: s[src] for m, s in scores.items() if src in s}
    out["calibration_curve"] = {
        m: {"nominal": scores[m]["nominal"], "observed": scores[m]["coverage"]}
        for m in MODEL_METHODS
    }
    out["baseline_options"] = options
    out["levels"] = {m: scores[m]["levels"] for m in MODEL_METHODS}
    out["bootstrap_95"] = _paired_intervals(scores)
    out["errors_mm"] = {m: s["errors_mm"] for m, s in scores.items()}
    figures[f"error_cdf:{name}"] = plots.plot_error_cdfs(
        out["errors_mm"], ctx.out / f"error_cdf_{name}.png", f"{name} test calls"
    ).name
    figures[f"calibration:{name}"] = plots.plot_calibration(
        {m: (scores[m]["nominal"], scores[m]["coverage"]) for m in MODEL_METHODS},
        ctx.out / f"calibration_{name}.png",
        f"{name} test calls",
    ).name
    return out, ensemble, pred, truth


def _confidence_examples(pred, truth, arena, n: int) -> list[dict]:
    """Example calls (spread over the error range) with single and ensemble 95% sets."""
    from napari_gerbil.model.confidence import confidence_sets

    err = np.linalg.norm(pred.point_mm - truth, axis=1)
    picks = np.argsort(err)[np.linspace(0, len(err) - 1, n + 2).round().astype(int)[1:-1]]
    examples = []
    for i in picks:
        example = {"true_mm": truth[i]}
        for name, p in (("single", runner.single_member(pred[int(i)])), ("ensemble", pred[int(i)])):
            cs = confidence_sets(p, arena, 0.95)[0]
            example[name] = {
                "polygons_mm": cs.polygons_mm,
                "means_mm": p.means_mm[0],
                "area_mm2": cs.area_mm2,
            }
        examples.append(example)
    return examples


def _median_by(errors: np.ndarray, labels: list[str], columns: list[str]) -> list[float]:
    names = np.asarray(labels)
    return [float(np.median(errors[names == c])) if np.any(names == c) else np.nan
            for c in columns]  # fmt: skip


def _stimulus_matrix(ctx: _Context, trainval: Path, test: Path) -> dict:
    """Single models trained on one stimulus group each, tested on every class (Fig. 3A)."""
    from napari_gerbil.simulate.stimuli import STIMULUS_CLASSES, split_class

    source = VCLDataset(trainval)
    classes = source.stimulus_classes or []
    group_of = (lambda c: split_class(c)[0]) if ctx.scale.stimulus_groups == "type" else str
    groups = list(dict.fromkeys(group_of(c) for c in STIMULUS_CLASSES))
    test_ds = VCLDataset(test)
    calls, truth = runner.dataset_calls([test_ds], np.array([(0, i) for i in range(len(test_ds))]))
    test_classes = test_ds.stimulus_classes or []
    columns = [c for c in STIMULUS_CLASSES if c in set(test_classes)]
    rows, values = [], []
    subsets = ctx.out / "data_subsets"
    subsets.mkdir(parents=True, exist_ok=True)
    for group in groups:
        idx = [i for i, c in enumerate(classes) if group_of(c) == group]
        if len(idx) < MIN_GROUP_CALLS:
            continue
        path = write_subset(source, idx, subsets / f"speaker_{group}.h5")
        ensemble = ctx.train(f"stimulus_{group}", [path], 1, ctx.scale.aux_epochs)
        pred, _ = _predict(ensemble, calls)
        err = np.linalg.norm(pred.point_mm - truth, axis=1)
        rows.append(group)
        values.append(_median_by(err, test_classes, columns))
    matrix = np.array(values, dtype=float).reshape(len(rows), len(columns))
    return {"train": rows, "test": columns, "median_error_mm": matrix,
            "groups": ctx.scale.stimulus_groups}  # fmt: skip


def _dataset_matrix(ctx, ensembles: dict, splits: dict) -> dict:
    """Single models trained on each dataset and on all of them, tested on each (Fig. 3B).

    The per-dataset rows are member 0 of the main ensembles ("single"); the ``all`` row
    is one member trained the same way on the three training sets together.
    """
    tests = {}
    for name in DATASETS:
        ds = VCLDataset(splits[name][1])
        tests[name] = runner.dataset_calls([ds], np.array([(0, i) for i in range(len(ds))]))
    models = dict(ensembles)
    models["all"] = ctx.train("all", [splits[n][0] for n in DATASETS], 1, ctx.scale.epochs)
    values = []
    for row in [*DATASETS, "all"]:
        line = []
        for col in DATASETS:
            pred, _ = _predict(models[row], tests[col][0])
            point = runner.single_member(pred).point_mm
            line.append(float(np.median(np.linalg.norm(point - tests[col][1], axis=1))))
        values.append(line)
    return {"train": [*DATASETS, "all"], "test": list(DATASETS),
            "median_error_mm": np.array(values), "model": "single"}  # fmt: skip


def _scaling(ctx: _Context, trainval: Path, test: Path) -> dict:
    """Single models on growing random subsets of the robot training data (Fig. 3C)."""
    from napari_gerbil.training.data import load_split

    source = VCLDataset(trainval)
    test_ds = VCLDataset(test)
    calls, truth = runner.dataset_calls([test_ds], np.array([(0, i) for i in range(len(test_ds))]))
    order = np.random.default_rng(ctx.scale.seed + 1).permutation(source.n_calls)
    sizes = sorted(
        {min(int(s), source.n_calls) for s in ctx.scale.scaling_sizes} | {source.n_calls}
    )
    subsets = ctx.out / "data_subsets"
    subsets.mkdir(parents=True, exist_ok=True)
    medians, n_train = [], []
    for size in sizes:
        path = write_subset(source, np.sort(order[:size]), subsets / f"robot_n{size}.h5")
        ensemble = ctx.train(f"scaling_n{size}", [path], 1, ctx.scale.aux_epochs)
        pred, _ = _predict(ensemble, calls)
        medians.append(float(np.median(np.linalg.norm(pred.point_mm - truth, axis=1))))
        split, _ = load_split(ctx.out / "models" / f"scaling_n{size}" / "member_00" / "split.json")
        n_train.append(len(split["train"]))  # the rest validates / calibrates
    fit = power_law_fit(n_train, medians) if len(sizes) >= 2 else None
    return {"dataset": "robot", "n_train_calls": n_train, "median_error_mm": medians, "fit": fit,
            "epochs": ctx.scale.aux_epochs}  # fmt: skip


def _engine_panels(ctx: _Context, figures: dict) -> tuple[dict, dict]:
    """Learning curve (distinct positions) and shift matrix, all data from the engine."""
    from napari_gerbil.evaluate import scaling
    from napari_gerbil.model.presets import get_preset

    scale = ctx.scale
    curve = scaling.learning_curve(
        "paper",
        get_preset(scale.curve_preset),
        ctx.training.replace(epochs=scale.curve_epochs),
        scale.curve_sizes,
        ctx.out / "models" / "learning_curve",
        test_calls=scale.curve_test_calls,
        log=ctx.log,
    )
    figures["learning_curve"] = scaling.plot_learning_curve(
        curve, ctx.out / "learning_curve.png"
    ).name
    largest = ctx.out / "models" / "learning_curve" / f"n{max(scale.curve_sizes)}"
    shift = scaling.shift_matrix(largest, "paper", test_calls=scale.curve_test_calls)
    ctx.log(
        "shift: "
        + ", ".join(f"{k} {v['median_error_mm']:.0f} mm" for k, v in shift["rows"].items())
    )
    return curve, shift


def _machine(device) -> dict:
    import torch

    desc = f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.__version__}"
    if device.type == "cuda":
        desc += f", GPU {torch.cuda.get_device_name(device)}"
    return {"description": desc, "cpu_count": os.cpu_count(), "device": str(device),
            "torch_threads": torch.get_num_threads()}  # fmt: skip


def run_benchmark(
    out_dir: str | os.PathLike,
    scale: BenchmarkScale | str = "quick",
    data_dir: str | os.PathLike | None = None,
    command: str | None = None,
    progress: Callable[[str], None] | None = print,
    cluster: Any = None,
) -> dict:
    """Run the whole benchmark; write figures, ``results.json`` and ``report.md`` to ``out_dir``.

    Parameters
    ----------
    out_dir
        Output directory (models, figures, report). Re-running resumes trained models.
    scale
        A :class:`BenchmarkScale` or the name of one of :data:`SCALES`.
    data_dir
        Where simulated datasets are kept and reused (default ``out_dir/data``).
    command
        The command line, recorded in the report.
    progress
        Called with one line per step (None: silent).
    cluster
        A :class:`~napari_gerbil.training.cluster.ClusterSpec`: the ensembles' members
        run as cluster jobs (SLURM or local submitit), as with ``train --cluster``.

    Returns
    -------
    The results dictionary (also written as ``results.json``).
    """
    if isinstance(scale, str):
        if scale not in SCALES:
            raise InvalidInputError(None, "scale", f"one of {sorted(SCALES)}", repr(scale))
        scale = SCALES[scale]
    if scale.stimulus_groups not in ("type", "class"):
        raise InvalidInputError(None, "stimulus_groups", "type or class", scale.stimulus_groups)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _Context(scale, out, progress)
    ctx.cluster = cluster
    timing: dict[str, float] = {}
    results: dict = {
        "scale_name": scale.name,
        "scale": scale.to_dict(),
        "command": command,
        "machine": _machine(ctx.device),
        "timing_s": timing,
        "notes": [],
    }
    figures: dict[str, str] = {}

    def lap(key: str, start: float) -> float:
        timing[key] = time.perf_counter() - start
        return time.perf_counter()

    t = time.perf_counter()
    files = simulate_datasets(scale, Path(data_dir) if data_dir else out / "data")
    unseen = simulate_unseen(scale, Path(data_dir) if data_dir else out / "data")
    held_out = {n: split_dataset(p, scale.test_fraction, scale.seed) for n, p in files.items()}
    # train on each file's train+validation part, test on calls at new positions
    splits = {n: (held_out[n][0], unseen[n]) for n in DATASETS}
    ctx.log(
        "datasets ready: " + ", ".join(f"{n} {VCLDataset(p).n_calls}" for n, p in files.items())
    )
    t = lap("simulate", t)
    ensembles = {}
    for name in DATASETS:
        results[name], ensembles[name], pred, truth = _evaluate_dataset(
            ctx, name, *splits[name], figures
        )
        if name == "speaker":
            examples = _confidence_examples(pred, truth, VCLDataset(splits[name][1]).arena_dims_mm,
                                            scale.n_examples)  # fmt: skip
            figures["confidence_sets"] = plots.plot_confidence_sets(
                examples, VCLDataset(splits[name][1]).arena_dims_mm, out / "confidence_sets.png"
            ).name
        if name == "speaker":
            results[name]["on_grid_recall"] = _on_grid_recall(ctx, ensembles[name], *held_out[name])
        t = lap(f"main_{name}", t)
    results["dataset_matrix"] = _dataset_matrix(ctx, ensembles, splits)
    m = results["dataset_matrix"]
    figures["dataset_matrix"] = plots.plot_matrix(
        m["median_error_mm"], m["train"], m["test"], out / "dataset_matrix.png",
        "single-model median error (mm): train x test dataset",
    ).name  # fmt: skip
    t = lap("dataset_matrix", t)
    results["stimulus_matrix"] = _stimulus_matrix(ctx, *splits["speaker"])
    m = results["stimulus_matrix"]
    if m["train"]:
        figures["stimulus_matrix"] = plots.plot_matrix(
            m["median_error_mm"], m["train"], m["test"], out / "stimulus_matrix.png",
            f"single-model median error (mm): train stimulus {m['groups']} x test class",
        ).name  # fmt: skip
    else:
        results["notes"].append(
            f"No stimulus matrix: no stimulus {m['groups']} has {MIN_GROUP_CALLS} or more "
            "training calls at this scale."
        )
    t = lap("stimulus_matrix", t)
    results["scaling"] = _scaling(ctx, *splits["robot"])
    s = results["scaling"]
    figures["scaling"] = plots.plot_scaling(
        s["n_train_calls"], s["median_error_mm"], s["fit"], out / "scaling.png",
        f"robot test error vs training calls ({s['epochs']} epochs each)",
    ).name  # fmt: skip
    t = lap("scaling", t)
    results["learning_curve"], results["shift"] = _engine_panels(ctx, figures)
    t = lap("learning_curve_and_shift", t)
    results["attribution"] = attribution_panel(
        out / "attribution",
        scale.attribution_cages,
        callers=scale.attribution_callers,
        duration_s=scale.attribution_duration_s,
        seed=scale.seed + UNSEEN_SEED_OFFSET + 500,
        calibration_calls=scale.attribution_calibration_calls,
        ensemble=ensembles["robot"],
        log=ctx.log,
    )
    figures["attribution"] = plots.plot_attribution(
        results["attribution"], out / "attribution.png"
    ).name
    lap("attribution", t)
    timing["total"] = time.perf_counter() - ctx.t0
    results["checks"] = acceptance_checks(results)
    results["notes"] += [
        f"Simulated data ({', '.join(DATASETS)}); each dataset split once into a "
        f"train+validation file ({1 - scale.test_fraction:.0%}; split 8:1:1 into train, "
        f"validation (checkpoints) and calibration (ensemble_t) calls) and a held-out "
        f"split ({scale.test_fraction:.0%}). The test calls of every table are simulated "
        "apart, at positions no model trained on (robot and animal: walks from another "
        "seed; speaker: the grid offset by half a cell); all methods are scored on the "
        "same test calls. The speaker's held-out split sits at training positions and is "
        "reported only as recall.",
        f"Models: preset '{scale.preset}', ensembles of {scale.n_members} x {scale.epochs} "
        f"epochs; 'single' is ensemble member 0. The dataset matrix uses single models "
        f"(member 0; 'all' = one member on the three training sets, {scale.epochs} epochs); "
        f"the stimulus matrix and scaling models are single members trained "
        f"{scale.aux_epochs} epochs.",
        "Baselines search a 1 mm floor grid at the median training source height with "
        "the simulator's speed of sound; MUSE's confidence is its normalized power map "
        "(not a probability), so ECE is reported for the models only.",
        "The fingerprint lookup's reference is member 0's training calls.",
    ]
    write_results_json(results, out / "results.json")
    write_report_md(results, figures, out / "report.md")
    ctx.log(f"wrote {out / 'report.md'}")
    return results
