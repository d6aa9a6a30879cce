"""Responsiveness of the review window, printed as figures.

Measures, in a real napari window (run under a display or ``xvfb-run``):

1. a frame step of the time slider, including the spectrogram and overlay update
   (playhead-only steps and steps that recompute the spectrogram window);
2. opening a 1-hour session (4 channels at 125 kHz, video, poses, 3600 localized calls):
   everything is lazy, so this does not depend on the recording's length;
3. review keys pressed on the canvas as a user does (Qt key events through the window's
   shortcuts): ``n`` (next call: table, video, spectrogram, overlays) and ``2``
   (attribute: saved to the session file, table row and overlays redrawn);
4. localizing one call interactively (worker start -> set drawn), first and later calls.

Usage::

    scripts/with_display.sh .venv/bin/python scripts/bench_gui.py [--model DIR] [--out DIR]

The 1-hour session is generated once under ``--out`` (default benchmark_out/gui): the
audio is a chunked HDF5 dataset whose unwritten chunks cost no disk space (reads
return zeros there), with noise and calls written near the calls benchmarked.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import h5py
import numpy as np

RATE_HZ = 125000.0
HOUR_S = 3600.0
FPS = 30.0
N_CALLS = 3600


def make_hour_session(folder: Path) -> Path:
    """Write (once) a 1-hour session with 3600 calls and fake predictions."""
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.io.audio import AudioSource
    from napari_gerbil.io.session import (
        AudioRef,
        CallTable,
        FileRef,
        PredictedAttribution,
        Predictions,
        Session,
        save_session,
    )
    from napari_gerbil.io.video import write_video

    path = folder / "hour.gerbil.h5"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n_samples = int(HOUR_S * RATE_HZ)
    starts = np.sort(rng.choice(np.arange(1, n_samples // 12500 - 2), N_CALLS, replace=False))
    starts = starts * 12500
    stops = starts + rng.integers(1500, 5000, N_CALLS)
    with h5py.File(folder / "hour_audio.h5", "w") as f:
        ds = f.create_dataset(
            "audio", shape=(n_samples, 4), dtype="f4", chunks=(65536, 4), fillvalue=0.0
        )
        f.attrs["sample_rate_hz"] = RATE_HZ
        for s in starts[:40]:  # noise + a tone around the first calls only
            a, b = max(0, s - 62500), s + 62500
            block = 0.002 * rng.standard_normal((b - a, 4)).astype("f4")
            t = np.arange(5000) / RATE_HZ
            block[s - a : s - a + 5000] += 0.2 * np.sin(2 * np.pi * 35000 * t)[:, None]
            ds[a:b] = block
    n_frames = int(HOUR_S * FPS)
    cage = default_cage()
    corners = cage.corners_mm()
    arena = cage.with_corners_px(np.c_[(200 - corners[:, 1]) * 0.2, (corners[:, 0] + 300) * 0.2])
    frame = np.full((80, 120, 3), 80, np.uint8)
    print(f"encoding a {n_frames}-frame video (once)...", flush=True)
    write_video(folder / "hour.mp4", (frame for _ in range(n_frames)), fps=FPS)
    t = np.arange(n_frames) / FPS
    xy_mm = np.stack(
        [
            np.stack([200 * np.cos(t / 7), 120 * np.sin(t / 5)], axis=1),
            np.stack([-200 * np.sin(t / 9), 120 * np.cos(t / 4)], axis=1),
        ],
        axis=1,
    )
    rc = arena.to_pixels(xy_mm.reshape(-1, 2)).reshape(n_frames, 2, 1, 2)
    with h5py.File(folder / "hour_poses.h5", "w") as f:
        f["tracks"] = np.transpose(rc[..., ::-1], (1, 3, 2, 0))
        f["node_names"] = np.array([b"nose"])
        f["track_names"] = np.array([b"A", b"B"])
    predictions = Predictions.empty(N_CALLS, 4)
    predictions.member_means_mm[:] = rng.uniform(-200, 200, (N_CALLS, 1, 2))
    predictions.member_means_mm += rng.normal(0, 15, predictions.member_means_mm.shape)
    predictions.member_chol_mm[:] = np.eye(2) * 20
    predictions.point_mm[:] = predictions.member_means_mm.mean(axis=1)
    predictions.set_area_mm2[:] = 5000.0
    probs = rng.dirichlet([1, 1], N_CALLS)
    session = Session(
        audio=AudioRef.from_source(AudioSource.open(folder / "hour_audio.h5")),
        arena=arena,
        calls=CallTable.from_samples(starts, stops),
        video=FileRef.from_file(folder / "hour.mp4"),
        tracks=FileRef.from_file(folder / "hour_poses.h5"),
        fps=FPS,
        animal_names=["A", "B"],
        predictions=predictions,
        predicted=PredictedAttribution(probs.argmax(axis=1), probs),
    )
    return save_session(session, path)


def _ms(values) -> str:
    """Wall-clock and CPU time of (wall_s, cpu_s) pairs.

    On a loaded machine the wall clock mostly measures waiting; this process's CPU time
    is the work done.
    """
    wall = [1000 * w for w, _ in values]
    cpu = [1000 * c for _, c in values]
    return (
        f"median {statistics.median(wall):.1f} ms, max {max(wall):.1f} ms"
        f" (CPU median {statistics.median(cpu):.1f} ms) (n={len(values)})"
    )


def _timed(action) -> tuple[float, float]:
    """(wall s, process CPU s) of ``action()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    """Open a long session in napari, time the actions, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="ensemble (default: demo)")
    parser.add_argument("--out", type=Path, default=Path("benchmark_out/gui"))
    parser.add_argument("--no-localize", action="store_true", help="skip the localize part")
    args = parser.parse_args(argv)

    from napari.qt import QtViewer
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    import napari
    from napari_gerbil._napari._widget import ReviewWidget

    path = make_hour_session(args.out)
    app = napari.qt.get_qapp()
    viewer = napari.Viewer(show=True)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    window = widget.window()
    window.activateWindow()  # the review keys are shortcuts of the active window
    app.processEvents()
    canvas = window.findChild(QtViewer).canvas.native

    t0 = time.perf_counter()
    widget.open_session(path)
    app.processEvents()
    open_s = time.perf_counter() - t0
    print(f"open 1-hour session ({N_CALLS} calls, {int(HOUR_S * FPS)} frames): {open_s:.2f} s")

    def step_to(frame: int) -> tuple[float, float]:
        def step():
            viewer.dims.set_current_step(0, frame)
            app.processEvents()  # paints the video canvas and the spectrogram (idle draws)

        return _timed(step)

    widget.select_call(0)
    app.processEvents()
    first = viewer.dims.current_step[0]
    # back and forth inside the window (+-5 frames = +-0.17 s of its 0.5 s)
    offsets = [*range(1, 6), *range(4, -6, -1), *range(-4, 1)]
    playhead = [step_to(first + k) for k in offsets]
    recompute = [step_to(first + 10 * k) for k in range(1, 11)]  # 1/3 s jumps
    far = [step_to(int(f)) for f in np.linspace(1000, HOUR_S * FPS - 10, 8)]
    widget.select_call(N_CALLS // 2)
    app.processEvents()

    def key(code):
        def press():
            QTest.keyClick(canvas, code)  # a real key event: shortcut -> review action
            app.processEvents()

        return press

    following = [_timed(key(Qt.Key.Key_N)) for _ in range(10)]
    saves = widget.review.n_saves
    assigning = [_timed(key(Qt.Key.Key_2)) for _ in range(10)]
    if widget.review.n_saves != saves + 10:
        raise SystemExit("the 2 key did not reach the review (is the window active?)")
    print(f"frame step, playhead only:             {_ms(playhead)}")
    print(f"frame step, spectrogram window redone: {_ms(recompute)}")
    print(f"jump anywhere in the hour (seek):      {_ms(far)}")
    print(f"key n (next call):                     {_ms(following)}")
    print(f"key 2 (attribute, saved, redrawn):     {_ms(assigning)}")

    if args.no_localize:
        viewer.close()
        return 0
    if args.model is not None:
        widget.model_section.model_dir.setText(str(args.model))
    else:
        building = widget.model_section.use_demo_model()
        while building is not None and widget.jobs.busy():
            app.processEvents()
            time.sleep(0.05)

    def localize_one():
        if widget.model_section.localize([index]) is None:
            raise SystemExit("localize could not start (no ensemble)")
        while widget.jobs.busy():
            app.processEvents()
            time.sleep(0.002)
        app.processEvents()

    times = []
    for index in (0, 1, 2, 3):
        widget.select_call(index)
        times.append(_timed(localize_one))
    print(f"localize one call, first (loads torch/model): {1000 * times[0][0]:.0f} ms")
    print(f"localize one call, later:                     {_ms(times[1:])}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
