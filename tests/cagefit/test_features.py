"""The features cage fit compares: level ratios need no source waveform, expectations no draw."""

from __future__ import annotations

import numpy as np

from napari_gerbil.cagefit.features import (
    RATIO_BAND_EDGES_HZ,
    band_matrix,
    response_ratios,
    spectral_ratios,
)
from napari_gerbil.io.cage import builtin_cage
from napari_gerbil.simulate.renderer import ImageSourceRenderer
from napari_gerbil.simulate.room import RenderConfig, Room
from napari_gerbil.simulate.stimuli import StimulusGenerator

FS = 125000.0
SOURCES_MM = np.array([[120.0, -60.0, 40.0], [-180.0, 90.0, 35.0]])


def _renderer(scattering: float) -> ImageSourceRenderer:
    cage = builtin_cage("paper").with_changes(scattering=scattering)
    return ImageSourceRenderer(Room.from_cage(cage), FS, RenderConfig(caller="omni"))


def test_expected_energy_is_the_mean_of_random_draws():
    renderer = _renderer(0.4)  # a strong diffuse tail
    n_fft = 4096
    expected = renderer.expected_energy_spectra(SOURCES_MM, n_fft)
    draws = [np.abs(np.fft.rfft(renderer.rirs(SOURCES_MM, None, s), n=n_fft, axis=1)) ** 2
             for s in range(60)]  # fmt: skip
    bands = band_matrix(n_fft, FS)

    def db(energy):
        return 10 * np.log10(np.einsum("bf,sfm->sbm", bands, energy))

    got, mean = db(expected), db(np.mean(draws, axis=0))
    # no bias; 60 draws leave their mean a few tenths of a dB off where the tail rules
    assert abs((got - mean).mean()) < 0.1 and np.abs(got - mean).mean() < 0.3
    # one draw strays well beyond that: the tail is random, the expectation is not
    assert np.abs(db(draws[0]) - got).max() > 1.0


def test_level_ratios_of_calls_match_those_of_their_responses_whatever_the_call():
    renderer = _renderer(0.0)
    generator = StimulusGenerator(FS)
    n_fft = 1 << int(np.ceil(np.log2(renderer.rir_samples)))
    model = response_ratios(renderer.expected_energy_spectra(SOURCES_MM, n_fft), FS, n_fft)
    for cls in ("white_noise_mid", "dfm_mid", "noisy_high"):
        wave = generator.sample(cls, np.random.default_rng(3), 1.0).waveform
        calls = renderer.render(SOURCES_MM, [wave, wave], None, 1250, 0)
        # a noise floor 40 dB below the call's mean level: bands the call leaves empty drop out
        floor = 1e-4 * np.mean([np.mean(c**2) for c in calls])
        measured = spectral_ratios(calls, FS, np.full(renderer.n_mics, floor))
        ok = np.isfinite(measured)
        assert ok.mean() > 0.1, cls  # the call covers part of 15-60 kHz
        err = np.abs(measured - model)[ok]
        # the call cancels: within 1 dB in most bands (not at its band edges, where its
        # spectrum falls steeply within 1 kHz)
        assert np.median(err) < 0.5 and np.percentile(err, 75) < 1.0, (cls, np.median(err))
    assert len(RATIO_BAND_EDGES_HZ) - 1 == model.shape[1]
