"""The caller's directivity: a mouth on a rigid head, against the published ranges."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.simulate.caller import (
    HEAD_RADII_MM,
    MOUTH_RADII_MM,
    N_COS,
    caller_gain_tables,
    mean_square_gain,
    sphere_cap_directivity,
)
from napari_gerbil.simulate.render import RENDER_BANDS_HZ, RenderConfig

ANGLES_DEG = np.array([0.0, 90.0, 135.0, 180.0])
#: (low, high) dB at 90, 135 and 180 deg. 20-70 kHz: a head-sized rigid sphere gives about
#: -3.5, -8 to -12 and -4 to -7 dB; a mouth narrows the beam a little more at 60 kHz.
#: 5 kHz: the head is small against the wavelength (k a < 1.2): nearly omnidirectional.
RANGES_DB = {
    5e3: [(-4.0, 0.0), (-5.0, 0.0), (-4.0, 0.0)],
    20e3: [(-5.0, -2.0), (-11.0, -6.0), (-7.0, -3.0)],
    60e3: [(-6.0, -2.5), (-14.0, -8.0), (-9.0, -4.0)],
}


def _db(freq_hz: float, head_mm: float, mouth_mm: float) -> np.ndarray:
    gain = sphere_cap_directivity(np.cos(np.radians(ANGLES_DEG)), [freq_hz], head_mm, mouth_mm)
    return 20 * np.log10(gain[0])


@pytest.mark.parametrize("freq_hz", sorted(RANGES_DB))
@pytest.mark.parametrize("head_mm", [HEAD_RADII_MM[0], HEAD_RADII_MM[-1]])
@pytest.mark.parametrize("mouth_mm", [MOUTH_RADII_MM[0], MOUTH_RADII_MM[-1]])
def test_pattern_lies_in_the_published_ranges(freq_hz, head_mm, mouth_mm):
    level = _db(freq_hz, head_mm, mouth_mm)
    assert level[0] == pytest.approx(0.0, abs=1e-9)
    for value, (low, high) in zip(level[1:], RANGES_DB[freq_hz], strict=True):
        assert low <= value <= high, (freq_hz, head_mm, mouth_mm, level.round(1))


@pytest.mark.parametrize("head_mm", HEAD_RADII_MM)
@pytest.mark.parametrize("mouth_mm", MOUTH_RADII_MM)
def test_no_null_anywhere_and_the_beam_narrows_with_frequency(head_mm, mouth_mm):
    cos = np.linspace(-1, 1, 181)
    gain = sphere_cap_directivity(cos, RENDER_BANDS_HZ, head_mm, mouth_mm)
    # no null: the deepest point is the ring around the rear bright spot (-18 to -24 dB
    # at 62.5 kHz), where the cardioid reaches zero
    assert gain.min() > 10 ** (-25 / 20)
    # the energy radiated sideways and behind falls as frequency rises (5 -> 60 kHz)
    f = np.asarray(RENDER_BANDS_HZ)
    ms = mean_square_gain(gain.T)  # (n_bands,) over the sphere
    assert ms[f == 62500.0][0] < ms[f == 16000.0][0] < ms[f == 4000.0][0]


def test_tables_per_caller():
    rng = np.random.default_rng(0)
    plausible = caller_gain_tables("plausible", 20, RENDER_BANDS_HZ, rng)
    assert plausible.shape == (20, N_COS, len(RENDER_BANDS_HZ))
    assert np.allclose(plausible[:, -1], 1.0)  # ahead
    assert len({tuple(t[0].round(4)) for t in plausible}) > 1  # heads and mouths vary
    cardioid = caller_gain_tables("cardioid", 3, RENDER_BANDS_HZ, rng, cardioid_p=0.5)
    assert cardioid[:, 0].max() == pytest.approx(0.0)  # the harsh row: a null behind
    assert cardioid[:, N_COS // 2] == pytest.approx(0.5)
    assert np.all(caller_gain_tables("omni", 2, RENDER_BANDS_HZ, rng) == 1.0)
    with pytest.raises(ValueError, match="caller"):
        caller_gain_tables("bat", 1, RENDER_BANDS_HZ, rng)


def test_render_config_refuses_an_unknown_caller():
    with pytest.raises(InvalidInputError, match="caller"):
        RenderConfig(caller="cardiod")
