"""Shared fixtures. Area-specific fixtures live in each test folder's conftest.py."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Generated sample data and demo models go to a per-session temp dir in tests."""
    monkeypatch.setenv("NAPARI_GERBIL_HOME", str(tmp_path_factory.getbasetemp() / "gerbil_home"))


# --- cages ---------------------------------------------------------------------------


@pytest.fixture
def asymmetric_cage() -> dict:
    """The issue's asymmetric cage as cage-file keys.

    571 x 356 x 368 mm, mics 20 mm from the x-walls and 50 mm from the y-walls, 80 mm
    under the ceiling, tilted inward and down, sub-cardioid (p = 0.75).
    """
    return {
        "dims_mm": [571, 356, 368],
        "mic_positions_mm": [
            [-265.5, -128.0, 288.0],
            [265.5, -128.0, 288.0],
            [265.5, 128.0, 288.0],
            [-265.5, 128.0, 288.0],
        ],
        "mic_orientations": [[1, 1, -2], [-1, 1, -2], [-1, -1, -2], [1, -1, -2]],
        "mic_pattern_p": 0.75,
        "absorption": {"walls": 0.15, "floor": 0.64, "ceiling": 0.94},
        "scattering": 0.1,
        "temperature_c": 22,
        "humidity_pct": 40,
    }


@pytest.fixture
def asymmetric_cage_file(tmp_path, asymmetric_cage):
    """Path of the asymmetric cage written as a YAML cage file."""
    import yaml

    path = tmp_path / "asymmetric_cage.yaml"
    path.write_text(yaml.safe_dump(asymmetric_cage))
    return path


# --- simulated data shared by every area (napari_gerbil.simulate) ----------------------


@pytest.fixture(scope="session")
def speaker_vcl_small(tmp_path_factory):
    """Path of a small ``speaker`` VCL dataset for training tiny models (~10 s to make).

    104 floor positions on a 40 mm grid (speaker 3-5 cm high) x the 4 loud call classes
    (``dfm_high``, ``ufm_high``, ``stack_high``, ``noisy_high``) = 416 calls, in the
    ``omni-corner`` cage (600 x 400 mm: the numbers these tests were set on) with its
    acoustics (flat absorption for speed), SNR 35 dB, seed 0. Read it with
    ``VCLDataset(path)``; ground truth in ``locations`` (n, 1, 3) mm, node ``speaker``.
    """
    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

    cfg = ScenarioConfig(
        scenario="speaker",
        grid_spacing_mm=40.0,
        classes=("dfm_high", "ufm_high", "stack_high", "noisy_high"),
        cage="omni-corner",
        seed=0,
    )
    return simulate_dataset(tmp_path_factory.mktemp("sim") / "speaker_small.h5", cfg)


@pytest.fixture(scope="session")
def anechoic_calls(tmp_path_factory):
    """Path of a VCL dataset of 40 high-SNR (40 dB) calls in an anechoic cage.

    Random-walk (``robot``) source positions 6 cm above the floor, loud call classes,
    default cage geometry (4 mics at the ceiling corners). For baseline checks (MUSE,
    GCC-PHAT should be accurate here): ``VCLDataset(path).source_xy_mm()`` is the truth.
    """
    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

    cfg = ScenarioConfig(
        scenario="robot",
        n_calls=40,
        snr_db=40.0,
        classes=("dfm_high", "ufm_high", "stack_high", "noisy_high", "white_noise_high"),
        absorption_preset="anechoic",
        seed=1,
    )
    return simulate_dataset(tmp_path_factory.mktemp("sim") / "anechoic_calls.h5", cfg)


@pytest.fixture(scope="session")
def reverberant_calls(tmp_path_factory):
    """Like ``anechoic_calls`` (same seed, positions and stimuli) in the reverberant cage.

    The ``cage`` preset (plastic walls, foam ceiling, bedding), 40 calls, SNR 40 dB:
    classical baselines should degrade here relative to ``anechoic_calls``.
    """
    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

    cfg = ScenarioConfig(
        scenario="robot",
        n_calls=40,
        snr_db=40.0,
        classes=("dfm_high", "ufm_high", "stack_high", "noisy_high", "white_noise_high"),
        absorption_preset="cage",
        seed=1,
    )
    return simulate_dataset(tmp_path_factory.mktemp("sim") / "reverberant_calls.h5", cfg)


