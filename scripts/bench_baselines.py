"""Throughput and accuracy of the classical baselines on pure-delay calls.

Usage: ``python scripts/bench_baselines.py [--calls 128] [--resolution-mm 1.0]``.
Prints calls/s per method (all cores the process may use) and the median error.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from napari_gerbil.baselines import METHODS, localize, speed_of_sound_m_s
from napari_gerbil.baselines.synthetic import delayed_chirps

MICS_MM = np.array(
    [[-280.0, -180.0, 340.0], [280.0, -180.0, 340.0], [280.0, 180.0, 340.0], [-280.0, 180.0, 340.0]]
)


def main() -> None:
    """Run the baseline benchmarks and print one figure per line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--resolution-mm", type=float, default=1.0)
    parser.add_argument("--snr-db", type=float, default=20.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    src = np.c_[rng.uniform(-280, 280, args.calls), rng.uniform(-180, 180, args.calls)]
    src = np.c_[src, np.zeros(args.calls)]
    c = speed_of_sound_m_s(20.0)
    audio = delayed_chirps(src, MICS_MM, 125_000, c, args.samples, snr_db=args.snr_db, rng=rng)
    print(
        f"{args.calls} calls x {args.samples} samples x 4 ch, grid {args.resolution_mm} mm, "
        f"{os.cpu_count()} CPU cores visible"
    )
    for method in METHODS:
        opts = dict(resolution_mm=args.resolution_mm)
        localize(method, audio[:4], MICS_MM, 125_000, (600, 400, 350), **opts)  # warm caches
        t0 = time.perf_counter()
        res = localize(method, audio, MICS_MM, 125_000, (600, 400, 350), **opts)
        dt = time.perf_counter() - t0
        err = np.linalg.norm(res.point_mm - src[:, :2], axis=1)
        print(
            f"{method:15s} {args.calls / dt:7.1f} calls/s   median error {np.median(err):.2f} mm"
            f"   p90 {np.percentile(err, 90):.2f} mm"
        )


if __name__ == "__main__":
    main()
