"""Benchmark the simulator; prints the figures (no asserts).

Usage::

    python scripts/bench_simulate.py [--quick] [--workers N] [--out benchmark_out/simulate]

0. ``engine`` (the issue's figures): on one core, impulse responses per second of the
   image-source renderer and of pyroomacoustics for the same cage (flat absorption,
   reflection order 20, no air absorption for either), in the same run; then fresh
   engine calls per second (8192-sample calls as training draws them: random room,
   position, stimulus and noise) on ``--workers`` processes, and the wall time of a
   ``robot`` dataset of ``--robot-calls`` calls (default 20,000; quick: 2,000);
1. pyroomacoustics' impulse responses per second (octave-band and flat absorption) and
   calls rendered per second from an RIR bank;
2. the ``speaker`` scenario: full grid (~400 points) x 18 classes (quick: 40 points);
3. a 3-animal session of 1 hour (quick: 2 minutes), with its peak RSS;
4. only with ``--only slp``: peak RSS growth while writing 1 h of 3-animal poses to
   .slp, with simulate.slp_writer and with sleap-io's ``Labels.from_numpy`` + ``save_slp``.

Each of 2 and 3 runs in a fresh subprocess so its peak RSS is its own; the peak RSS of
its worker processes (call renderers, the video and .slp writer) is reported apart
(``peak_rss_children_mb``, the largest one). Wall and CPU seconds are both printed: on
a shared machine the wall time is inflated, the CPU time is not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _slp_writers(out: str, quick: bool) -> dict:
    """Peak RSS of writing 1 h (quick: 10 min) of 3-animal poses, ours vs sleap-io's own."""
    import numpy as np

    n_frames = 18000 if quick else 108000
    xy = np.random.default_rng(0).uniform(0, 480, (n_frames, 3, 4, 2))
    xy[::97, 1] = np.nan
    nodes, edges = ("nose", "head", "body", "tail"), (("nose", "head"), ("body", "tail"))
    tracks = ("a0", "a1", "a2")
    import sleap_io as sio

    from napari_gerbil.simulate.slp_writer import write_tracked_slp

    res = {"n_frames": n_frames}
    for name in ("napari_gerbil", "sleap_io"):  # ours first: the peak only grows
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        path = Path(out) / f"{name}.slp"
        if name == "napari_gerbil":
            write_tracked_slp(path, xy, nodes, edges, tracks, "v.mp4")
        else:
            video = sio.Video(filename="v.mp4", open_backend=False)
            skeleton = sio.Skeleton(list(nodes), edges=[list(e) for e in edges])
            labels = sio.Labels.from_numpy(
                xy, videos=[video], skeletons=skeleton, tracks=[sio.Track(t) for t in tracks]
            )
            sio.save_slp(labels, str(path))
            del labels
        res[f"{name}_s"] = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res[f"{name}_peak_rss_growth_mb"] = after - before
    return res


def _child(kind: str, out: str, workers: int, quick: bool) -> None:
    t0 = time.perf_counter()
    if kind == "slp":
        extra = _slp_writers(out, quick)
    elif kind == "speaker":
        from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

        cfg = ScenarioConfig(scenario="speaker", n_calls=40 * 18 if quick else None)
        path = simulate_dataset(Path(out) / "speaker.h5", cfg, progress=True, n_workers=workers)
        from napari_gerbil.io.vcl import VCLDataset

        extra = {"n_calls": len(VCLDataset(path)), "file_mb": path.stat().st_size / 1e6}
    else:
        from napari_gerbil.simulate.session import SessionConfig, simulate_session

        cfg = SessionConfig(n_animals=3, duration_s=120.0 if quick else 3600.0)
        paths = simulate_session(
            Path(out) / "session", cfg, name="bench", progress=True, n_workers=workers
        )
        from napari_gerbil.io.session import load_session

        extra = {
            "duration_s": cfg.duration_s,
            "n_calls": load_session(paths.session).n_calls,
            "audio_gb": paths.audio.stat().st_size / 1e9,
            "video_mb": paths.video.stat().st_size / 1e6,
            "slp_mb": paths.tracks.stat().st_size / 1e6,
        }
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker processes
    # CPU time used (workers included): what an idle machine would take at most
    cpu_s = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    info = {
        "kind": kind,
        "wall_s": wall,
        "cpu_s": cpu_s,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        # the largest worker (call renderers, the video + .slp writer)
        "peak_rss_children_mb": children.ru_maxrss / 1024,
    }
    print(json.dumps({**info, **extra}))


def _bank_throughput(out: Path) -> dict:
    import numpy as np

    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.simulate.acoustics import AcousticConfig, CageAcoustics
    from napari_gerbil.simulate.rir_bank import RIRBank, compute_rir_bank

    rng = np.random.default_rng(0)
    locs = np.c_[rng.uniform(-250, 250, 40), rng.uniform(-150, 150, 40), np.full(40, 40.0)]
    res = {}
    for label, cfg in (("octave", AcousticConfig()), ("flat", AcousticConfig(octave_bands=False))):
        acoustics = CageAcoustics(default_cage(), cfg)
        acoustics.rir(locs[0])  # imports, warm-up
        t0 = time.perf_counter()
        for loc in locs[:10]:
            acoustics.rir(loc)
        res[f"rir_per_s_{label}"] = 10 / (time.perf_counter() - t0)
    bank_path = compute_rir_bank(out / "bank.h5", CageAcoustics(default_cage()), locs)
    bank = RIRBank.open(bank_path)
    bank.sample(rng)
    n = 500
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        bank.sample(rng)  # random position + random call + fresh noise
    res["calls_per_s_from_bank"] = n / (time.perf_counter() - t0)
    # per CPU-second of one process (wall time is inflated on a shared machine);
    # N cores give about N times this
    res["calls_per_cpu_s_from_bank"] = n / (time.process_time() - c0)
    res["rir_length_samples"] = int(np.diff(bank.length_idx).max())
    return res


