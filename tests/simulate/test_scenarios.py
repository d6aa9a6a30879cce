"""VCL datasets written by the scenarios: format, ground truth, determinism, shifts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import default_cage
from napari_gerbil.io.cage import builtin_cage, load_cage
from napari_gerbil.io.vcl import VCLDataset, validate_vcl
from napari_gerbil.simulate.render import RenderConfig
from napari_gerbil.simulate.scenarios import (
    ScenarioConfig,
    shifted_cage,
    simulate_dataset,
    speaker_grid_mm,
)
from napari_gerbil.simulate.stimuli import STIMULUS_CLASSES

FAST = RenderConfig(max_order=12)


def test_speaker_grid_has_about_300_points_2cm_apart():
    grid = speaker_grid_mm(default_cage())
    assert len(grid) == 24 * 13  # 571.5 x 355.6 mm floor, 50 mm margin
    assert np.allclose(np.diff(np.unique(grid[:, 0])), 20.0)
    assert default_cage().contains(grid, margin_mm=0.0).all()


def test_speaker_vcl_small_fixture_reads_like_vocalocator(speaker_vcl_small):
    validate_vcl(speaker_vcl_small)
    with h5py.File(speaker_vcl_small, "r") as f:  # the plain paths vocalocator reads
        idx = f["length_idx"][:]
        locs = f["locations"][:]
        assert f["audio"].shape[1] == 4
        assert len(idx) == len(locs) + 1 == 417 and idx[-1] == f["audio"].shape[0]
        call = f["audio"][idx[5] : idx[6]]
    ds = VCLDataset(speaker_vcl_small)
    np.testing.assert_array_equal(ds.call_audio(5), call)
    assert ds.node_names == ["speaker"] and ds.scenario == "speaker"
    assert set(ds.stimulus_classes) == {"dfm_high", "ufm_high", "stack_high", "noisy_high"}
    assert np.abs(locs[:, 0, 0]).max() <= 250 and np.abs(locs[:, 0, 1]).max() <= 150
    assert (locs[:, 0, 2] >= 30).all() and (locs[:, 0, 2] <= 50).all()
    assert len(np.unique(locs[:, 0, :2], axis=0)) == 104


def _energy_by_distance_rank_db(path) -> np.ndarray:
    """(n_calls, n_mics) call energy in dB re the loudest mic, mics sorted near -> far."""
    ds = VCLDataset(path)
    out = []
    for i in range(len(ds)):
        dist = np.linalg.norm(ds.mic_positions_mm - ds.locations_mm[i, 0], axis=1)
        energy = (ds.call_audio(i).astype(float) ** 2).sum(axis=0)[np.argsort(dist)]
        out.append(10 * np.log10(energy / energy.max()))
    return np.array(out)


def test_anechoic_calls_are_loudest_at_the_nearest_microphone(anechoic_calls):
    rank_db = _energy_by_distance_rank_db(anechoic_calls)
    assert (rank_db[:, 0] == 0).mean() > 0.9
    ds = VCLDataset(anechoic_calls)
    dist = np.linalg.norm(ds.mic_positions_mm[None] - ds.locations_mm[:, :1], axis=2)
    spreading_db = 20 * np.log10(dist.max(axis=1) / dist.min(axis=1))
    measured_db = rank_db[:, 0] - rank_db[:, -1]
    # spherical spreading, plus up to ~1 dB of air absorption over the extra distance
    assert np.mean(measured_db - spreading_db) == pytest.approx(0.4, abs=0.6)


def test_reverberation_evens_out_the_microphone_levels(anechoic_calls, reverberant_calls):
    dry = _energy_by_distance_rank_db(anechoic_calls)
    wet = _energy_by_distance_rank_db(reverberant_calls)  # same positions and stimuli
    dry_spread = np.mean(dry[:, 0] - dry[:, -1])
    wet_spread = np.mean(wet[:, 0] - wet[:, -1])
    assert 0.5 < wet_spread < dry_spread - 1.0


def test_same_seed_same_file_other_seed_differs(tmp_path):
    def make(name, seed):
        cfg = ScenarioConfig(scenario="speaker", n_calls=20, seed=seed, render=FAST)
        return simulate_dataset(tmp_path / name, cfg)

    a, b, c = make("a.h5", 7), make("b.h5", 7), make("c.h5", 8)
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
        np.testing.assert_array_equal(fa["audio"][:], fb["audio"][:])
        np.testing.assert_array_equal(fa["locations"][:], fb["locations"][:])
        assert not np.array_equal(fa["locations"][:], fc["locations"][:])
    assert VCLDataset(a).stimulus_classes == list(STIMULUS_CLASSES) + list(STIMULUS_CLASSES[:2])


@pytest.mark.parametrize("scenario", ["robot", "animal"])
def test_robot_and_animal(tmp_path, scenario):
    cfg = ScenarioConfig(scenario=scenario, n_calls=6, seed=2, render=FAST)
    path = simulate_dataset(tmp_path / f"{scenario}.h5", cfg)
    validate_vcl(path)
    ds = VCLDataset(path)
    assert len(ds) == 6 and ds.scenario == scenario
    assert all(c in STIMULUS_CLASSES and not c.startswith("white") for c in ds.stimulus_classes)
    if scenario == "animal":
        assert ds.node_names == ["nose", "head"]
        nose, head = ds.locations_mm[:, 0], ds.locations_mm[:, 1]
        assert np.allclose(np.linalg.norm(nose[:, :2] - head[:, :2], axis=1), 15.0, atol=6.0)


def test_shift_variants(tmp_path):
    cage = shifted_cage("paper", "cage_size")
    np.testing.assert_allclose(cage.dims, load_cage("paper").dims * [7 / 6, 9 / 8, 8 / 7])
    assert (
        shifted_cage("paper", "absorption").absorption
        == load_cage("paper")
        .with_changes(absorption=builtin_cage("paper", "reverberant").absorption)
        .absorption
    )
    moved = shifted_cage("paper", "mic_positions")
    assert (
        np.linalg.norm(moved.mics[:, :2], axis=1) < np.linalg.norm(cage.mics[:, :2], axis=1)
    ).all()
    cfg = ScenarioConfig(scenario="robot", n_calls=3, shift="mic_positions", render=FAST)
    ds = VCLDataset(simulate_dataset(tmp_path / "shift.h5", cfg))
    assert ds.scenario == "robot/mic_positions"
    assert not np.allclose(ds.mic_positions_mm, default_cage().mic_positions_mm)
    np.testing.assert_allclose(ds.mic_positions_mm, moved.mics)


def test_any_cage_file_and_direct_path_delays(tmp_path, asymmetric_cage_file):
    """The issue's asymmetric cage: the recorded onsets follow the geometry."""
    path = asymmetric_cage_file
    cfg = ScenarioConfig(
        scenario="robot",
        n_calls=12,
        snr_db=60.0,
        cage=str(path),
        absorption_preset="anechoic",
        classes=("white_noise_high",),  # broadband: one cross-correlation peak
    )
    out = simulate_dataset(tmp_path / "asym.h5", cfg)
    summary = validate_vcl(out)
    assert summary["n_calls"] == 12
    ds = VCLDataset(out)
    np.testing.assert_allclose(ds.arena_dims_mm, [571, 356, 368])
    c_m_s = load_cage(path).describe()["speed_of_sound_m_s"]
    for i in range(len(ds)):
        audio = ds.call_audio(i).astype(float)
        dist_m = np.linalg.norm(ds.mic_positions_mm - ds.locations_mm[i, 0], axis=1) / 1000
        expected = (dist_m - dist_m.min()) / c_m_s * 125000.0
        # time difference of arrival: peak of the cross-correlation with the nearest mic
        ref = audio[:, np.argmin(dist_m)]
        n = 2 * len(audio)
        measured = []
        for m in range(4):
            xc = np.fft.irfft(np.fft.rfft(audio[:, m], n) * np.conj(np.fft.rfft(ref, n)), n)
            lag = int(np.argmax(xc))
            measured.append(lag if lag < len(audio) else lag - n)
        measured = np.array(measured)
        assert np.abs(measured - expected).max() <= 1.0, (i, measured, expected)


