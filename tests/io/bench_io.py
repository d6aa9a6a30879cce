"""Data-layer figures (not a test): ``python tests/io/bench_io.py [--calls N]``.

Prints VCL write / random-read / validate throughput and memory, session save/load
time for a large session, and .slp pose loading (fast path vs sleap-io).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_vcl(folder: Path, n_calls: int, length: int) -> None:
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.io.vcl import VCLDataset, VCLWriter, validate_vcl

    cage = default_cage()
    rng = np.random.default_rng(0)
    call = rng.standard_normal((length, 4)).astype(np.float32)
    path = folder / "bench.h5"

    def write():
        with VCLWriter(
            path,
            4,
            node_names=["nose"],
            sample_rate_hz=125000,
            arena_dims_mm=cage.dims_mm,
            mic_positions_mm=cage.mic_positions_mm,
        ) as w:
            for i in range(n_calls):
                w.append(call, [[(i % 500) - 250.0, 0.0]], "dfm")

    _, t_write = _timed(write)
    mb = path.stat().st_size / 1e6
    print(
        f"VCL write: {n_calls} calls x {length} x 4 float32 = {mb:.0f} MB "
        f"in {t_write:.2f} s ({mb / t_write:.0f} MB/s)"
    )
    ds = VCLDataset(path)
    order = rng.permutation(n_calls)[:2000]
    _, t_read = _timed(lambda: [ds.call_audio(int(i)) for i in order])
    print(f"VCL random call reads: {len(order) / t_read:.0f} calls/s")
    tracemalloc.start()
    _, t_val = _timed(lambda: validate_vcl(path))
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    print(
        f"validate_vcl: {t_val:.2f} s ({mb / t_val:.0f} MB/s), peak traced memory "
        f"{peak:.0f} MB for a {mb:.0f} MB file"
    )


def bench_session(folder: Path, n_calls: int) -> None:
    import h5py

    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.io.audio import AudioSource
    from napari_gerbil.io.session import (
        AudioRef,
        CallTable,
        PredictedAttribution,
        Predictions,
        Session,
        load_session,
        save_session,
    )

    audio = folder / "rec.h5"
    with h5py.File(audio, "w") as f:
        f.create_dataset("audio", (n_calls * 1000, 4), dtype=np.float32)
        f.attrs["sample_rate_hz"] = 125000.0
    rng = np.random.default_rng(1)
    m = 10
    means = rng.uniform(-250, 250, (n_calls, m, 2))
    probs = rng.dirichlet(np.ones(3), n_calls)
    s = Session(
        audio=AudioRef.from_source(AudioSource.open(audio)),
        arena=default_cage(),
        calls=CallTable.from_samples(np.arange(n_calls) * 1000, np.arange(n_calls) * 1000 + 500),
        animal_names=["a", "b", "c"],
        fps=30.0,
        predictions=Predictions(
            means.mean(1), means, np.tile(np.eye(2), (n_calls, m, 1, 1)), np.ones(n_calls), "v1"
        ),
        predicted=PredictedAttribution(probs.argmax(1), probs),
    )
    path = folder / "bench.gerbil.h5"
    save_session(s, path)
    times = [_timed(lambda: save_session(s, path))[1] for _ in range(5)]
    _, t_load = _timed(lambda: load_session(path))
    print(
        f"session ({n_calls} calls, {m} members, {path.stat().st_size / 1e6:.1f} MB): "
        f"save (atomic, fsync) median {1000 * np.median(times):.0f} ms, "
        f"load {1000 * t_load:.0f} ms"
    )


def bench_slp(folder: Path, n_frames: int) -> None:
    import sleap_io as sio

    from napari_gerbil.io.tracks import load_poses

    rng = np.random.default_rng(2)
    skeleton = sio.Skeleton(["nose", "head", "body", "tail"])
    video = sio.Video(filename="v.mp4", open_backend=False)
    tracks = [sio.Track(f"a{i}") for i in range(3)]
    pts = rng.uniform(0, 500, (n_frames, 3, 4, 2))
    frames = [
        sio.LabeledFrame(
            video=video,
            frame_idx=k,
            instances=[
                sio.PredictedInstance.from_numpy(
                    pts[k, t],
                    skeleton=skeleton,
                    track=tracks[t],
                    score=1.0,
                    point_scores=np.ones(4),
                )
                for t in range(3)
            ],
        )
        for k in range(n_frames)
    ]
    path = folder / "bench.slp"
    sio.save_slp(sio.Labels(frames, videos=[video], skeletons=[skeleton], tracks=tracks), path)
    poses, t_fast = _timed(lambda: load_poses(path))
    ref, t_sio = _timed(lambda: sio.load_slp(str(path), lazy=True).numpy())
    assert np.array_equal(poses.xy_px.astype(np.float32), ref, equal_nan=True)
    print(
        f".slp poses, {n_frames} frames x 3 tracks x 4 nodes: load_poses {t_fast:.2f} s, "
        f"sleap-io lazy Labels.numpy() {t_sio:.2f} s (identical arrays)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="VCL calls of 8192 samples")
    parser.add_argument("--session-calls", type=int, default=10000)
    parser.add_argument("--frames", type=int, default=30000, help="pose frames (30 fps)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_vcl(Path(tmp), args.calls, 8192)
        bench_session(Path(tmp), args.session_calls)
        bench_slp(Path(tmp), args.frames)


if __name__ == "__main__":
    main()
