"""Classical baselines: geometry, speed of sound, and localization of pure-delay calls."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.baselines import FloorGrid, localize, speed_of_sound_m_s
from napari_gerbil.baselines.correlation import estimate_band_hz
from napari_gerbil.baselines.geometry import lag_index_table, max_tdoa_s, tdoa_s
from napari_gerbil.baselines.synthetic import delayed_chirps
from napari_gerbil.errors import InvalidInputError

FS_HZ = 125_000.0
ARENA_MM = (600.0, 400.0, 350.0)
MICS_MM = np.array(
    [[-280.0, -180.0, 340.0], [280.0, -170.0, 335.0], [270.0, 180.0, 345.0], [-285.0, 175.0, 330.0]]
)
C_M_S = speed_of_sound_m_s(20.0)
METHOD_NAMES = ["muse", "muse_jackknife", "srp_phat", "gcc_phat"]


def _sources(rng, n, z_mm=0.0):
    return np.c_[rng.uniform(-270, 270, n), rng.uniform(-170, 170, n), np.full(n, z_mm)]


@pytest.fixture(scope="module")
def calls():
    rng = np.random.default_rng(7)
    src = _sources(rng, 24)
    return src, delayed_chirps(src, MICS_MM, FS_HZ, C_M_S, snr_db=10.0, rng=rng)


def test_speed_of_sound_formula():
    assert speed_of_sound_m_s(0.0) == pytest.approx(331.3)
    assert speed_of_sound_m_s(20.0) == pytest.approx(331.3 * np.sqrt(1 + 20 / 273.16))
    assert speed_of_sound_m_s(30.0) > speed_of_sound_m_s(20.0) > speed_of_sound_m_s(-10.0)
    with pytest.raises(InvalidInputError, match="temperature_c"):
        speed_of_sound_m_s(-300.0)
    with pytest.raises(InvalidInputError):
        speed_of_sound_m_s(float("nan"))


def test_floor_grid_covers_arena_with_cell_centres():
    grid = FloorGrid.from_arena(ARENA_MM, resolution_mm=1.0, z_mm=12.0)
    assert grid.shape == (400, 600)
    assert grid.x_mm[0] == pytest.approx(-299.5) and grid.x_mm[-1] == pytest.approx(299.5)
    assert grid.y_mm[0] == pytest.approx(-199.5) and grid.y_mm[-1] == pytest.approx(199.5)
    assert grid.cell_area_mm2 == pytest.approx(1.0)
    pts = grid.points_mm()
    assert pts.shape == (240_000, 3) and np.all(pts[:, 2] == 12.0)
    # row-major (y, x): the second point moves along x
    assert pts[1, 0] - pts[0, 0] == pytest.approx(1.0) and pts[1, 1] == pts[0, 1]
    coarse = FloorGrid.from_arena((600, 400), resolution_mm=7.0)
    assert coarse.shape == (57, 86)
    assert coarse.cell_area_mm2 * coarse.x_mm.size * coarse.y_mm.size == pytest.approx(240_000)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 1000.0])
def test_floor_grid_rejects_bad_resolution(bad):
    with pytest.raises(InvalidInputError, match="resolution_mm"):
        FloorGrid.from_arena(ARENA_MM, resolution_mm=bad)


@pytest.mark.parametrize("bad", [(600,), (600, -400), (600, 400, 350, 1), (np.nan, 400)])
def test_floor_grid_rejects_bad_arena(bad):
    with pytest.raises(InvalidInputError, match="arena_dims_mm"):
        FloorGrid.from_arena(bad)


def test_lag_table_matches_exact_tdoas():
    grid = FloorGrid.from_arena(ARENA_MM, resolution_mm=10.0, z_mm=5.0)
    step_s = 1.0 / (8 * FS_HZ)
    half = int(np.ceil(max_tdoa_s(MICS_MM, C_M_S) / step_s)) + 4
    table = lag_index_table(grid, MICS_MM, C_M_S, step_s, half)
    exact = tdoa_s(grid.points_mm(), MICS_MM, C_M_S).T
    assert table.shape == exact.shape == (6, grid.shape[0] * grid.shape[1])
    assert np.all(np.abs((table - half) * step_s - exact) <= step_s / 2 + 1e-12)
    assert lag_index_table(grid, MICS_MM, C_M_S, step_s, half) is table  # cached
    # a point equidistant from mics 0 and 1 has zero TDOA for that pair
    sym = np.array([[0.0, -175.0, 0.0]])
    mics = MICS_MM.copy()
    mics[1] = [280.0, -180.0, 340.0]
    assert tdoa_s(sym, mics, C_M_S)[0, 0] == pytest.approx(0.0, abs=1e-12)


def test_tdoa_sign_and_scale():
    pts = np.array([[-280.0, -180.0, 0.0]])  # under mic 0
    tau = tdoa_s(pts, MICS_MM, C_M_S)
    d = np.linalg.norm(pts - MICS_MM, axis=1) / 1000.0
    assert tau[0, 0] == pytest.approx((d[0] - d[1]) / C_M_S)
    assert tau[0, 0] < 0  # sound reaches mic 0 first


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_pure_delay_calls_localized_within_2_mm(calls, method):
    src, audio = calls
    result = localize(method, audio, MICS_MM, FS_HZ, ARENA_MM)
    err = np.linalg.norm(result.point_mm - src[:, :2], axis=1)
    assert result.point_mm.shape == (len(src), 2)
    assert np.median(err) < 2.0, err
    assert np.percentile(err, 90) < 5.0, err
    assert result.bands_hz.shape == (len(src), 2)


def test_fixed_band_and_hyphenated_name(calls):
    src, audio = calls
    result = localize("gcc-phat", audio[:6], MICS_MM, FS_HZ, ARENA_MM, band_hz=(20e3, 60e3))
    assert result.method == "gcc_phat"
    assert np.allclose(result.bands_hz, [20e3, 60e3])
    assert np.median(np.linalg.norm(result.point_mm - src[:6, :2], axis=1)) < 2.0
    # the TDOAs themselves are right to a fraction of a sample
    exact = tdoa_s(src[:6], MICS_MM, C_M_S)
    assert np.max(np.abs(result.tdoa_s - exact)) * FS_HZ < 0.25


def test_auto_band_finds_the_chirp_band():
    freqs = np.linspace(0, 62_500, 4001)
    spec = np.where((freqs > 30e3) & (freqs < 45e3), 1.0, 1e-4)[None]
    lo, hi = estimate_band_hz(spec, freqs)[0]
    assert 28e3 < lo < 31e3 and 44e3 < hi < 47e3


@pytest.mark.parametrize("method", ["muse", "gcc_phat"])
def test_speed_of_sound_is_used(calls, method):
    src, audio = calls
    good = localize(method, audio[:12], MICS_MM, FS_HZ, ARENA_MM, temperature_c=20.0)
    hot = localize(method, audio[:12], MICS_MM, FS_HZ, ARENA_MM, speed_of_sound=1.1 * C_M_S)
    err_good = np.median(np.linalg.norm(good.point_mm - src[:12, :2], axis=1))
    err_hot = np.median(np.linalg.norm(hot.point_mm - src[:12, :2], axis=1))
    assert good.speed_of_sound_m_s == pytest.approx(C_M_S)
    assert err_hot > 3 * err_good + 2.0


def test_source_height_sets_the_search_plane():
    rng = np.random.default_rng(3)
    src = _sources(rng, 8, z_mm=120.0)
    audio = delayed_chirps(src, MICS_MM, FS_HZ, C_M_S)
    right = localize("muse", audio, MICS_MM, FS_HZ, ARENA_MM, source_height_mm=120.0)
    wrong = localize("muse", audio, MICS_MM, FS_HZ, ARENA_MM, source_height_mm=0.0)
    err_right = np.linalg.norm(right.point_mm - src[:, :2], axis=1)
    err_wrong = np.linalg.norm(wrong.point_mm - src[:, :2], axis=1)
    assert np.median(err_right) < 2.0
    assert np.median(err_wrong) > np.median(err_right) + 2.0
    assert right.grid.z_mm == 120.0


def test_maps_jackknife_and_variable_length_calls(calls):
    src, audio = calls
    res = localize(
        "muse_jackknife", audio[:3], MICS_MM, FS_HZ, ARENA_MM, resolution_mm=2.0, keep_maps=True
    )
    assert res.power_maps.shape == (3, 200, 300)
    assert res.power_maps.min() == pytest.approx(0.0) and res.power_maps.max() == pytest.approx(1.0)
    peak_rc = np.unravel_index(np.argmax(res.power_maps[0]), res.grid.shape)
    peak_xy = np.array([res.grid.x_mm[peak_rc[1]], res.grid.y_mm[peak_rc[0]]])
    assert np.linalg.norm(peak_xy - src[0, :2]) < 3.0
    assert res.jackknife_points_mm.shape == (3, 4, 2)
    assert np.allclose(res.point_mm, res.jackknife_points_mm.mean(axis=1))
    assert np.all(np.linalg.eigvalsh(res.jackknife_cov_mm2) >= -1e-9)
    # a list of calls of different lengths gives the same answer as the padded batch
    ragged = [audio[0, :6000], audio[1], audio[2, :7000]]
    res2 = localize("muse", ragged, MICS_MM, FS_HZ, ARENA_MM, resolution_mm=2.0)
    assert np.linalg.norm(res2.point_mm - src[:3, :2], axis=1).max() < 3.0


def test_bad_inputs_raise_invalid_input(calls):
    _, audio = calls
    a = audio[:2]
    with pytest.raises(InvalidInputError, match="method"):
        localize("beamformer", a, MICS_MM, FS_HZ, ARENA_MM)
    with pytest.raises(InvalidInputError, match="mic_positions_mm"):
        localize("muse", a, MICS_MM[:3], FS_HZ, ARENA_MM)
    with pytest.raises(InvalidInputError, match="mic_positions_mm"):
        localize("muse", a, MICS_MM[:, :2], FS_HZ, ARENA_MM)
    with pytest.raises(InvalidInputError, match="band_hz"):
        localize("muse", a, MICS_MM, FS_HZ, ARENA_MM, band_hz=(60e3, 20e3))
    with pytest.raises(InvalidInputError, match="band_hz"):
        localize("muse", a, MICS_MM, FS_HZ, ARENA_MM, band_hz=(20e3, 90e3))
    with pytest.raises(InvalidInputError, match="sample_rate_hz"):
        localize("muse", a, MICS_MM, 0.0, ARENA_MM)
    with pytest.raises(InvalidInputError, match="speed_of_sound"):
        localize("muse", a, MICS_MM, FS_HZ, ARENA_MM, speed_of_sound=-1.0)
    bad = a.copy()
    bad[0, 5, 1] = np.nan
    with pytest.raises(InvalidInputError, match="audio"):
        localize("gcc_phat", bad, MICS_MM, FS_HZ, ARENA_MM)
    with pytest.raises(InvalidInputError, match="audio"):
        localize("gcc_phat", np.zeros(100), MICS_MM, FS_HZ, ARENA_MM)
    with pytest.raises(InvalidInputError, match="audio"):
        localize("gcc_phat", a[:, :8], MICS_MM, FS_HZ, ARENA_MM)


@pytest.fixture(scope="module")
def anechoic_simulated_calls():
    """High-SNR calls rendered by the simulator through anechoic impulse responses."""
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.simulate.acoustics import AcousticConfig, CageAcoustics
    from napari_gerbil.simulate.stimuli import StimulusGenerator

    rng = np.random.default_rng(11)
    arena = default_cage()
    acoustics = CageAcoustics(arena, AcousticConfig(preset="anechoic"))
    generator = StimulusGenerator(acoustics.sample_rate_hz)
    classes = ["dfm_high", "ufm_high", "noisy_high", "white_noise_high", "dfm_mid", "ufm_mid"]
    src = np.c_[rng.uniform(-250, 250, 12), rng.uniform(-150, 150, 12), np.full(12, 40.0)]
    calls = []
    for k, source in enumerate(src):
        stim = generator.sample(classes[k % len(classes)], rng).waveform
        h = acoustics.rir(source)
        audio = np.stack([np.convolve(stim, h[:, m]) for m in range(h.shape[1])], axis=1)
        audio += rng.normal(0, 1e-3 * audio.std(), audio.shape)  # 60 dB SNR
        calls.append(audio.astype(np.float32))
    return src, calls, arena, acoustics.speed_m_per_s


@pytest.mark.parametrize("method", ["muse", "gcc_phat"])
def test_anechoic_simulated_calls_within_2_mm(anechoic_simulated_calls, method):
    src, calls, arena, c_m_s = anechoic_simulated_calls
    result = localize(
        method, calls, arena.mic_positions_mm, FS_HZ, arena.dims_mm,
        speed_of_sound=c_m_s, source_height_mm=40.0,
    )  # fmt: skip
    err = np.linalg.norm(result.point_mm - src[:, :2], axis=1)
    assert np.median(err) < 2.0, err
