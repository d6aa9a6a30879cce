"""The image-source renderer against pyroomacoustics (the reference) and against itself."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from napari_gerbil.io.cage import BAND_CENTRES_HZ, builtin_cage
from napari_gerbil.simulate.acoustics import energy_decay_db
from napari_gerbil.simulate.render import (
    ImageSourceRenderer,
    RenderConfig,
    Room,
    band_filters,
    image_table,
)

FS = 125000.0
SOURCE_MM = np.array([83.0, -41.0, 47.0])
WALLS = ("west", "east", "south", "north", "floor", "ceiling")


def _pra_rirs(room: Room, source_mm, max_order: int) -> list[np.ndarray]:
    """Pyroomacoustics' responses (t = 0 at emission) for the same room, band absorption."""
    import pyroomacoustics as pra

    materials = {
        w: pra.Material({"coeffs": list(a), "center_freqs": list(BAND_CENTRES_HZ)})
        for w, a in zip(WALLS, room.absorption, strict=True)
    }
    sim = pra.ShoeBox(
        room.dims_m, fs=int(FS), materials=materials, max_order=max_order, air_absorption=False
    )
    sim.set_sound_speed(room.speed_m_s)
    sim.add_source(room.to_room_m(source_mm))
    sim.add_microphone_array(room.mics_m.T)
    sim.compute_rir()
    delay = pra.constants.get("frac_delay_length") // 2
    return [np.asarray(sim.rir[m][0])[delay:] for m in range(room.n_mics)]


def _peak_time(h: np.ndarray, around: float, half_window: int = 6, up: int = 64) -> float:
    """Sub-sample time of the largest peak of ``h`` within ``around +- half_window``."""
    lo = int(np.floor(around)) - half_window - 8
    seg = h[lo : lo + 2 * half_window + 17]
    n = len(seg)
    spec = np.fft.rfft(seg * np.hanning(n + 2)[1:-1])
    fine = np.fft.irfft(spec, n * up) * up
    t = np.arange(n * up) / up
    sel = np.abs(t - (around - lo)) <= half_window
    k = np.flatnonzero(sel)[np.argmax(np.abs(fine[sel]))]
    a, b, c = np.abs(fine[k - 1 : k + 2])
    return lo + (k + 0.5 * (a - c) / (a - 2 * b + c)) / up


def test_image_table_counts_and_order():
    _, index, hits = image_table(2)
    order = hits.sum(axis=1)
    # 1 direct + 6 first-order + 18 second-order images in a shoebox
    assert len(order) == 25 and (np.bincount(order) == [1, 6, 18]).all()
    assert (np.diff(order) >= 0).all() and index.shape == (25, 3)
    assert len(image_table(20)[1]) == 11521  # as pyroomacoustics' ShoeBox at order 20


def test_band_filters_are_a_partition_of_unity():
    freqs = np.linspace(0, 62500, 1001)
    filters = band_filters(freqs)
    assert np.allclose(filters.sum(axis=0), 1.0) and (filters >= 0).all()


def test_direct_and_first_order_arrivals_match_pyroomacoustics():
    cage = builtin_cage("omni-corner").with_changes(
        absorption={"walls": 0.3, "floor": 0.5, "ceiling": 0.8}
    )
    room = Room.from_cage(cage)
    cfg = RenderConfig(
        max_order=1, specular_order=1, coherent_order=1, air_absorption=False, highpass_hz=0
    )
    renderer = ImageSourceRenderer(room, FS, cfg)
    mine = renderer.rirs(SOURCE_MM[None])[0]
    theirs = _pra_rirs(room, SOURCE_MM, max_order=1)
    # the 7 image positions (direct + one mirror per surface)
    src = room.to_room_m(SOURCE_MM)
    images = [src]
    for axis in range(3):
        for wall in (0.0, room.dims_m[axis]):
            img = src.copy()
            img[axis] = 2 * wall - src[axis]
            images.append(img)
    checked = 0
    for m in range(room.n_mics):
        delays = np.array([np.linalg.norm(i - room.mics_m[m]) for i in images]) / room.speed_m_s
        delays *= FS
        for k, t_geom in enumerate(delays):
            if np.sort(np.abs(delays - t_geom))[1] < 14:  # another arrival too close to resolve
                continue
            t_mine, t_pra = _peak_time(mine[:, m], t_geom), _peak_time(theirs[m], t_geom)
            assert abs(t_mine - t_pra) < 0.1, (m, k, t_mine, t_pra)
            assert abs(t_mine - t_geom) < 0.1
            checked += 1
    assert checked >= 10  # most of the 28 arrivals are resolvable


@pytest.mark.parametrize(
    "absorption",
    [
        {"walls": 0.15, "floor": 0.64, "ceiling": 0.94},  # the example cage
        {"walls": 0.05, "floor": 0.3, "ceiling": 0.25},  # reverberant
        {"walls": [0.10, 0.12, 0.14, 0.16, 0.18, 0.20, 0.22, 0.25], "floor": 0.5, "ceiling": 0.9},
    ],
)
def test_energy_decay_matches_pyroomacoustics(absorption):
    room = Room.from_cage(builtin_cage("omni-corner").with_changes(absorption=absorption))
    cfg = RenderConfig(max_order=20, air_absorption=False, highpass_hz=1000.0)
    mine = ImageSourceRenderer(room, FS, cfg).rirs(SOURCE_MM[None])[0]
    sos = butter(4, 1000.0, "highpass", fs=FS, output="sos")  # the same zero-phase high-pass
    for m, theirs in enumerate(_pra_rirs(room, SOURCE_MM, max_order=20)):
        n = min(len(theirs), len(mine))
        ref = energy_decay_db(sosfiltfilt(sos, theirs)[:n, None])[:, 0]
        got = energy_decay_db(mine[:n, m : m + 1])[:, 0]
        above = ref > -30.0
        assert np.abs(got - ref)[above].max() < 1.0, m


