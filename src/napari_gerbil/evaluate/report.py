"""Write benchmark results: ``results.json`` (every number) and ``report.md`` (tables + plots)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.io.atomic import atomic_write_text

#: Order of methods in tables.
METHOD_ORDER = (
    "single",
    "ensemble",
    "ensemble_t",
    "muse",
    "muse_jackknife",
    "srp_phat",
    "gcc_phat",
    "fingerprint",
)
#: Order of datasets in tables.
DATASET_ORDER = ("speaker", "robot", "animal")


def jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays (nested in dicts/lists) to plain JSON types; NaN -> None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_results_json(results: dict, path: str | os.PathLike) -> Path:
    """Write ``results`` as indented JSON, atomically."""
    path = Path(path)
    atomic_write_text(path, json.dumps(jsonable(results), indent=2, sort_keys=False) + "\n")
    return path


def _fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _metric_table(results: dict, metric: str, digits: int = 1) -> str:
    datasets = [d for d in DATASET_ORDER if isinstance(results.get(d), dict)]
    methods = [m for m in METHOD_ORDER if any(m in results[d].get(metric, {}) for d in datasets)]
    rows = [
        [d] + [_fmt(results[d].get(metric, {}).get(m), digits) for m in methods] for d in datasets
    ]
    return _table(["dataset"] + methods, rows)


def _matrix_table(matrix: dict) -> str:
    rows = [
        [label] + [_fmt(v) for v in values]
        for label, values in zip(matrix["train"], matrix["median_error_mm"], strict=True)
    ]
    return _table(["train \\ test"] + list(matrix["test"]), rows)


def acceptance_checks(results: dict) -> list[dict]:
    """The issue's two claims on the reverberant speaker test set, as measured."""
    speaker = results.get("speaker", {})
    med = speaker.get("median_error_mm", {})
    ece = speaker.get("ece", {})
    intervals = speaker.get("bootstrap_95", {})
    checks = []
    if "ensemble" in med and "muse" in med:
        ratio = med["muse"] / med["ensemble"] if med["ensemble"] > 0 else float("inf")
        measured = f"MUSE {med['muse']:.1f} mm / ensemble {med['ensemble']:.1f} mm = {ratio:.2f}x"
        if "muse_over_ensemble_median" in intervals:
            low, high = intervals["muse_over_ensemble_median"]
            measured += f" (95% bootstrap interval {low:.2f}-{high:.2f}x)"
        checks.append(
            {
                "claim": "speaker: ensemble median error >= 3x below MUSE",
                "measured": measured,
                "passed": bool(ratio >= 3.0),
            }
        )
    if "ensemble" in ece and "single" in ece:
        measured = f"ensemble {ece['ensemble']:.3f} vs single {ece['single']:.3f}"
        if "ece_ensemble_minus_single" in intervals:
            low, high = intervals["ece_ensemble_minus_single"]
            measured += (
                f" (difference {ece['ensemble'] - ece['single']:+.3f}, 95% bootstrap "
                f"interval {low:+.3f} to {high:+.3f})"
            )
        checks.append(
            {
                "claim": "speaker: ensemble ECE below single-model ECE",
                "measured": measured,
                "passed": bool(ece["ensemble"] < ece["single"]),
            }
        )
    return checks


