"""Simulated recording sessions: animals moving and calling, with audio, video and poses.

:func:`simulate_session` writes, next to each other, for a session ``<name>``:

- ``<name>.audio.h5``: continuous float32 audio ``/audio`` (n_samples, n_mics),
  streamed in chunks (memory does not grow with the duration);
- ``<name>.mp4``: top-down video (PyAV, H.264) with the arena and the animals;
- ``<name>.slp``: the animals' poses (SLEAP, via sleap-io; nodes nose, head, body,
  tail; one track per animal; pose noise and a few missing frames);
- ``<name>.gerbil.h5``: the session file (io.session) pointing to them, with the
  arena homography, per-frame timestamps and the calls table;
- ``<name>.truth.h5``: who emitted each call, from where (never in the session).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import h5py
import numpy as np

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry
from napari_gerbil.io.atomic import atomic_h5, atomic_path
from napari_gerbil.io.cage import ABSORPTION_PRESETS, load_cage, preset_absorption
from napari_gerbil.simulate.cage_simulator import CageSimulator
from napari_gerbil.simulate.motion import random_walk
from napari_gerbil.simulate.noise import NoiseSource
from napari_gerbil.simulate.rir_bank import convolve_rir
from napari_gerbil.simulate.room import RenderConfig
from napari_gerbil.simulate.slp_writer import write_tracked_slp
from napari_gerbil.simulate.stimuli import CALL_CLASSES, StimulusGenerator
from napari_gerbil.simulate.truth import TRUTH_FORMAT

NODE_NAMES = ("nose", "head", "body", "tail")
EDGES = (("nose", "head"), ("head", "body"), ("body", "tail"))
#: Distance of each node from the body centre along the body axis (mm); the nose and
#: head follow the head direction from the neck, the tail the body direction.
_NECK_MM, _HEAD_MM, _NOSE_MM, _TAIL_MM = 20.0, 8.0, 25.0, 40.0
#: Fur colours (RGB) of the animals in the video; distinguishable in grey scale too.
ANIMAL_COLOURS = ((70, 45, 30), (225, 225, 215), (200, 120, 40), (90, 90, 160), (40, 140, 60))


@dataclasses.dataclass
class SessionConfig(Config):
    """Settings of a simulated session.

    Parameters
    ----------
    n_animals, duration_s, seed
        How many animals, for how long, and the seed of every random draw.
    call_rate_hz
        Mean call rate of each animal (Poisson; calls of different animals can overlap).
    snr_db
        Typical signal-to-noise ratio of a loud call.
    fps, video_width_px, video_height_px
        Camera.
    pose_noise_px
        Standard deviation of the tracked node positions around the truth.
    missing_fraction
        Fraction of frames in which each animal's pose is missing (in short gaps).
    chunk_s
        Audio is generated and written in chunks of this length.
    cage
        A built-in cage name or a cage file (``napari_gerbil.io.cage``).
    absorption_preset
        Replace the cage's absorption by a named preset (None: keep the cage's).
    render
        Renderer settings.
    """

    n_animals: int = 2
    duration_s: float = 20.0
    seed: int = 0
    call_rate_hz: float = 0.5
    snr_db: float = 25.0
    fps: float = 30.0
    video_width_px: int = 480
    video_height_px: int = 320
    pose_noise_px: float = 1.0
    missing_fraction: float = 0.01
    chunk_s: float = 1.0
    cage: str = "paper"
    absorption_preset: str | None = None
    render: RenderConfig = dataclasses.field(default_factory=RenderConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.n_animals <= len(ANIMAL_COLOURS):
            raise InvalidInputError(
                None, "n_animals", f"1 .. {len(ANIMAL_COLOURS)}", str(self.n_animals)
            )
        if not self.duration_s >= 1.0:
            raise InvalidInputError(None, "duration_s", ">= 1 s", str(self.duration_s))
        if self.call_rate_hz < 0:
            raise InvalidInputError(None, "call_rate_hz", ">= 0", str(self.call_rate_hz))
        if self.absorption_preset is not None and self.absorption_preset not in ABSORPTION_PRESETS:
            raise InvalidInputError(
                None,
                "absorption_preset",
                f"one of {sorted(ABSORPTION_PRESETS)}",
                repr(self.absorption_preset),
            )
        for name in ("video_width_px", "video_height_px"):
            v = getattr(self, name)
            if v < 64 or v % 2:
                raise InvalidInputError(None, name, "an even number >= 64", str(v))


@dataclasses.dataclass
class SimulatedSession:
    """Paths of the files a simulated session consists of."""

    session: Path
    audio: Path
    video: Path
    tracks: Path
    truth: Path


def video_homography(arena: ArenaGeometry, width_px: int, height_px: int) -> np.ndarray:
    """Top-down camera: (x_mm, y_mm, 1) -> (row, col, 1), +x to the right, +y up."""
    margin = 0.06
    scale = min(
        width_px * (1 - margin) / arena.dims_mm[0], height_px * (1 - margin) / arena.dims_mm[1]
    )
    return np.array([[0.0, -scale, height_px / 2.0], [scale, 0.0, width_px / 2.0], [0.0, 0.0, 1.0]])


def _smooth_noise(n: int, dt_s: float, tau_s: float, sd: float, rng) -> np.ndarray:
    """Ornstein-Uhlenbeck process with correlation time ``tau_s`` and stationary ``sd``."""
    from scipy.signal import lfilter

    a = np.exp(-dt_s / tau_s)
    w = rng.normal(0.0, sd * np.sqrt(1 - a * a), n)
    x0 = rng.normal(0.0, sd)
    return lfilter([1.0], [1.0, -a], w, zi=[a * x0])[0]  # x[i] = a x[i-1] + w[i]


def _animal_poses(
    cfg: SessionConfig, arena: ArenaGeometry, n_frames: int, rng
) -> tuple[np.ndarray, np.ndarray]:
    """(n_frames, n_animals, 4, 3) node positions (mm) and (n_frames, n_animals) head direction."""
    dt = 1.0 / cfg.fps
    poses = np.empty((n_frames, cfg.n_animals, len(NODE_NAMES), 3))
    head_dir = np.empty((n_frames, cfg.n_animals))
    for a in range(cfg.n_animals):
        body, heading = random_walk(
            n_frames,
            dt,
            arena.half_extent_mm,
            rng,
            speed_mm_s=100.0,
            margin_mm=55.0,
            turn_sd_rad_s=1.5,
            rest_prob_s=0.2,
        )
        u = np.c_[np.cos(heading), np.sin(heading)]
        hd = heading + _smooth_noise(n_frames, dt, 0.5, 0.35, rng)
        uh = np.c_[np.cos(hd), np.sin(hd)]
        neck = body + _NECK_MM * u
        z_head = np.clip(30.0 + _smooth_noise(n_frames, dt, 2.0, 12.0, rng), 20.0, 80.0)
        poses[:, a, 0, :2] = neck + _NOSE_MM * uh
        poses[:, a, 1, :2] = neck + _HEAD_MM * uh
        poses[:, a, 2, :2] = body
        poses[:, a, 3, :2] = body - _TAIL_MM * u
        poses[:, a, 0, 2] = z_head
        poses[:, a, 1, 2] = z_head + 5.0
        poses[:, a, 2, 2] = 25.0
        poses[:, a, 3, 2] = 10.0
        head_dir[:, a] = np.angle(np.exp(1j * hd))
    return poses, head_dir


class _Painter:
    """Draws frames: a static arena background plus an ellipse body and head per animal."""

    def __init__(self, arena: ArenaGeometry, width: int, height: int) -> None:
        if arena.arena_to_pixels is None:
            raise InvalidInputError(None, "arena_to_pixels", "a calibrated arena", "none")
        self.h2p: np.ndarray = arena.arena_to_pixels
        self.scale = self.h2p[1, 0]
        bg = np.empty((height, width, 3), np.uint8)
        bg[:] = (40, 40, 40)
        rc = arena.to_pixels(arena.corners_mm())
        r0, r1 = int(rc[:, 0].min()), int(np.ceil(rc[:, 0].max()))
        c0, c1 = int(rc[:, 1].min()), int(np.ceil(rc[:, 1].max()))
        bg[r0:r1, c0:c1] = (150, 135, 105)  # bedding
        bg[r0 : r0 + 2, c0:c1] = bg[r1 - 2 : r1, c0:c1] = (230, 230, 230)  # walls
        bg[r0:r1, c0 : c0 + 2] = bg[r0:r1, c1 - 2 : c1] = (230, 230, 230)
        for r, c in arena.to_pixels(arena.mic_positions_mm[:, :2]):
            bg[int(r) - 2 : int(r) + 3, int(c) - 2 : int(c) + 3] = (20, 20, 200)
        self.background = bg

    def _ellipse(self, img, centre_mm, angle, a_mm, b_mm, colour) -> None:
        r, c = self.h2p[:2, :2] @ centre_mm[:2] + self.h2p[:2, 2]
        a, b = a_mm * self.scale, b_mm * self.scale
        ext = int(np.ceil(max(a, b))) + 1
        rr, cc = int(round(r)), int(round(c))
        r_lo, r_hi = max(rr - ext, 0), min(rr + ext + 1, img.shape[0])
        c_lo, c_hi = max(cc - ext, 0), min(cc + ext + 1, img.shape[1])
        if r_lo >= r_hi or c_lo >= c_hi:
            return
        dr = np.arange(r_lo, r_hi)[:, None] - r
        dc = np.arange(c_lo, c_hi)[None, :] - c
        # arena heading -> image: +x is +col, +y is -row
        along = dc * np.cos(angle) - dr * np.sin(angle)
        across = dc * np.sin(angle) + dr * np.cos(angle)
        inside = (along / a) ** 2 + (across / b) ** 2 <= 1.0
        img[r_lo:r_hi, c_lo:c_hi][inside] = colour

    def frame(self, poses_mm: np.ndarray, head_dir: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 frame for one time point; poses (n_animals, 4, 3)."""
        img = self.background.copy()
        for a, pose in enumerate(poses_mm):
            colour = ANIMAL_COLOURS[a]
            body_dir = np.arctan2(*(pose[2, :2] - pose[3, :2])[::-1])
            self._ellipse(img, (pose[2] + pose[3]) / 2, body_dir, 6.0 + _TAIL_MM / 2, 4.0, colour)
            self._ellipse(img, pose[2], body_dir, 32.0, 17.0, colour)
            self._ellipse(img, pose[1], head_dir[a], 16.0, 10.0, colour)
            dark = tuple(int(v * 0.4) for v in colour)
            self._ellipse(img, pose[0], head_dir[a], 3.5, 3.5, dark)
        return img


