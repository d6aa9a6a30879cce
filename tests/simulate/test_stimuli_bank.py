"""Stimulus classes, noise and the RIR bank."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from scipy.signal import fftconvolve

from napari_gerbil.cli.main import main
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import default_cage
from napari_gerbil.simulate.acoustics import AcousticConfig, CageAcoustics
from napari_gerbil.simulate.noise import NoiseSource
from napari_gerbil.simulate.rir_bank import RIRBank, compute_rir_bank
from napari_gerbil.simulate.stimuli import (
    STIMULUS_CLASSES,
    TYPE_BANDS_HZ,
    VOLUME_DB,
    StimulusGenerator,
    split_class,
)

FS = 125000.0


def test_eighteen_classes():
    assert len(STIMULUS_CLASSES) == 18 == len(set(STIMULUS_CLASSES))
    assert {split_class(c)[0] for c in STIMULUS_CLASSES} == set(TYPE_BANDS_HZ)


@pytest.mark.parametrize("stimulus_class", STIMULUS_CLASSES)
def test_spectrum_lies_in_the_stated_band(stimulus_class):
    gen = StimulusGenerator(FS)
    rng = np.random.default_rng(STIMULUS_CLASSES.index(stimulus_class))
    kind, volume = split_class(stimulus_class)
    type_lo, type_hi = TYPE_BANDS_HZ[kind]
    n_fft = 1 << 15
    freqs = np.fft.rfftfreq(n_fft, 1 / FS)
    levels = []
    for _ in range(6):
        s = gen.sample(stimulus_class, rng)
        assert s.stimulus_class == stimulus_class
        assert 0.0099 <= len(s.waveform) / FS <= 0.1001
        lo, hi = s.band_hz
        assert type_lo <= lo < hi <= type_hi
        power = np.abs(np.fft.rfft(s.waveform, n_fft)) ** 2
        in_band = (freqs >= lo - 1000.0) & (freqs <= hi + 1000.0)
        assert power[in_band].sum() > 0.99 * power.sum()
        levels.append(20 * np.log10(np.sqrt(np.mean(s.waveform.astype(float) ** 2))))
    assert np.mean(levels) == pytest.approx(VOLUME_DB[volume], abs=2.0)


def test_stimuli_are_random_but_seeded():
    gen = StimulusGenerator(FS)
    a = gen.sample("dfm_high", np.random.default_rng(1)).waveform
    b = gen.sample("dfm_high", np.random.default_rng(1)).waveform
    c = gen.sample("dfm_high", np.random.default_rng(2)).waveform
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_bad_stimulus_requests():
    with pytest.raises(InvalidInputError, match="stimulus_class"):
        StimulusGenerator(FS).sample("bark_high", np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="sample_rate_hz"):
        StimulusGenerator(44100.0)


def test_noise_has_the_requested_rms_and_is_continuous(rng):
    src = NoiseSource(4, FS, 0.5, rng)
    x = np.concatenate([src.next(20000), src.next(30000)])
    assert x.shape == (50000, 4) and x.dtype == np.float32
    assert np.sqrt(np.mean(x.astype(float) ** 2)) == pytest.approx(0.5, rel=0.05)
    # channels are independent
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.05
    with pytest.raises(InvalidInputError):
        NoiseSource(4, FS, -1.0, rng)


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory):
    acoustics = CageAcoustics(default_cage(), AcousticConfig(octave_bands=False, max_order=15))
    locs = np.array([[-200.0, -100.0, 40.0], [0.0, 0.0, 40.0], [150.0, 120.0, 60.0]])
    path = tmp_path_factory.mktemp("bank") / "bank.h5"
    compute_rir_bank(path, acoustics, locs)
    return path, acoustics, locs


def test_bank_reads_like_vocalocator(small_bank):
    path, acoustics, locs = small_bank
    with h5py.File(path, "r") as f:  # plain h5py, as vocalocator reads RIR datasets
        idx = f["rir_length_idx"][:]
        assert len(idx) == len(locs) + 1 and idx[0] == 0
        rir1 = f["rir"][idx[1] : idx[2], :]
        np.testing.assert_array_equal(f["locations"][1], locs[1])
    np.testing.assert_allclose(rir1, acoustics.rir(locs[1]), atol=1e-6)


def test_bank_render_is_convolution_plus_noise(small_bank, rng):
    path, _, locs = small_bank
    bank = RIRBank.open(path)
    assert len(bank) == 3 and bank.n_mics == 4
    np.testing.assert_array_equal(bank.locations_mm, locs)
    stim = StimulusGenerator(FS).sample("ufm_high", rng).waveform
    clean = bank.render(2, stim)
    expected = fftconvolve(stim[:, None].astype(float), bank.response(2).astype(float), axes=0)
    np.testing.assert_allclose(clean, expected, atol=1e-4)
    noisy = bank.render(2, stim, rng, noise_rms=0.01)
    assert np.std(noisy - clean) == pytest.approx(0.01, rel=0.1)
    audio, loc, cls = bank.sample(np.random.default_rng(3))
    assert audio.shape[1] == 4 and loc.shape == (3,) and cls in STIMULUS_CLASSES
    with pytest.raises(InvalidInputError, match="index"):
        bank.render(3, stim)


def test_bank_workers_do_not_change_the_result(small_bank, tmp_path):
    path, acoustics, locs = small_bank
    compute_rir_bank(tmp_path / "b2.h5", acoustics, locs, n_workers=2)
    np.testing.assert_array_equal(RIRBank.open(path).rir, RIRBank.open(tmp_path / "b2.h5").rir)


def test_corrupt_bank_is_refused(small_bank, tmp_path):
    path, _, _ = small_bank
    bad = tmp_path / "bad.h5"
    with h5py.File(path, "r") as src, h5py.File(bad, "w") as f:
        f["rir"] = src["rir"][:]
        f["locations"] = src["locations"][:]
        f["rir_length_idx"] = src["rir_length_idx"][:][::-1]
        f.attrs["sample_rate_hz"] = FS
    with pytest.raises(InvalidInputError, match="rir_length_idx"):
        RIRBank.open(bad)
    with h5py.File(bad, "a") as f:
        del f["locations"]
    with pytest.raises(InvalidInputError, match="locations"):
        RIRBank.open(bad)
    with pytest.raises(InvalidInputError, match="no such file"):
        RIRBank.open(tmp_path / "missing.h5")


def test_validate_and_info_recognise_a_bank(small_bank, tmp_path, capsys):
    path, _, _ = small_bank
    assert main(["validate", str(path)]) == 0
    assert "valid RIR bank: 3 positions, 4 microphones" in capsys.readouterr().out
    assert main(["info", str(path)]) == 0
    assert "RIR bank" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("field", "corrupt"),
    [
        ("/rir", lambda f: f["rir"].__setitem__((5, 2), np.nan)),
        ("/rir_length_idx", lambda f: f["rir_length_idx"].__setitem__(1, 0)),
        ("/locations", lambda f: f["locations"].__setitem__((2, 0), 900.0)),  # outside
        ("/locations", lambda f: f.__delitem__("locations")),
        ("sample_rate_hz", lambda f: f.attrs.__delitem__("sample_rate_hz")),
    ],
)
def test_validate_names_the_bad_field_of_a_bank(small_bank, tmp_path, capsys, field, corrupt):
    bad = tmp_path / "bad.h5"
    shutil.copy(small_bank[0], bad)
    with h5py.File(bad, "a") as f:
        corrupt(f)
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr()
    assert f"field '{field}'" in out.err and "valid RIR bank" not in out.out
