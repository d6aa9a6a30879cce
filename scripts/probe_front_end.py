"""Which acoustics and front end make new positions learnable? A fast, feature-level probe.

Renders ``--n`` training calls and ``--test`` calls (another seed: positions never
trained on) with the data engine, computes GCC-PHAT lag curves of all 6 microphone
pairs (+-256 lags) in numpy once, and trains the ``gcc`` preset's reader (a 1-D CNN
over the 6 curves, 32-32-64-64 channels, then MLP 256 -> x, y) on the cached features
for ``--epochs`` epochs (Adam, one-cycle, mean Euclidean loss). Prints the median error
on the training and test positions every 5 epochs: the gap is memorization.

Cages: a built-in name, ``NAME:PRESET`` (a built-in cage with another absorption
preset, e.g. ``paper:anechoic``) or a cage file. Front ends (``--front-end``):
``phat`` (full band), ``band`` (PHAT, 15-62 kHz), ``subbands`` (full band plus four
sub-bands: 30 curves)::

    python scripts/probe_front_end.py --cage paper --n 6000 --epochs 30
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

LAG = 256
N_FFT = 16384
FS_HZ = 125000.0
SUBBANDS_HZ = ((0.0, 1e9), (15e3, 25e3), (25e3, 35e3), (35e3, 45e3), (45e3, 63e3))


def cage_from_spec(spec: str):
    """A cage from ``NAME``, ``NAME:PRESET`` or a file."""
    from napari_gerbil.io.cage import builtin_cage, load_cage

    if ":" in spec:
        name, preset = spec.split(":", 1)
        return builtin_cage(name, preset)
    return load_cage(spec)


def lag_curves(audio: np.ndarray, front_end: str) -> np.ndarray:
    """(n_curves, 2 * LAG + 1) GCC-PHAT curves of one (n_samples, 4) call, peak 1."""
    spec = np.fft.rfft(audio.T.astype(np.float64), n=N_FFT)
    freq_hz = np.fft.rfftfreq(N_FFT, 1 / FS_HZ)
    bands = {"phat": SUBBANDS_HZ[:1], "band": ((15e3, 62e3),), "subbands": SUBBANDS_HZ}[front_end]
    out = []
    for a in range(4):
        for b in range(a + 1, 4):
            cross = spec[a] * np.conj(spec[b])
            white = cross / (np.abs(cross) + 1e-20)
            for lo, hi in bands:
                c = np.fft.irfft(white * ((freq_hz >= lo) & (freq_hz < hi)), n=N_FFT)
                out.append(np.r_[c[-LAG:], c[: LAG + 1]])
    curves = np.array(out, np.float32)
    return curves / (np.abs(curves).max(axis=1, keepdims=True) + 1e-12)


def _batch(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    from napari_gerbil.simulate.engine import DataEngine, EngineConfig

    spec, seed, index, randomize, front_end = job
    engine = DataEngine(cage_from_spec(spec), EngineConfig(randomize=randomize), seed)
    batch = engine.batch(index)
    x = np.stack([lag_curves(a, front_end) for a in batch.audio])
    return x, batch.locations_mm[:, :2].astype(np.float32)


def features(spec: str, seed: int, n: int, randomize: bool, front_end: str):
    """(n, n_curves, n_lags) features and (n, 2) positions, rendered on 2 processes."""
    jobs = [(spec, seed, i, randomize, front_end) for i in range(-(-n // 32))]
    with ProcessPoolExecutor(2) as pool:
        parts = list(pool.map(_batch, jobs))
    return np.concatenate([p[0] for p in parts])[:n], np.concatenate([p[1] for p in parts])[:n]


def reader(n_curves: int):
    """The ``gcc`` preset's lag-curve CNN and MLP head, predicting (x, y) / 300 mm."""
    from torch import nn

    layers, prev, n = [], n_curves, 2 * LAG + 1
    for i, ch in enumerate((32, 32, 64, 64)):
        stride = 1 if i == 0 else 2
        layers += [nn.Conv1d(prev, ch, 7, stride, 3), nn.BatchNorm1d(ch), nn.ReLU()]
        n, prev = (n - 1) // stride + 1, ch
    return nn.Sequential(
        *layers, nn.Flatten(), nn.Linear(prev * n, 256), nn.ReLU(), nn.Linear(256, 2)
    )


def main() -> None:
    """Render, train, print train and test medians."""
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cage", default="paper")
    p.add_argument("--n", type=int, default=6000, help="training calls (distinct positions)")
    p.add_argument("--test", type=int, default=512)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--randomize", action="store_true", help="domain randomization on")
    p.add_argument("--front-end", choices=("phat", "band", "subbands"), default="phat")
    a = p.parse_args()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    x, y = features(a.cage, 7, a.n, a.randomize, a.front_end)
    xt, yt = features(a.cage, 999_999, a.test, a.randomize, a.front_end)
    print(f"rendered {a.n} + {a.test} calls in {time.perf_counter() - t0:.0f} s", flush=True)
    x, y, xt, yt = (torch.from_numpy(v) for v in (x, y / 300, xt, yt / 300))
    net = reader(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    steps = len(x) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=a.epochs * steps)
    for epoch in range(a.epochs):
        net.train()
        order = torch.randperm(len(x))
        for i in range(steps):
            idx = order[i * 64 : (i + 1) * 64]
            loss = (net(x[idx]) - y[idx]).norm(dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 5 == 0 or epoch + 1 == a.epochs:
            net.eval()
            with torch.no_grad():
                test_mm = ((net(xt) - yt).norm(dim=-1) * 300).median()
                train_mm = ((net(x[:512]) - y[:512]).norm(dim=-1) * 300).median()
            print(f"epoch {epoch + 1}: test {test_mm:.1f} mm, train {train_mm:.1f} mm", flush=True)


if __name__ == "__main__":
    main()