def _write_video(path: Path, painter: _Painter, poses, head_dir, fps: float, progress) -> None:
    import av
    from tqdm import tqdm

    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width = painter.background.shape[1]
        stream.height = painter.background.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.thread_type = "AUTO"
        stream.options = {"preset": "ultrafast", "crf": "26", "g": str(int(round(fps)))}
        for k in tqdm(range(len(poses)), disable=not progress, desc="video"):
            frame = av.VideoFrame.from_ndarray(painter.frame(poses[k], head_dir[k]), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_tracks(path: Path, video_path: Path, arena, poses_mm, cfg, rng) -> None:
    n_frames, n_animals, n_nodes, _ = poses_mm.shape
    rc = arena.to_pixels(poses_mm[..., :2].reshape(-1, 2)).reshape(n_frames, n_animals, n_nodes, 2)
    xy = rc[..., ::-1] + rng.normal(0.0, cfg.pose_noise_px, rc.shape)  # SLEAP stores (x, y)
    n_gaps = int(round(cfg.missing_fraction * n_frames / 5))  # gaps ~5 frames long
    for a in range(n_animals):
        for start in rng.integers(0, n_frames, n_gaps):
            xy[start : start + int(rng.integers(2, 9)), a] = np.nan
    track_names = [f"animal{a}" for a in range(n_animals)]
    write_tracked_slp(path, xy, NODE_NAMES, EDGES, track_names, video_path)  # bounded memory


def _write_media(paths: SimulatedSession, arena, poses, head_dir, cfg, seed, progress) -> None:
    """Video and poses (run in a process of its own, concurrently with the audio)."""
    painter = _Painter(arena, cfg.video_width_px, cfg.video_height_px)
    _write_video(paths.video, painter, poses, head_dir, cfg.fps, progress)
    _write_tracks(paths.tracks, paths.video, arena, poses, cfg, np.random.default_rng(seed))


def _render_calls(job) -> list[tuple[str, int, np.ndarray]]:
    """Draw and play calls: (class, stimulus length, (n, n_mics) signal at the mics) each.

    ``job`` is (acoustics, sources (n, 3), headings (n,), seeds (n,)); each call's
    stimulus comes from its own seed, so the result does not depend on how the calls
    are split among processes.
    """
    acoustics, sources, headings, seeds = job
    generator = StimulusGenerator(acoustics.sample_rate_hz)
    out = []
    for src, hd, seed in zip(sources, headings, seeds, strict=True):
        stim = generator.sample_any(np.random.default_rng(seed), CALL_CLASSES, variability=2.0)
        y = convolve_rir(stim.waveform, acoustics.rir(src, float(hd)))
        out.append((stim.stimulus_class, len(stim.waveform), y))
    return out


def _iter_calls(acoustics, sources, headings, seeds, pool, n_workers: int, batch: int = 4):
    """Yield :func:`_render_calls` results in call order; at most a few batches ahead."""
    import collections
    import itertools

    jobs = (
        (acoustics, sources[i : i + batch], headings[i : i + batch], seeds[i : i + batch])
        for i in range(0, len(seeds), batch)
    )
    if pool is None:
        for job in jobs:
            yield from _render_calls(job)
        return
    window = collections.deque(
        pool.submit(_render_calls, j) for j in itertools.islice(jobs, 3 * n_workers)
    )
    while window:
        result = window.popleft().result()
        window.extend(pool.submit(_render_calls, j) for j in itertools.islice(jobs, 1))
        yield from result


def _schedule_calls(cfg: SessionConfig, fs: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """(emit_sample, animal) of every call, sorted by time."""
    emits, animals = [], []
    last_s = cfg.duration_s - 0.2  # room for the call and its reverberation
    for a in range(cfg.n_animals):
        n = rng.poisson(cfg.call_rate_hz * last_s)
        emits.append(rng.uniform(0.02, last_s, n))
        animals.append(np.full(n, a))
    t = np.concatenate(emits)
    order = np.argsort(t, kind="stable")
    return np.round(t[order] * fs).astype(np.int64), np.concatenate(animals)[order]


def _interp_pose(poses, head_dir, frame_times_s, t_s):
    """Nose position and head direction of every animal at time ``t_s``."""
    k = int(np.clip(np.searchsorted(frame_times_s, t_s) - 1, 0, len(frame_times_s) - 2))
    w = float(np.clip((t_s - frame_times_s[k]) / (frame_times_s[k + 1] - frame_times_s[k]), 0, 1))
    nose = (1 - w) * poses[k, :, 0] + w * poses[k + 1, :, 0]
    dh = np.angle(np.exp(1j * (head_dir[k + 1] - head_dir[k])))
    return nose, head_dir[k] + w * dh


def simulate_session(
    out_dir: str | os.PathLike,
    config: SessionConfig | None = None,
    name: str = "session",
    progress: bool = False,
    n_workers: int = 1,
) -> SimulatedSession:
    """Simulate animals calling in the cage and write the session's files.

    Parameters
    ----------
    out_dir
        Directory for the files (created).
    config
        Session settings.
    name
        File name stem.
    progress
        Show tqdm progress bars.
    n_workers
        Processes that render calls; with more than one, the video and poses are also
        written by a process of their own, concurrently (spawned: a calling script
        needs the ``if __name__ == "__main__":`` guard). The output is the same for
        any number of processes.
    """
    from tqdm import tqdm

    from napari_gerbil.io.audio import AudioSource
    from napari_gerbil.io.session import AudioRef, CallTable, FileRef, Session, save_session

    cfg = config or SessionConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = SimulatedSession(
        session=out_dir / f"{name}.gerbil.h5",
        audio=out_dir / f"{name}.audio.h5",
        video=out_dir / f"{name}.mp4",
        tracks=out_dir / f"{name}.slp",
        truth=out_dir / f"{name}.truth.h5",
    )
    rng = np.random.default_rng(cfg.seed)
    cage = load_cage(cfg.cage)
    if cfg.absorption_preset is not None:
        cage = cage.with_changes(absorption=preset_absorption(cfg.absorption_preset))
    arena = ArenaGeometry(
        cage.dims,
        cage.mics,
        video_homography(cage.arena(), cfg.video_width_px, cfg.video_height_px),
    )
    acoustics = CageSimulator(cage, cfg.render)
    fs = acoustics.sample_rate_hz
    n_samples = int(round(cfg.duration_s * fs))
    n_frames = int(np.floor(cfg.duration_s * cfg.fps))
    # camera clock: nominal frame period with sub-millisecond trigger jitter
    frame_times_s = np.arange(n_frames) / cfg.fps + rng.uniform(-3e-4, 3e-4, n_frames)
    frame_times_s[0] = max(frame_times_s[0], 0.0)
    poses, head_dir = _animal_poses(cfg, arena, n_frames, rng)

    # calls: who, when, from where; stimuli are drawn while streaming (bounded memory)
    emit, animal = _schedule_calls(cfg, fs, rng)
    media_seed, call_seed, noise_seed = rng.integers(2**63, size=3)
    call_seeds = np.random.default_rng(call_seed).integers(2**63, size=len(emit))
    sources = np.empty((len(emit), 3))
    headings = np.empty(len(emit))
    for i, (e, a) in enumerate(zip(emit, animal, strict=True)):
        nose, hd = _interp_pose(poses, head_dir, frame_times_s, e / fs)
        sources[i], headings[i] = nose[a], hd[a]
    delays = np.array([acoustics.direct_delay_samples(s) for s in sources])
    delays = delays.reshape(len(emit), acoustics.n_mics)
    start = emit + np.floor(delays.min(axis=1)).astype(np.int64)
    stop = np.empty_like(start)
    classes: list[str] = []

    n_workers = max(1, int(n_workers))
    media_args = (paths, arena, poses, head_dir, cfg, media_seed, progress)
    pool = None
    if n_workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # one process writes the video and poses while the others render calls;
        # spawn, not fork: a forked PyAV/x264 encoder can deadlock on locks inherited
        # from a parent that had used FFmpeg's threads
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(n_workers + 1, mp_context=ctx)
        media_job = pool.submit(_write_media, *media_args)

    # audio, streamed chunk by chunk
    ref_rms = float(np.median(np.linalg.norm(acoustics.rir(np.r_[0.0, 0.0, 30.0]), axis=0)))
    noise = NoiseSource(
        acoustics.n_mics,
        fs,
        ref_rms * 10 ** (-cfg.snr_db / 20),
        np.random.default_rng(noise_seed),
    )
    chunk = int(round(cfg.chunk_s * fs))
    spill = int(0.15 * fs) + acoustics.max_rir_samples()
    pending = np.zeros((chunk + spill, acoustics.n_mics), np.float32)
    calls = _iter_calls(acoustics, sources, headings, call_seeds, pool, n_workers)
    i = 0
    try:
        with atomic_h5(paths.audio) as f:
            ds = f.create_dataset(
                "audio",
                (n_samples, acoustics.n_mics),
                "f4",
                chunks=(min(65536, n_samples), acoustics.n_mics),
            )
            f.attrs["sample_rate_hz"] = fs
            ds.attrs["sample_rate_hz"] = fs
            for c0 in tqdm(range(0, n_samples, chunk), disable=not progress, desc="audio"):
                while i < len(emit) and emit[i] < c0 + chunk:
                    stimulus_class, n_stim, y = next(calls)
                    classes.append(stimulus_class)
                    stop[i] = min(emit[i] + n_stim + np.ceil(delays[i].max()), n_samples)
                    off = int(emit[i] - c0)
                    pending[off : off + len(y)] += y[: len(pending) - off]
                    i += 1
                n = min(chunk, n_samples - c0)
                ds[c0 : c0 + n] = pending[:n] + noise.next(n)
                pending[:-chunk] = pending[chunk:]
                pending[-chunk:] = 0.0
        if pool is None:
            _write_media(*media_args)
        else:
            media_job.result()
    finally:
        calls.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    animal_names = [f"animal{a}" for a in range(cfg.n_animals)]
    with atomic_h5(paths.truth) as f:
        f.attrs["napari_gerbil_format"] = TRUTH_FORMAT
        f.attrs["animal_names"] = animal_names
        f.attrs["node_names"] = list(NODE_NAMES)
        f.attrs["sample_rate_hz"] = fs
        f["animal"] = animal
        f["emit_sample"] = emit
        f["start_sample"] = start
        f["stop_sample"] = stop
        f["source_mm"] = sources
        f["heading_rad"] = headings
        f["stimulus_class"] = np.array(classes, dtype=h5py.string_dtype())
        f["poses_mm"] = poses.astype(np.float32)
    session = Session(
        audio=AudioRef.from_source(AudioSource.open(paths.audio)),
        arena=arena,
        calls=CallTable.from_samples(start, stop),
        video=FileRef.from_file(paths.video),
        tracks=FileRef.from_file(paths.tracks),
        frame_times_s=frame_times_s,
        fps=cfg.fps,
        video_offset_s=0.0,
        animal_names=animal_names,
        provenance={"simulator": "napari_gerbil.simulate.session", "config": cfg.to_dict()},
    )
    save_session(session, paths.session)
    return paths