def _recall_section(results: dict) -> list[str]:
    """How much of each test set a lookup of the training calls can solve."""
    rows = [
        [d, _fmt(results[d]["test_calls_at_training_positions"], 2),
         _fmt(results[d]["median_nearest_training_position_mm"]),
         _fmt(results[d]["fingerprint_median_similarity"], 2),
         _fmt(results[d]["median_error_mm"].get("fingerprint"))]
        for d in DATASET_ORDER
        if "test_calls_at_training_positions" in results.get(d, {})
    ]  # fmt: skip
    if not rows:
        return []
    grid = results.get("speaker", {}).get("on_grid_recall")
    recall_lines = []
    if grid:
        med = grid["median_error_mm"]
        recall_lines = [
            "", f"On the speaker grid's own held-out calls ({grid['n_test_calls']}; "
            f"{_fmt(grid['test_calls_at_training_positions'], 2)} of them at a training "
            "position) the same models score ensemble "
            f"{_fmt(med.get('ensemble'))} mm, single {_fmt(med.get('single'))} mm and the "
            f"lookup {_fmt(med.get('fingerprint'))} mm: recall of trained positions, not "
            "localization, so no headline number uses them.",
        ]  # fmt: skip
    return [
        "", "## Recall or localization?", "",
        "`fingerprint` is no localizer: it returns the position of the training call whose "
        "cross-spectral phases match best (`napari_gerbil.baselines.fingerprint`). Where the "
        "test calls sit at training positions it shows how far recalling the cage's response "
        "goes; where they do not, it fails.", "",
        _table(["dataset", "test calls at a training position", "median distance to the "
                "nearest training position (mm)", "median match similarity",
                "fingerprint median error (mm)"], rows),
        *recall_lines,
    ]  # fmt: skip


def _engine_panel_lines(results: dict) -> list[str]:
    """Tables of the learning curve and the shift matrix (data engine panels)."""
    out: list[str] = []
    curve = results.get("learning_curve")
    if curve:
        out += ["## Learning curve (tables)", "", "| distinct positions | median (mm) | p90 (mm) |"]
        out += ["|---|---|---|"]
        for p in curve["points"]:
            out.append(
                f"| {p['positions']} | {p['median_error_mm']:.1f} | {p['p90_error_mm']:.1f} |"
            )
        fit = curve["power_law"]
        if fit["b"] is not None:
            need = [
                "n/a" if v is None else f"{v:.3g}"
                for v in (fit["positions_for_10mm"], fit["positions_for_5mm"])
            ]
            out += [
                "",
                f"Power law: error = {fit['a']:.3g} * n^-{fit['b']:.3f}; 10 mm needs ~{need[0]} "
                f"positions, 5 mm ~{need[1]} (extrapolated).",
            ]
        out.append("")
    shift = results.get("shift")
    if shift:
        out += ["## Shift matrix", "", "| test cage | median (mm) | x in-distribution |"]
        out += ["|---|---|---|"]
        for name, row in shift["rows"].items():
            ratio = row["ratio_to_in_distribution"]
            ratio_text = "n/a" if ratio is None else f"{ratio:.2f}"
            out.append(f"| {name} | {row['median_error_mm']:.1f} | {ratio_text} |")
        out.append("")
    return out


