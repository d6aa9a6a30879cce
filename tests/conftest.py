"""Shared fixtures. Area-specific fixtures live in each test folder's conftest.py."""

from __future__ import annotations

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
    (``dfm_high``, ``ufm_high``, ``stack_high``, ``noisy_high``) = 416 calls, default cage
    acoustics (flat absorption for speed), SNR 35 dB, seed 0. Read it with
    ``VCLDataset(path)``; ground truth in ``locations`` (n, 1, 3) mm, node ``speaker``.
    """
    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

    cfg = ScenarioConfig(
        scenario="speaker",
        grid_spacing_mm=40.0,
        classes=("dfm_high", "ufm_high", "stack_high", "noisy_high"),
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