@pytest.fixture(scope="session")
def session_small(tmp_path_factory):
    """A simulated 12 s session with 2 animals (~10 s to make).

    Returns :class:`napari_gerbil.simulate.session.SimulatedSession` with the paths
    ``session`` (``*.gerbil.h5``: load with ``io.session.load_session``), ``audio``
    (HDF5 ``/audio`` 4 ch, 125 kHz), ``video`` (480x320 mp4, 30 fps), ``tracks`` (.slp,
    nodes nose/head/body/tail, tracks animal0/animal1) and ``truth`` (``*.truth.h5``:
    ``simulate.session.load_truth`` gives the emitter of each call). Seed 0, 1 call/s
    per animal (~24 calls), SNR 25 dB.
    """
    from napari_gerbil.simulate.session import SessionConfig, simulate_session

    cfg = SessionConfig(n_animals=2, duration_s=12.0, call_rate_hz=1.0, seed=0)
    return simulate_session(tmp_path_factory.mktemp("sim_session"), cfg, name="small")


# --- a small hand-made session (audio HDF5, video, SLEAP poses) and a tiny ensemble -----
# Used by the review, pipeline, CLI and napari tests.

RATE_HZ = 125000.0
FPS = 20.0
DURATION_S = 3.0
SPEED_OF_SOUND_MM_S = 343000.0
#: Video frame size and the arena's pixel rectangle (0.25 px/mm, 15 px margin).
HEIGHT_PX, WIDTH_PX = 130, 180
CALL_TIMES_S = (0.30, 0.75, 1.20, 1.65, 2.10, 2.55)


def _arena():
    from napari_gerbil.io.arena import default_cage

    cage = default_cage()
    hx, hy = cage.half_extent_mm
    corners_mm = cage.corners_mm()
    corners_px = np.stack(
        [15 + (hy - corners_mm[:, 1]) * 0.25, 15 + (corners_mm[:, 0] + hx) * 0.25], axis=1
    )
    return cage.with_corners_px(corners_px)


def _trajectories(n_frames: int) -> np.ndarray:
    """(n_frames, 2 animals, 2 nodes, 2) positions in mm (nose, body)."""
    t = np.arange(n_frames) / FPS
    body = np.stack(
        [
            np.stack([-150 + 60 * np.cos(t), -60 + 40 * np.sin(t)], axis=1),
            np.stack([160 + 50 * np.sin(0.7 * t), 70 + 50 * np.cos(0.7 * t)], axis=1),
        ],
        axis=1,
    )
    nose = body + np.array([25.0, 0.0])
    return np.stack([nose, body], axis=2)


def _call_audio(source_mm: np.ndarray, mics_mm: np.ndarray, n: int, rng) -> np.ndarray:
    """One call (25 -> 45 kHz chirp) heard at each mic with delay and 1/r loss."""
    t = np.arange(n) / RATE_HZ
    dur = n / RATE_HZ
    out = np.zeros((n + 400, len(mics_mm)))
    src = np.array([source_mm[0], source_mm[1], 20.0])
    for m, mic in enumerate(mics_mm):
        r = np.linalg.norm(mic - src)
        delay = r / SPEED_OF_SOUND_MM_S
        tt = t - delay + 0.0005
        chirp = np.sin(2 * np.pi * (25000 * tt + 20000 * tt**2 / (2 * dur)))
        env = np.clip(np.sin(np.pi * np.clip(tt / dur, 0, 1)), 0, None)
        out[:n, m] = 0.3 * (100.0 / r) * chirp * env
    return out[:n]