def write_report_md(results: dict, figures: dict[str, str], path: str | os.PathLike) -> Path:
    """Write the Markdown report; ``figures`` maps a figure key to a path relative to it."""
    path = Path(path)
    scale = results.get("scale", {})
    out = [f"# napari-gerbil benchmark ({results.get('scale_name', '?')})", ""]
    if results.get("command"):
        out += [f"Command: `{results['command']}`", ""]
    out += [
        "Scale: " + ", ".join(f"{k} = {v}" for k, v in scale.items()),
        "",
        f"Wall time {_fmt(results.get('timing_s', {}).get('total'), 0)} s on "
        f"{results.get('machine', {}).get('description', 'this machine')}.",
        "",
        "## Acceptance checks (reverberant speaker test set)",
        "",
    ]
    for check in results.get("checks", []):
        mark = "PASS" if check["passed"] else "FAIL"
        out.append(f"- **{mark}** {check['claim']}: {check['measured']}")
    if any("bootstrap" in check["measured"] for check in results.get("checks", [])):
        out += ["", "Intervals resample the test calls 2000 times, the same calls for both "
                "methods (paired): how far the comparison could move on another test set "
                "of this size."]  # fmt: skip
    temps = {d: results[d]["ensemble_t_temperature"] for d in DATASET_ORDER
             if "ensemble_t_temperature" in results.get(d, {})}  # fmt: skip
    if temps:
        out += ["", "`single` is ensemble member 0; `ensemble_t` is the ensemble with one "
                "covariance scale (temperature) fitted on held-out calibration calls: "
                + ", ".join(f"{d} {t:.2f}" for d, t in temps.items()) + "."]  # fmt: skip
    out += _recall_section(results)
    out += ["", "## Median error (mm) on each dataset's test calls (new positions)", ""]
    out += [_metric_table(results, "median_error_mm"), ""]
    out += ["## 90th-percentile error (mm)", "", _metric_table(results, "p90_error_mm"), ""]
    out += ["## Calibration: ECE (mean |coverage - nominal|)", ""]
    out += [_metric_table(results, "ece", 3), ""]
    out += ["## Coverage of the 95% sets", "", _metric_table(results, "coverage_95", 3), ""]
    out += ["## Median area of the 95% sets (mm^2)", ""]
    out += [_metric_table(results, "median_set_area_mm2", 0), ""]
    out += ["## Throughput (calls/s)", "", _metric_table(results, "calls_per_s", 1), ""]
    titles = {
        "error_cdf": "Error CDFs (Fig. 2D)",
        "calibration": "Calibration curves, single vs ensemble (Fig. 2E)",
        "confidence_sets": "Example 95% sets, single vs ensemble (Fig. 2B/C)",
        "stimulus_matrix": "Stimulus x stimulus generalization (Fig. 3A)",
        "dataset_matrix": "Dataset x dataset generalization (Fig. 3B)",
        "scaling": "Error vs training-set size (Fig. 3C)",
        "learning_curve": "Learning curve: distinct simulated positions, tested on new ones",
        "attribution": "Attribution on simulated sessions, by distance between the animals",
    }

    def order(key: str) -> tuple:
        base, _, suffix = key.partition(":")
        rank = list(titles).index(base) if base in titles else len(titles)
        sub = DATASET_ORDER.index(suffix) if suffix in DATASET_ORDER else len(DATASET_ORDER)
        return rank, sub, key

    for key in sorted(figures, key=order):
        base, _, suffix = key.partition(":")
        out += [
            f"## {titles.get(base, base)} {suffix}".rstrip(),
            "",
            f"![{key}]({figures[key]})",
            "",
        ]
        matrix = results.get(base) if base in ("stimulus_matrix", "dataset_matrix") else None
        if matrix:
            out += [_matrix_table(matrix), ""]
        if base == "scaling" and results.get("scaling", {}).get("fit"):
            fit = results["scaling"]["fit"]
            out += [
                f"Power-law fit: error = {fit['a']:.3g} * n^({-fit['b']:.3f})"
                f" (R2 = {fit['r2']:.3f}).",
                "",
            ]
    out += _engine_panel_lines(results)
    out += _attribution_lines(results)
    for note in results.get("notes", []):
        out.append(f"- {note}")
    atomic_write_text(path, "\n".join(out).rstrip() + "\n")
    return path


def _attribution_lines(results: dict) -> list[str]:
    """The attribution panel as a table: every room x caller row, worst first."""
    panel = results.get("attribution")
    if not panel:
        return []
    out = ["## Attribution: which animal called (simulated sessions, new seeds)", "",
           f"Default method: **{panel['default_method']}** (assigned at p >= 0.95).", "",
           "| room / caller | animals | method | assigned | right | MUSE median (mm) |",
           "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for cage, row in panel["physics"].items():
        for k in panel["n_animals"]:
            for method, r in row[f"{k}_animals"].items():
                out.append(
                    f"| {cage} | {k} | {method} | {_fmt(100 * r['assigned'], 0)}% | "
                    f"{_fmt(100 * r['right'], 0)}% | {_fmt(row['muse_median_error_mm'], 0)} |"
                )
    worst = panel.get("worst", {})
    if worst:
        out += ["", "Worst row with plausible callers, per method: " + "; ".join(
            f"{m} in {w['row']} ({_fmt(100 * w['assigned'], 0)}% assigned, "
            f"{_fmt(100 * w['right'], 0)}% right)" for m, w in worst.items()) + "."]  # fmt: skip
    return out + [""]
