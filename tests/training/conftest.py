"""Fixtures of the training tests: a small hand-made pure-delay VCL dataset.

Each call is a linear chirp emitted on the floor and received by the 4 ceiling
microphones of the ``omni-corner`` cage with its exact propagation delay (fractional, by a
phase shift) and 1/r attenuation, plus one floor reflection and a little noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.io.cage import builtin_cage
from napari_gerbil.io.vcl import write_vcl

SAMPLE_RATE_HZ = 125000.0
SPEED_OF_SOUND_MM_PER_S = 343000.0


def delayed_call(source_mm, mics_mm, rng, n_samples=4000) -> np.ndarray:
    """(n_samples, n_mics) chirp received at each mic with its propagation delay."""
    t = np.arange(1024) / SAMPLE_RATE_HZ
    f0, f1 = rng.uniform(15e3, 30e3), rng.uniform(35e3, 55e3)
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * t[-1]) * t**2)) * np.hanning(1024)
    n_fft = 2 * n_samples
    spec = np.fft.rfft(chirp, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE_HZ)
    out = np.zeros((n_samples, len(mics_mm)))
    images = [np.asarray(source_mm, float), np.asarray(source_mm, float) * [1, 1, -1]]
    for m, mic in enumerate(mics_mm):
        for k, src in enumerate(images):
            dist = np.linalg.norm(mic - src)
            delay = 300 + dist / SPEED_OF_SOUND_MM_PER_S * SAMPLE_RATE_HZ
            gain = (0.5 if k else 1.0) * 300.0 / dist
            shifted = np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * delay / SAMPLE_RATE_HZ))
            out[:, m] += gain * shifted[:n_samples]
    return (out + 0.01 * rng.standard_normal(out.shape)).astype(np.float32)


def write_delay_dataset(path, n_calls: int, seed: int = 0):
    """Write a pure-delay VCL file of ``n_calls`` calls at random floor positions."""
    cage = builtin_cage("omni-corner").arena()  # 600 x 400 mm: the tests' numbers
    rng = np.random.default_rng(seed)
    half = cage.dims_mm[:2] / 2 - 30
    xy = rng.uniform(-half, half, size=(n_calls, 2))
    src = np.column_stack([xy, np.full(n_calls, 20.0)])
    calls = [
        delayed_call(s, cage.mic_positions_mm, rng, int(rng.integers(3000, 5000))) for s in src
    ]
    return write_vcl(
        path,
        calls,
        src[:, None, :],
        node_names=["source"],
        sample_rate_hz=SAMPLE_RATE_HZ,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
        scenario="pure-delay",
    )


@pytest.fixture(scope="session")
def delay_dataset(tmp_path_factory):
    """A 400-call pure-delay VCL dataset."""
    return write_delay_dataset(tmp_path_factory.mktemp("delay") / "delay.h5", 400, seed=1)


#: Network input length of the training tests (the calls are 3000-5000 samples).
TEST_LENGTH = 4096


def quick_config(**changes):
    """A quick TrainingConfig for tests (Adam, no white noise, small batches)."""
    from napari_gerbil.training.config import TrainingConfig

    base = dict(
        epochs=6, batch_size=16, optimizer="adam", learning_rate=0.003, noise_p=0.0,
        checkpoint_every_s=0.0,
    )  # fmt: skip
    base.update(changes)
    return TrainingConfig(**base)


@pytest.fixture(scope="session")
def tiny_ensemble(delay_dataset, tmp_path_factory):
    """A 2-member ``tiny`` ensemble trained on the pure-delay dataset (the slow part)."""
    import torch

    from napari_gerbil.model.presets import get_preset
    from napari_gerbil.training.ensembles import train_ensemble

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is faster than two, and fair to CI
    try:
        out = tmp_path_factory.mktemp("models") / "tiny"
        net = get_preset("tiny", input_length_samples=TEST_LENGTH)
        return train_ensemble(net, quick_config(), [delay_dataset], out, 2, show_progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def make_config():
    """The :func:`quick_config` factory."""
    return quick_config


@pytest.fixture(scope="session")
def small_delay_dataset(delay_dataset, tmp_path_factory):
    """The first 60 calls of :func:`delay_dataset` (48 for training): multi-process tests."""
    from napari_gerbil.io.vcl import VCLDataset

    ds = VCLDataset(delay_dataset)
    return write_vcl(
        tmp_path_factory.mktemp("small") / "small.h5",
        [ds.call_audio(i) for i in range(60)],
        ds.locations_mm[:60],
        node_names=ds.node_names,
        sample_rate_hz=ds.sample_rate_hz,
        arena_dims_mm=ds.arena_dims_mm,
        mic_positions_mm=ds.mic_positions_mm,
    )
