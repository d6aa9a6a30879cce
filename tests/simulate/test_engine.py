"""The data engine: fresh positions, domain randomization, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.cage import builtin_cage, load_cage
from napari_gerbil.simulate.engine import DataEngine, EngineConfig, Randomization, perturbed_room
from napari_gerbil.simulate.render import RenderConfig, Room

SMALL = EngineConfig(calls_per_room=6)


def test_batches_are_a_function_of_seed_and_index():
    a, b = DataEngine("paper", SMALL, seed=3), DataEngine("paper", SMALL, seed=3)
    first = a.batch(5)
    a.batch(0)  # other batches in between change nothing
    again, fresh = b.batch(5), a.batch(6)
    assert len(first.audio) == 6 and first.audio[0].shape[1] == 4
    for x, y in zip(first.audio, again.audio, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(first.locations_mm, again.locations_mm)
    assert not np.allclose(first.locations_mm, fresh.locations_mm)
    np.testing.assert_array_equal(a.positions(5), first.locations_mm)  # without rendering
    other = DataEngine("paper", SMALL, seed=4).batch(5)
    assert not np.allclose(first.locations_mm, other.locations_mm)


def test_positions_cover_the_floor_inside_the_margin():
    engine = DataEngine("paper", EngineConfig(calls_per_room=500, margin_mm=30.0), seed=0)
    pos = engine.positions(0)
    half = builtin_cage("paper").dims[:2] / 2.0 - 30.0
    assert (np.abs(pos[:, :2]) <= half).all()
    assert (np.abs(pos[:, :2]).max(axis=0) > 0.95 * half).all()  # reaches the margins
    assert pos[:, 2].min() >= 0.0 and pos[:, 2].max() <= 100.0
    batch = DataEngine("paper", EngineConfig(calls_per_room=40), seed=1).batch(0)
    directional = np.isfinite(batch.headings_rad).mean()
    assert 0.2 < directional < 0.8  # half the calls come from a directional emitter
    assert ((batch.snr_db >= 0) & (batch.snr_db <= 40)).all()


def test_domain_randomization_stays_in_its_ranges():
    cage = builtin_cage("paper")
    nominal = Room.from_cage(cage)
    ranges = Randomization()
    rng = np.random.default_rng(0)
    rooms = [perturbed_room(cage, rng, ranges) for _ in range(50)]
    dims = np.array([r.dims_m for r in rooms]) * 1000
    assert np.abs(dims - cage.dims).max() <= 5.0 + 1e-9 and dims.std(axis=0).min() > 1.0
    mics = np.array([r.mics_m for r in rooms])
    shift_mm = np.abs(
        (mics - nominal.mics_m) * 1000 - (dims[:, None, :] - cage.dims) * [0.5, 0.5, 0]
    )
    assert shift_mm.max() <= 2.0 + 1e-6
    gains_db = 20 * np.log10([r.mic_gains for r in rooms])
    assert np.abs(gains_db).max() <= 3.0 + 1e-9 and gains_db.std() > 1.0
    tilt = np.degrees(
        np.arccos(
            np.clip([(r.mic_directions * nominal.mic_directions).sum(1) for r in rooms], -1, 1)
        )
    )
    assert tilt.max() <= 10.0 + 1e-6 and tilt.max() > 5.0
    temps = [r.temperature_c for r in rooms]
    assert min(temps) >= cage.temperature_c - 5.0 and max(temps) <= cage.temperature_c + 10.0
    scat = [r.scattering for r in rooms]
    assert min(scat) >= 0.0 and max(scat) <= cage.scattering + 0.2 + 1e-9
    ratio_db = 10 * np.log10([(1 - r.absorption) / (1 - nominal.absorption) for r in rooms])
    assert np.abs(ratio_db[np.isfinite(ratio_db)]).max() <= 6.0 + 1e-6


def test_randomization_perturbs_around_the_cages_own_values():
    # a diffuse cage with a near-cardioid pattern, damped walls and warm air
    cage = builtin_cage("paper-diffuse").with_changes(
        mic_pattern_p=0.5,
        absorption={"walls": 0.5, "floor": 0.8, "ceiling": 0.9},
        temperature_c=35.0,
    )
    engine = DataEngine(cage, EngineConfig(calls_per_room=2), seed=0)
    rooms = [engine.draw_room(np.random.default_rng(k)) for k in range(60)]
    scat = np.array([r.scattering for r in rooms])
    assert scat.min() >= 0.8 - 1e-9 and scat.max() <= 1.0 and abs(np.median(scat) - 0.95) < 0.06
    pattern = np.array([r.mic_pattern_p for r in rooms])
    assert pattern.min() >= 0.25 - 1e-9 and pattern.max() <= 0.5 + 1e-9 and pattern.std() > 0.03
    walls = np.array([r.absorption[0, 0] for r in rooms])  # reflected energy 0.5 +- 6 dB
    assert walls.min() >= 1 - 0.5 * 10**0.6 - 1e-9 and walls.max() <= 1 - 0.5 * 10**-0.6 + 1e-9
    assert abs(np.median(walls) - 0.5) < 0.15
    temps = np.array([r.temperature_c for r in rooms])
    assert temps.min() >= 30.0 and temps.max() <= 45.0
    # the rendered calls come from such rooms: the batch renders without error
    assert len(engine.batch(0).audio) == 2


def test_no_randomization_renders_the_nominal_cage():
    cfg = EngineConfig(calls_per_room=3, randomize=False)
    engine = DataEngine("paper", cfg, seed=0)
    batch = engine.batch(0)
    assert np.isnan(batch.headings_rad).all() and (batch.snr_db == 20.0).all()  # mid-range


def test_any_cage_any_mic_count(asymmetric_cage_file):
    batch = DataEngine(builtin_cage("paper8"), SMALL, seed=0).batch(0)
    assert all(a.shape[1] == 8 for a in batch.audio)
    cage = load_cage(asymmetric_cage_file)
    batch = DataEngine(cage, SMALL, seed=0).batch(0)
    half = cage.dims[:2] / 2 - 30
    assert (np.abs(batch.locations_mm[:, :2]) <= half).all()


def test_bad_engine_settings():
    with pytest.raises(InvalidInputError, match="calls_per_room"):
        EngineConfig(calls_per_room=0)
    with pytest.raises(InvalidInputError, match="snr_db"):
        Randomization(snr_db=(40.0, 0.0))
    with pytest.raises(InvalidInputError, match="absorption_db"):
        Randomization(absorption_db=float("nan"))
    with pytest.raises(InvalidInputError, match="height_mm"):
        DataEngine("paper", EngineConfig(height_mm=(0.0, 400.0)))
    with pytest.raises(InvalidInputError, match="margin_mm"):
        DataEngine("paper", EngineConfig(margin_mm=250.0))
    with pytest.raises(InvalidInputError, match="seed"):
        DataEngine("paper", seed=-1)


def test_simulated_files_do_not_depend_on_the_number_of_workers(tmp_path):
    import h5py

    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

    cfg = ScenarioConfig(scenario="robot", n_calls=10, seed=5)
    one = simulate_dataset(tmp_path / "one.h5", cfg, n_workers=1, batch_calls=4)
    two = simulate_dataset(tmp_path / "two.h5", cfg, n_workers=2, batch_calls=4)
    with h5py.File(one) as a, h5py.File(two) as b:
        np.testing.assert_array_equal(a["audio"][:], b["audio"][:])
        np.testing.assert_array_equal(a["locations"][:], b["locations"][:])


def _engine_device_batches(device: str):
    cfg = EngineConfig(calls_per_room=4, render=RenderConfig(max_order=6))
    reference = DataEngine("paper", cfg, seed=5).batch(2)  # compiled kernel, CPU
    on_device = DataEngine("paper", cfg, seed=5, device=device)
    return reference, on_device, on_device.batch(2)


def test_engine_on_a_device_uses_the_torch_kernel_and_renders_the_same_calls():
    # the GPU path in miniature: the torch kernel the device runs, here on the CPU
    reference, engine, _ = _engine_device_batches("cpu")
    batch = DataEngine("paper", engine.config, seed=5, device="cpu", kernel="torch").batch(2)
    np.testing.assert_array_equal(batch.locations_mm, reference.locations_mm)
    for a, b in zip(batch.audio, reference.audio, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3 * np.abs(b).max())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_engine_renders_on_cuda_like_on_the_cpu():
    reference, engine, batch = _engine_device_batches("cuda")
    assert engine.kernel == "torch"
    np.testing.assert_array_equal(batch.locations_mm, reference.locations_mm)
    for a, b in zip(batch.audio, reference.audio, strict=True):  # diffuse tail: other noise
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
