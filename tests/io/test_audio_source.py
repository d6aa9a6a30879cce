"""Lazy multichannel audio: HDF5 datasets, multichannel WAV, one WAV per channel."""

from __future__ import annotations

import pickle
import tracemalloc
import wave

import h5py
import numpy as np
import pytest
from scipy.io import wavfile

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.audio import AudioSource


@pytest.fixture
def signal(rng):
    return rng.standard_normal((5000, 4)).astype(np.float32)


def test_hdf5_source_reads_slices(tmp_path, signal):
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as f:
        f["audio"] = signal
        f.attrs["sample_rate_hz"] = 125000.0
    src = AudioSource.open(path)
    assert (src.n_samples, src.n_channels, src.sample_rate_hz) == (5000, 4, 125000.0)
    assert src.duration_s == pytest.approx(0.04)
    np.testing.assert_array_equal(src.read(100, 350), signal[100:350])
    np.testing.assert_array_equal(src.read_seconds(0.0, 0.001), signal[:125])
    assert src.read(7, 7).shape == (0, 4)
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone.read(4990, 5000), signal[4990:])
    src.close()


def test_hdf5_rate_from_argument_or_refused(tmp_path, signal):
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as f:
        f["mics/raw"] = signal
    with pytest.raises(InvalidInputError, match="sample_rate_hz"):
        AudioSource.open(path, dataset="mics/raw")
    src = AudioSource.open(path, dataset="mics/raw", sample_rate_hz=250000)
    assert src.sample_rate_hz == 250000 and src.dataset == "/mics/raw"
    with pytest.raises(InvalidInputError, match="/nope"):
        AudioSource.open(path, dataset="nope", sample_rate_hz=1)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32])
def test_multichannel_wav(tmp_path, signal, dtype):
    if dtype == np.float32:
        data, scale = signal, 1.0
    else:
        scale = float(np.iinfo(dtype).max + 1)
        data = np.clip(signal * 0.2 * scale, -scale, scale - 1).astype(dtype)
    path = tmp_path / "rec.wav"
    wavfile.write(path, 125000, data)
    src = AudioSource.open(path)
    assert (src.n_samples, src.n_channels, src.sample_rate_hz) == (5000, 4, 125000)
    got = src.read(1000, 1200)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, data[1000:1200] / scale, rtol=1e-6)
    assert np.abs(src.read(0, 5000)).max() <= 1.0 or dtype == np.float32


def test_one_wav_per_channel(tmp_path, signal):
    paths = []
    for ch in range(4):
        paths.append(tmp_path / f"ch{ch}.wav")
        wavfile.write(paths[-1], 125000, (signal[:, ch] * 1000).astype(np.int16))
    src = AudioSource.open(paths)
    assert src.n_channels == 4 and src.n_samples == 5000
    expected = (signal * 1000).astype(np.int16)[2000:2100] / 32768.0
    np.testing.assert_allclose(src.read(2000, 2100), expected, rtol=1e-6)


def test_per_channel_wavs_must_agree(tmp_path, signal):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    wavfile.write(a, 125000, signal[:, 0])
    wavfile.write(b, 125000, signal[:-1, 1])
    with pytest.raises(InvalidInputError, match="n_samples") as err:
        AudioSource.open([a, b])
    assert "b.wav" in str(err.value)
    wavfile.write(b, 96000, signal[:, 1])
    with pytest.raises(InvalidInputError, match="sample_rate_hz"):
        AudioSource.open([a, b])
    wavfile.write(b, 125000, signal[:, 1:3])
    with pytest.raises(InvalidInputError, match="1 channel per file"):
        AudioSource.open([a, b])


def test_out_of_range_and_missing_files(tmp_path, signal):
    path = tmp_path / "rec.wav"
    wavfile.write(path, 125000, signal)
    src = AudioSource.open(path)
    for start, stop in [(-1, 10), (10, 5), (4990, 5001)]:
        with pytest.raises(InvalidInputError, match="sample range"):
            src.read(start, stop)
    with pytest.raises(InvalidInputError, match="no such file"):
        AudioSource.open(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFFjunk")
    with pytest.raises(InvalidInputError, match="WAV"):
        AudioSource.open(tmp_path / "junk.wav")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(InvalidInputError, match="HDF5 or WAV"):
        AudioSource.open(tmp_path / "junk.h5")


def _write_big_wav(path, n_frames, n_channels, block=1 << 18):
    """A large int16 WAV written block by block (never all in memory)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(n_channels)
        w.setsampwidth(2)
        w.setframerate(125000)
        for start in range(0, n_frames, block):
            idx = np.arange(start, min(start + block, n_frames))
            frames = (idx[:, None] * 7 + np.arange(n_channels)) % 20000
            w.writeframes(frames.astype("<i2").tobytes())


def test_slice_of_a_200_mb_wav_allocates_only_the_slice(tmp_path):
    n_frames, n_channels = 25_000_000, 4  # 200 MB of int16
    path = tmp_path / "big.wav"
    _write_big_wav(path, n_frames, n_channels)
    assert path.stat().st_size > 200e6
    tracemalloc.start()
    try:
        src = AudioSource.open(path)
        got = src.read(20_000_000, 20_012_500)  # 0.1 s in the middle
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    idx = np.arange(20_000_000, 20_012_500)
    expected = ((idx[:, None] * 7 + np.arange(4)) % 20000) / 32768.0
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert src.n_samples == n_frames
    src.close()
    path.unlink()  # do not keep 200 MB in pytest's temp dirs
    assert peak < 5e6, f"peak {peak / 1e6:.1f} MB for a 0.2 MB slice"


def test_slice_of_a_large_hdf5_dataset_allocates_only_the_slice(tmp_path):
    path = tmp_path / "big.h5"
    n, block = 8_000_000, 1 << 20  # 128 MB of float32, 4 channels
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("audio", (n, 4), dtype=np.float32, chunks=(16384, 4))
        f.attrs["sample_rate_hz"] = 125000.0
        for start in range(0, n, block):
            stop = min(start + block, n)
            ds[start:stop] = np.arange(start, stop, dtype=np.float32)[:, None]
    tracemalloc.start()
    try:
        got = AudioSource.open(path).read(7_000_000, 7_010_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got[:, 2], np.arange(7_000_000, 7_010_000, dtype=np.float32))
    path.unlink()
    assert peak < 5e6, f"peak {peak / 1e6:.1f} MB"