def build_session(folder, rng=None):
    """Write audio.h5, video.mp4, poses.h5 and session.gerbil.h5 into ``folder``.

    Returns (session path, truth) where truth maps call row -> (calling animal, xy mm).
    """
    from napari_gerbil.io.audio import AudioSource
    from napari_gerbil.io.session import (
        AudioRef,
        CallTable,
        FileRef,
        Session,
        save_session,
    )
    from napari_gerbil.io.video import write_video

    rng = rng or np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    arena = _arena()
    n_frames = int(DURATION_S * FPS)
    traj = _trajectories(n_frames)
    n = int(DURATION_S * RATE_HZ)
    audio = 0.002 * rng.standard_normal((n, 4))
    starts, stops, truth = [], [], {}
    for k, t0 in enumerate(CALL_TIMES_S):
        animal = k % 2
        length = int((0.015 + 0.005 * k) * RATE_HZ)
        s = int(t0 * RATE_HZ)
        frame = int(round(t0 * FPS))  # attribution uses the frame at the call start
        xy = traj[frame, animal, 0]
        audio[s : s + length] += _call_audio(xy, arena.mic_positions_mm, length, rng)
        starts.append(s)
        stops.append(s + length)
        truth[k] = (animal, xy)
    with h5py.File(folder / "audio.h5", "w") as f:
        f.create_dataset("audio", data=audio.astype(np.float32), chunks=(16384, 4))
        f.attrs["sample_rate_hz"] = RATE_HZ

    rc = arena.to_pixels(traj.reshape(-1, 2)).reshape(*traj.shape)  # (F, A, N, 2) row, col
    colors = np.array([[60, 160, 255], [255, 140, 20]])

    def frames():
        yy, xx = np.mgrid[:HEIGHT_PX, :WIDTH_PX]
        for f in range(n_frames):
            image = np.full((HEIGHT_PX, WIDTH_PX, 3), 40, np.uint8)
            image[15:-15, 15:-15] = 90
            for a in range(2):
                r, c = rc[f, a, 1]
                image[(yy - r) ** 2 + (xx - c) ** 2 < 36] = colors[a]
            yield image

    write_video(folder / "video.mp4", frames(), fps=FPS)
    with h5py.File(folder / "poses.h5", "w") as f:
        # SLEAP's analysis layout: (tracks, xy, nodes, frames) with (x, y) = (col, row)
        f["tracks"] = np.transpose(rc[..., ::-1], (1, 3, 2, 0))
        f["node_names"] = np.array([b"nose", b"body"])
        f["track_names"] = np.array([b"gerbil A", b"gerbil B"])
    source = AudioSource.open(folder / "audio.h5")
    session = Session(
        audio=AudioRef.from_source(source),
        arena=arena,
        calls=CallTable.from_samples(starts, stops),
        video=FileRef.from_file(folder / "video.mp4"),
        tracks=FileRef.from_file(folder / "poses.h5"),
        fps=FPS,
        animal_names=["gerbil A", "gerbil B"],
    )
    path = save_session(session, folder / "session.gerbil.h5")
    return path, truth


@pytest.fixture(scope="session")
def built_session(tmp_path_factory):
    return build_session(tmp_path_factory.mktemp("gerbil_session") / "data")


@pytest.fixture
def session_path(built_session, tmp_path):
    """A fresh copy of the session file (its data files are shared, read-only)."""
    path, _ = built_session
    copy = path.with_name(f"{tmp_path.name}.gerbil.h5")
    shutil.copy(path, copy)
    yield copy
    copy.unlink(missing_ok=True)


@pytest.fixture
def call_truth(built_session):
    return built_session[1]


@pytest.fixture(scope="session")
def tiny_ensemble_dir(tmp_path_factory):
    """A 2-member tiny ensemble trained 1 epoch on 48 synthetic calls (~seconds)."""
    from napari_gerbil.io.vcl import write_vcl
    from napari_gerbil.model.presets import get_preset
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.ensembles import train_ensemble

    folder = tmp_path_factory.mktemp("tiny_model")
    rng = np.random.default_rng(2)
    arena = _arena()
    xy = rng.uniform([-270, -170], [270, 170], size=(48, 2))
    calls = [_call_audio(p, arena.mic_positions_mm, 2500, rng) for p in xy]
    calls = [(c + 0.002 * rng.standard_normal(c.shape)).astype(np.float32) for c in calls]
    data = write_vcl(
        folder / "train.h5",
        calls,
        xy[:, None, :],
        node_names=["nose"],
        sample_rate_hz=RATE_HZ,
        arena_dims_mm=arena.dims_mm,
        mic_positions_mm=arena.mic_positions_mm,
    )
    config = TrainingConfig(epochs=1, batch_size=16, device="cpu", checkpoint_every_s=1e9)
    return train_ensemble(
        get_preset("tiny"), config, [data], folder / "model", 2, show_progress=False
    )
