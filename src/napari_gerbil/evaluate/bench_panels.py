"""The benchmark's panels, each from its trained models and test calls.

The main comparison on each dataset, the 95%-set examples, the stimulus and dataset
matrices, the scaling law and the engine panels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.evaluate import plots, runner
from napari_gerbil.evaluate.bench_data import _Context, _predict, write_subset
from napari_gerbil.evaluate.bench_scales import DATASETS, MIN_GROUP_CALLS
from napari_gerbil.evaluate.metrics import paired_bootstrap_interval, power_law_fit
from napari_gerbil.io.vcl import VCLDataset


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
