"""Small valid inputs that the hostile-input tests and the fuzz suite then damage.

Plain functions (no fixtures) so every test folder can build what it needs:
``write_small_vcl`` (a labelled VCL file), ``train_tiny_model`` (a 1-member ``tiny``
model directory, one epoch, a few seconds), ``write_wav_session`` (a WAV recording, an
optional real video and a session file with one reviewed call) and ``write_poses_h5``
(a SLEAP analysis file).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from scipy.io import wavfile

from napari_gerbil.io.arena import default_cage
from napari_gerbil.io.vcl import write_vcl

SAMPLE_RATE_HZ = 125000.0
#: Network input length of the tiny test model (samples).
TINY_LENGTH = 1024


def write_small_vcl(
    path: str | Path, n_calls: int = 12, seed: int = 0, height_mm: float = 30.0
) -> Path:
    """A labelled VCL file: noise calls of 600-1200 samples at random floor positions."""
    cage = default_cage()
    rng = np.random.default_rng(seed)
    calls = [
        (0.1 * rng.standard_normal((int(rng.integers(600, 1200)), 4))).astype(np.float32)
        for _ in range(n_calls)
    ]
    half = cage.dims_mm[:2] / 2 - 30
    xy = rng.uniform(-half, half, size=(n_calls, 2))
    loc = np.column_stack([xy, np.full(n_calls, height_mm)])[:, None, :]
    return write_vcl(
        path,
        calls,
        loc,
        node_names=["source"],
        sample_rate_hz=SAMPLE_RATE_HZ,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
        scenario="speaker",
    )


def tiny_config(**changes):
    """One quick epoch on the CPU."""
    from napari_gerbil.training.config import TrainingConfig

    base = dict(
        epochs=1, batch_size=8, optimizer="adam", learning_rate=0.003, noise_p=0.0,
        checkpoint_every_s=0.0, device="cpu",
    )  # fmt: skip
    base.update(changes)
    return TrainingConfig(**base)


def train_tiny_model(data: str | Path, out: str | Path, **config_changes) -> Path:
    """A 1-member ``tiny`` model directory trained for one epoch on ``data``."""
    from napari_gerbil.model.presets import get_preset
    from napari_gerbil.training.ensembles import train_ensemble

    net = get_preset("tiny", input_length_samples=TINY_LENGTH)
    return train_ensemble(net, tiny_config(**config_changes), [data], out, 1, show_progress=False)


def write_wav_session(
    folder: str | Path,
    *,
    n_samples: int = 125000,
    calls=((0, 500), (1000, 2000), (5000, 9000)),
    video_frames: int | None = None,
    fps: float | None = 30.0,
    frame_times_s=None,
    reviewed: bool = True,
    tracks: Path | None = None,
    name: str = "s.gerbil.h5",
) -> Path:
    """A session on a 4-channel WAV (and optionally a real video of ``video_frames``)."""
    from napari_gerbil.io.audio import AudioSource
    from napari_gerbil.io.session import AudioRef, CallTable, FileRef, Session, save_session

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    audio = folder / "rec.wav"
    if not audio.exists():
        wavfile.write(
            audio, int(SAMPLE_RATE_HZ), rng.standard_normal((n_samples, 4)).astype(np.float32)
        )
    video = None
    if video_frames is not None:
        from napari_gerbil.io.video import write_video

        video_path = folder / "video.mp4"
        write_video(video_path, np.zeros((video_frames, 32, 32, 3), np.uint8), fps=fps or 30.0)
        video = FileRef.from_file(video_path)
    start, stop = np.array(calls, dtype=np.int64).reshape(-1, 2).T
    s = Session(
        audio=AudioRef.from_source(AudioSource.open(audio)),
        arena=default_cage(),
        calls=CallTable.from_samples(start, stop),
        video=video,
        tracks=None if tracks is None else FileRef.from_file(tracks),
        fps=fps,
        frame_times_s=None if frame_times_s is None else np.asarray(frame_times_s, float),
        animal_names=["red", "blue"],
    )
    if reviewed:
        s.set_user_attribution(1, 0, now=1.7e9)
    return save_session(s, folder / name)


def write_poses_h5(path: str | Path, n_frames: int = 10, n_tracks: int = 2) -> Path:
    """A SLEAP analysis file: (n_tracks, 2, n_nodes=2, n_frames) tracks."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["tracks"] = rng.uniform(10, 30, size=(n_tracks, 2, 2, n_frames))
        f["node_names"] = np.array([b"nose", b"head"])
        f["track_names"] = np.array([f"track{i}".encode() for i in range(n_tracks)])
        f["video_path"] = b"video.mp4"
    return Path(path)