def _engine_worker(args: tuple) -> tuple[int, float]:
    """Render batches ``first, first + step, ...`` for ``seconds``: (calls, cpu seconds)."""
    import torch

    from napari_gerbil.simulate.engine import DataEngine

    first, step, seconds = args
    torch.set_num_threads(1)
    engine = DataEngine("paper", seed=0)
    engine.batch(first, 2)  # compile / warm up
    t0, c0, n, index = time.perf_counter(), time.process_time(), 0, first
    while time.perf_counter() - t0 < seconds:
        n += len(engine.batch(index).audio)
        index += step
    return n, time.process_time() - c0


def _engine(out: Path, workers: int, quick: bool, robot_calls: int) -> dict:
    import multiprocessing

    import numpy as np
    import pyroomacoustics as pra
    import torch

    from napari_gerbil.io.cage import builtin_cage
    from napari_gerbil.simulate.render import ImageSourceRenderer, RenderConfig, Room

    torch.set_num_threads(1)
    res: dict = {}
    # 1. one core: our renderer vs pyroomacoustics, same cage, flat absorption, order 20
    cage = builtin_cage("paper").with_changes(
        absorption={"walls": 0.22, "floor": 0.70, "ceiling": 0.92}  # the cage's 32 kHz values
    )
    room = Room.from_cage(cage)
    rng = np.random.default_rng(0)
    n = 64
    src = np.c_[rng.uniform(-250, 250, n), rng.uniform(-150, 150, n), rng.uniform(0, 100, n)]
    renderer = ImageSourceRenderer(room, 125000.0, RenderConfig(max_order=20, air_absorption=False))
    renderer.rirs(src[:2])  # compile
    t0 = time.process_time()
    renderer.rirs(src)
    res["ours_responses_per_cpu_s"] = n / (time.process_time() - t0)
    n_pra = 16 if quick else 48
    t0 = time.process_time()
    for p in src[:n_pra]:
        sim = pra.ShoeBox(
            room.dims_m, fs=125000, materials=pra.Material(0.22), max_order=20,
            air_absorption=False,
        )  # fmt: skip
        sim.add_source(room.to_room_m(p))
        sim.add_microphone_array(room.mics_m.T)
        sim.compute_rir()
    res["pyroomacoustics_responses_per_cpu_s"] = n_pra / (time.process_time() - t0)
    res["speedup_one_core"] = (
        res["ours_responses_per_cpu_s"] / res["pyroomacoustics_responses_per_cpu_s"]
    )
    # 2. engine calls on `workers` processes (domain randomization on, default cage)
    seconds = 20.0 if quick else 60.0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        t0 = time.perf_counter()
        parts = pool.map(_engine_worker, [(k, workers, seconds) for k in range(workers)])
        wall = time.perf_counter() - t0
    calls = sum(p[0] for p in parts)
    res["engine_workers"] = workers
    res["engine_calls_per_s"] = calls / seconds
    res["engine_calls_per_cpu_s_per_process"] = calls / sum(p[1] for p in parts)
    res["engine_pool_wall_s"] = wall
    # 3. a robot dataset written by `simulate` (the same renderer, batched, in a pool)
    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

    n_calls = 2000 if quick else robot_calls
    t0 = time.perf_counter()
    path = simulate_dataset(
        out / "robot.h5", ScenarioConfig(scenario="robot", n_calls=n_calls), n_workers=workers
    )
    res["robot_calls"] = n_calls
    res["robot_wall_s"] = time.perf_counter() - t0
    res["robot_file_mb"] = path.stat().st_size / 1e6
    return res


def main() -> None:
    """Run the simulator benchmarks and print one figure per line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("benchmark_out/simulate"))
    parser.add_argument(
        "--only",
        choices=("engine", "bank", "speaker", "session", "slp"),
        default=None,
        help="run one part (slp: the .slp writer's memory, ours vs sleap-io's; only on request)",
    )
    parser.add_argument("--robot-calls", type=int, default=20000)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, str(args.out), args.workers, args.quick)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"CPUs: {os.cpu_count()}  load average: {os.getloadavg()}")
    if args.only in (None, "engine"):
        result = _engine(args.out, args.workers, args.quick, args.robot_calls)
        print("engine:", json.dumps(result, indent=1))
    if args.only in (None, "bank"):
        print("bank:", json.dumps(_bank_throughput(args.out), indent=1))
    for kind in ("speaker", "session", "slp"):
        if args.only != kind and (args.only is not None or kind == "slp"):
            continue
        cmd = [sys.executable, __file__, "--child", kind, "--out", str(args.out)]
        cmd += ["--workers", str(args.workers)] + (["--quick"] if args.quick else [])
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr[-3000:])
            raise SystemExit(f"{kind} failed")
        print(f"{kind}:", result.stdout.strip().splitlines()[-1])
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