def test_compiled_kernel_equals_torch_path():
    cage = builtin_cage("paper8")  # 8 sub-cardioid mics, tilted
    room = Room.from_cage(cage)
    room.scattering = 0.0
    cfg = RenderConfig(max_order=8)
    sources = np.array([[101.0, 52.0, 21.0], [-198.0, -117.0, 79.0]])
    headings = np.array([np.nan, 1.0])  # one omni, one directional source
    a = ImageSourceRenderer(room, FS, cfg, kernel="compiled").rirs(sources, headings)
    b = ImageSourceRenderer(room, FS, cfg, kernel="torch").rirs(sources, headings)
    assert a.shape == (2, ImageSourceRenderer(room, FS, cfg).rir_samples, 8)
    # float32 (torch) and float64 (compiled) round a few late images to neighbouring samples
    close = np.isclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max())
    assert close.mean() > 0.999
    np.testing.assert_allclose((a**2).sum(axis=1), (b**2).sum(axis=1), rtol=0.01)


@pytest.mark.parametrize(
    ("caller", "low", "high"),
    [("cardioid", 3.0, np.inf), ("plausible", 1.2, 3.0), ("omni", 0.99, 1.01)],
)
def test_a_caller_facing_a_mic_is_louder_there_by_its_pattern(caller, low, high):
    room = Room.from_cage(builtin_cage("omni-corner"))
    cfg = RenderConfig(max_order=0, specular_order=0, coherent_order=0, caller=caller)
    r = ImageSourceRenderer(room, FS, cfg)
    # mic 1 sits at +x, -y; a source at the centre facing +x vs facing -x
    h = r.rirs(np.array([[0.0, 0.0, 50.0]] * 2), np.array([0.0, np.pi]))
    front, back = np.abs(h[0, :, 1]).max(), np.abs(h[1, :, 1]).max()
    # the cardioid has a null behind; the plausible head only a shadow (no null)
    assert low < front / back < high


def test_scattering_keeps_energy_and_adds_a_diffuse_tail():
    room = Room.from_cage(builtin_cage("omni-corner"))
    cfg = RenderConfig(air_absorption=False)
    plain = ImageSourceRenderer(room, FS, cfg).rirs(SOURCE_MM[None])[0][:, 0]
    room.scattering = 0.3
    diffuse = ImageSourceRenderer(room, FS, cfg).rirs(SOURCE_MM[None], seed=3)[0][:, 0]
    ratio = (diffuse**2).sum() / (plain**2).sum()
    assert 0.8 < ratio < 1.25  # the scattered share is redistributed, not lost

    def corr(a, b):
        return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))

    early, late = slice(0, 250), slice(1900, 3700)  # first 2 ms; 15-30 ms
    # direct sound and first reflections kept (their scattered 30 % feeds the field at once)
    assert corr(plain[early], diffuse[early]) > 0.6
    # the late field is partly diffuse (the scattered energy decays faster than the
    # grazing specular paths between the walls, which keep 0.7^n of theirs)
    assert corr(plain[late], diffuse[late]) < 0.6


def test_air_absorption_darkens_the_tail():
    room = Room.from_cage(builtin_cage("omni-corner"))
    dry = ImageSourceRenderer(room, FS, RenderConfig(air_absorption=False)).rirs(SOURCE_MM[None])
    wet = ImageSourceRenderer(room, FS, RenderConfig(air_absorption=True)).rirs(SOURCE_MM[None])
    late = slice(2000, 3500)
    spec_dry = np.abs(np.fft.rfft(dry[0, late, 0]))
    spec_wet = np.abs(np.fft.rfft(wet[0, late, 0]))
    freqs = np.fft.rfftfreq(1500, 1 / FS)
    hi, lo = freqs > 40000, (freqs > 5000) & (freqs < 10000)
    loss_hi = (spec_wet[hi] ** 2).sum() / (spec_dry[hi] ** 2).sum()
    loss_lo = (spec_wet[lo] ** 2).sum() / (spec_dry[lo] ** 2).sum()
    # at 2000-3500 samples sound has travelled 5.5-9.6 m: ~2 dB/m at 50 kHz, ~0.1 at 7 kHz
    assert loss_hi < 0.1 and loss_lo > 0.6


def test_render_plays_the_stimulus_through_the_response():
    room = Room.from_cage(builtin_cage("omni-corner"))
    r = ImageSourceRenderer(room, FS, RenderConfig(air_absorption=False))
    click = np.zeros(200, np.float32)
    click[0] = 1.0
    noise = np.random.default_rng(0).standard_normal(500).astype(np.float32)
    y_click, y_noise = r.render(np.stack([SOURCE_MM] * 2), [click, noise], tail_samples=100)
    h = r.rirs(SOURCE_MM[None])[0]
    assert y_click.shape == (300, 4) and y_noise.shape == (600, 4)
    np.testing.assert_allclose(y_click, h[:300], atol=1e-4 * np.abs(h).max())
    expected = np.stack([np.convolve(noise, h[:, m])[:600] for m in range(4)], axis=1)
    # (within 1 %: the zero-phase filters' precursors before t = 0 are kept by render)
    np.testing.assert_allclose(y_noise, expected, atol=1e-2 * np.abs(expected).max())
