r"""Benchmarks of the models: cost, latency, ensemble speed, grid resolution, fast vs paper.

Usage::

    python scripts/bench_models.py                       # cost, latency, ensemble, grid
    python scripts/bench_models.py --compare \
        --speaker data/speaker.h5 --robot data/robot.h5  # fast vs paper median error

Prints one figure per line. Timings are wall-clock medians on this machine's CPU with
``--threads`` torch threads; state the machine and its load with the numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_gerbil.io.arena import default_cage
from napari_gerbil.model.confidence import confidence_sets
from napari_gerbil.model.ensemble import Ensemble, ModelMetadata
from napari_gerbil.model.gaussian import label_scale_mm
from napari_gerbil.model.mixture import MixturePrediction
from napari_gerbil.model.network import build_network, count_macs, count_parameters
from napari_gerbil.model.presets import PRESETS, get_preset

ARENA_MM = default_cage().dims_mm


def _median_time_s(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_presets(repeats: int) -> None:
    """Parameters, GMAC and CPU latency of every preset."""
    x = torch.randn(1, 4, 8192)
    for name, cfg in PRESETS.items():
        net = build_network(cfg).eval()
        reps = 3 if name == "paper" else repeats
        with torch.inference_mode():
            latency = _median_time_s(lambda net=net: net(x), reps)
        print(
            f"preset={name} params={count_parameters(cfg)} gmac={count_macs(cfg) / 1e9:.4f} "
            f"cpu_latency_ms_per_call={latency * 1e3:.1f}"
        )


def _ensemble(preset: str, n_members: int) -> Ensemble:
    torch.manual_seed(0)
    cfg = get_preset(preset)
    members = [build_network(cfg) for _ in range(n_members)]
    meta = ModelMetadata(125000.0, 4, tuple(ARENA_MM), label_scale_mm(ARENA_MM), 8192)
    return Ensemble(members, meta)


def _realistic_mixture(rng, n_calls: int, n_members: int = 10) -> MixturePrediction:
    """Members scattered ~10 mm around a source with 5-15 mm standard deviations."""
    centre = rng.uniform([-250, -150], [250, 150], (n_calls, 1, 2))
    means = centre + rng.normal(0, 10, (n_calls, n_members, 2))
    chol = np.zeros((n_calls, n_members, 2, 2))
    chol[..., 0, 0] = rng.uniform(5, 15, (n_calls, n_members))
    chol[..., 1, 1] = rng.uniform(5, 15, (n_calls, n_members))
    chol[..., 1, 0] = rng.normal(0, 3, (n_calls, n_members))
    return MixturePrediction(means, chol)


def bench_ensemble(repeats: int, n_members: int = 10, batch: int = 64) -> None:
    """One call end to end (network + 95% set + polygon), and batch throughput."""
    ens = _ensemble("fast", n_members)
    rng = np.random.default_rng(0)
    call = rng.standard_normal((1, 8192, 4)).astype(np.float32)
    # Untrained members predict arbitrary Gaussians; time the set on a realistic mixture.
    mixture = _realistic_mixture(rng, 1, n_members)

    def one_call():
        ens.predict(call)
        cs = confidence_sets(mixture, ARENA_MM, 0.95)[0]
        return cs.polygons_mm

    t = _median_time_s(one_call, repeats)
    print(f"ensemble=fast x{n_members} one_call_with_95pct_polygon_ms={t * 1e3:.1f}")
    t_net = _median_time_s(lambda: ens.predict(call), repeats)
    t_set = _median_time_s(lambda: confidence_sets(mixture, ARENA_MM, 0.95)[0].polygons_mm, 20)
    print(f"  networks_ms={t_net * 1e3:.1f} confidence_set_and_polygon_ms={t_set * 1e3:.1f}")
    calls = rng.standard_normal((batch, 8192, 4)).astype(np.float32)
    mixtures = _realistic_mixture(rng, batch, n_members)

    def batch_run():
        ens.predict(calls, batch_size=batch)
        for cs in confidence_sets(mixtures, ARENA_MM, 0.95):
            cs.polygons_mm  # noqa: B018 - what the GUI draws

    t = _median_time_s(batch_run, max(1, repeats // 5))
    print(f"ensemble=fast x{n_members} batch={batch} throughput_calls_per_s={batch / t:.1f}")


def bench_grid(n_calls: int = 40) -> None:
    """Area error of the 95% set against a fine reference, and time, per max cell size."""
    import napari_gerbil.model.confidence as conf

    rng = np.random.default_rng(1)
    mixtures = _realistic_mixture(rng, n_calls)
    saved = conf.CELLS_PER_SD, conf.MAX_CELLS_PER_AXIS
    try:
        conf.CELLS_PER_SD, conf.MAX_CELLS_PER_AXIS = 12.0, 2000
        ref = np.array([c.area_mm2 for c in confidence_sets(mixtures, ARENA_MM, 0.95, 0.25)])
        for cells_per_sd in (1.5, 3.0, 6.0):
            for res in (1.0, 2.0, 4.0):
                conf.CELLS_PER_SD, conf.MAX_CELLS_PER_AXIS = cells_per_sd, saved[1]
                t0 = time.perf_counter()
                areas = np.array(
                    [c.area_mm2 for c in confidence_sets(mixtures, ARENA_MM, 0.95, res)]
                )
                dt = (time.perf_counter() - t0) / n_calls
                err = np.median(np.abs(areas / ref - 1))
                print(
                    f"grid cells_per_sd={cells_per_sd} max_cell_mm={res} "
                    f"median_area_error={err:.4f} ms_per_call={dt * 1e3:.2f}"
                )
    finally:
        conf.CELLS_PER_SD, conf.MAX_CELLS_PER_AXIS = saved


def compare(args: argparse.Namespace) -> None:
    """Train fast and paper with the same data and settings; median test errors."""
    from napari_gerbil.io.vcl import VCLDataset, write_vcl
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.ensembles import train_ensemble

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    speaker = VCLDataset(args.speaker)
    order = rng.permutation(speaker.n_calls)
    n_tr, n_te = args.train_calls, args.test_calls
    train_idx, test_idx = order[: int(n_tr * 1.125)], order[-n_te:]
    subset = out / "speaker_train_subset.h5"
    if not subset.exists():
        write_vcl(
            subset,
            [speaker.call_audio(int(i)) for i in train_idx],
            speaker.locations_mm[train_idx],
            node_names=speaker.node_names,
            sample_rate_hz=speaker.sample_rate_hz,
            arena_dims_mm=speaker.arena_dims_mm,
            mic_positions_mm=speaker.mic_positions_mm,
        )
    tests = {"speaker": ([speaker.call_audio(int(i)) for i in test_idx],
                         speaker.source_xy_mm(0)[test_idx])}  # fmt: skip
    if args.robot:
        robot = VCLDataset(args.robot)
        idx = rng.permutation(robot.n_calls)[:n_te]
        tests["robot"] = ([robot.call_audio(int(i)) for i in idx], robot.source_xy_mm(0)[idx])
    config = TrainingConfig(
        epochs=args.epochs,
        batch_size=16,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        split=(0.89, 0.11, 0.0),
        checkpoint_every_s=120.0,
    )
    print(
        f"compare scale: {n_tr} speaker training calls, {args.epochs} epochs, "
        f"input {args.length} samples, optimizer {args.optimizer} lr {args.lr}, "
        f"{n_te} test calls per set, CPU {torch.get_num_threads()} threads"
    )
    for preset in args.presets:
        t0 = time.perf_counter()
        model = train_ensemble(
            get_preset(preset, input_length_samples=args.length),
            config,
            [subset],
            out / f"model_{preset}",
            1,
            show_progress=False,
        )
        train_s = time.perf_counter() - t0
        ens = load_ensemble(model)
        for name, (calls, truth) in tests.items():
            pred = ens.predict(calls, batch_size=16)
            err = np.linalg.norm(pred.point_mm - truth, axis=-1)
            centre = np.linalg.norm(truth, axis=-1)
            print(
                f"compare preset={preset} test={name} median_error_mm={np.median(err):.1f} "
                f"centre_guess_mm={np.median(centre):.1f} train_s={train_s:.0f}",
                flush=True,
            )


def main() -> None:
    """Run the chosen model benchmarks."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compare", action="store_true", help="train fast and paper and compare")
    p.add_argument("--speaker", type=Path)
    p.add_argument("--robot", type=Path)
    p.add_argument("--out", default="benchmark_out/models")
    p.add_argument("--presets", nargs="+", default=["fast", "paper"])
    p.add_argument("--train-calls", type=int, default=150)
    p.add_argument("--test-calls", type=int, default=100)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--length", type=int, default=8192)  # fast (SRP map) needs the full input
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=0.001)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare:
        compare(args)
        return
    bench_presets(args.repeats)
    bench_ensemble(args.repeats)
    bench_grid()


if __name__ == "__main__":
    main()
