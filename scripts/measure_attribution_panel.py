"""Measure attribution under the physics panel (room x caller) with a model and its scorer.

    .venv/bin/python scripts/measure_attribution_panel.py --model demo --out panel_out \
        [--rooms paper paper-diffuse omni-corner] [--callers plausible cardioid omni] \
        [--duration 120] [--seed 500]

Sessions are simulated with seeds no model or calibration saw (reused from ``--out`` when
their settings match); every method is calibrated on fresh engine calls in each room
(plausible callers) and scored on the same session calls. Prints one line per row and
method, worst plausible row first, by distance between animals and by call type, and
writes ``panel.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_gerbil.evaluate.attribution_panel import attribution_panel


def main() -> None:
    """Run the panel and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="model directory or 'demo'")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rooms", nargs="+", default=["paper", "paper-diffuse", "omni-corner"])
    parser.add_argument("--callers", nargs="+", default=["plausible"])
    parser.add_argument("--animals", nargs="+", type=int, default=[2, 3])
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=500)
    parser.add_argument("--calibration-calls", type=int, default=1024)
    args = parser.parse_args()
    from napari_gerbil.cli._common import resolve_model_dir

    model = resolve_model_dir(args.model)
    t0 = time.perf_counter()
    panel = attribution_panel(
        args.out, args.rooms, callers=args.callers, n_animals=args.animals,
        duration_s=args.duration, seed=args.seed, calibration_calls=args.calibration_calls,
        ensemble=model,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    print(f"\n{len(panel['physics'])} rows in {wall:.0f} s; worst first (default method "
          f"{panel['default_method']}):")  # fmt: skip
    for name, row in panel["physics"].items():
        for k in args.animals:
            for method, r in row[f"{k}_animals"].items():
                dist = "  ".join(
                    f"{b}: {_pct(v['assigned'])}/{_pct(v['right'])} (n {v['n']})"
                    for b, v in r["by_distance_cm"].items()
                )
                print(f"{name:28s} {k} animals {method:9s} assigned {_pct(r['assigned']):>4s}"
                      f" right {_pct(r['right']):>4s} n {r['n']:4d} | {dist}")  # fmt: skip
        print(f"{name:28s} MUSE median error {row['muse_median_error_mm']:.0f} mm")
    print("worst plausible row per method:", json.dumps(panel["worst"]))
    (args.out / "panel.json").write_text(json.dumps(panel, indent=1, default=_plain) + "\n")


def _pct(x) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.0f}%"


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    main()
