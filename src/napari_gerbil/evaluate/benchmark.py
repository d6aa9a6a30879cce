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

This module runs the whole; its parts live in :mod:`~napari_gerbil.evaluate.bench_scales`
(the sizes), :mod:`~napari_gerbil.evaluate.bench_data` (datasets, splits, training) and
:mod:`~napari_gerbil.evaluate.bench_panels` (each panel), re-exported here.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.evaluate import plots
from napari_gerbil.evaluate.attribution_panel import attribution_panel
from napari_gerbil.evaluate.bench_data import (
    _Context,
    simulate_datasets,
    simulate_unseen,
    split_dataset,
    write_subset,
)
from napari_gerbil.evaluate.bench_panels import (
    MODEL_METHODS,
    _confidence_examples,
    _dataset_matrix,
    _engine_panels,
    _evaluate_dataset,
    _on_grid_recall,
    _scaling,
    _stimulus_matrix,
)
from napari_gerbil.evaluate.bench_scales import (
    DATASETS,
    MIN_GROUP_CALLS,
    SCALES,
    UNSEEN_SEED_OFFSET,
    BenchmarkScale,
)
from napari_gerbil.evaluate.report import acceptance_checks, write_report_md, write_results_json
from napari_gerbil.io.vcl import VCLDataset

__all__ = [
    "DATASETS",
    "MIN_GROUP_CALLS",
    "MODEL_METHODS",
    "SCALES",
    "UNSEEN_SEED_OFFSET",
    "BenchmarkScale",
    "run_benchmark",
    "simulate_datasets",
    "simulate_unseen",
    "split_dataset",
    "write_subset",
]


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