def test_bad_scenario_configs():
    with pytest.raises(InvalidInputError, match="scenario"):
        ScenarioConfig(scenario="zoo")
    with pytest.raises(InvalidInputError, match="shift"):
        ScenarioConfig(shift="moon")
    with pytest.raises(InvalidInputError, match="classes"):
        ScenarioConfig(classes=("dfm_loud",))
    with pytest.raises(InvalidInputError, match="n_calls"):
        ScenarioConfig(n_calls=0)


def test_configs_round_trip_through_yaml(tmp_path):
    from napari_gerbil.simulate.session import SessionConfig

    cfg = ScenarioConfig(
        scenario="animal", n_calls=9, classes=("dfm_low",), absorption_preset="bare"
    )
    cfg.save(tmp_path / "scenario.yaml")
    assert ScenarioConfig.load(tmp_path / "scenario.yaml") == cfg
    session_cfg = SessionConfig(n_animals=3, duration_s=5.0)
    session_cfg.save(tmp_path / "session.yaml")
    loaded = SessionConfig.load(tmp_path / "session.yaml")
    assert loaded == session_cfg and loaded.cage == "paper"


def test_offset_speaker_grid_has_no_position_of_the_grid(tmp_path):
    """The benchmark's speaker test grid sits between the training grid's points."""
    from napari_gerbil.simulate.scenarios import _plan_speaker

    cage = default_cage()
    base = ScenarioConfig(scenario="speaker", n_calls=90, render=FAST)
    rng = np.random.default_rng(0)
    on_grid = _plan_speaker(base, cage, rng).sources_mm[:, :2]
    offset = _plan_speaker(base.replace(grid_offset_mm=10.0), cage, rng).sources_mm[:, :2]
    full = speaker_grid_mm(cage)
    assert np.isin(on_grid.round(6), full.round(6)).all()
    nearest = np.linalg.norm(offset[:, None] - full[None], axis=-1).min(axis=1)
    assert np.allclose(nearest, np.hypot(10.0, 10.0))
    assert cage.contains(offset, margin_mm=0.0).all()


def test_grid_offset_beyond_the_margin_is_refused():
    with pytest.raises(InvalidInputError, match="grid_offset_mm"):
        ScenarioConfig(scenario="speaker", grid_offset_mm=60.0)
