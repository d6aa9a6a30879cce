"""Can a network learn what the fingerprint lookup recalls? A probe on a benchmark run.

Trains a small MLP (2 x 512, dropout 0.2, AdamW, MSE on positions) on the
cross-spectral phase features of ``napari_gerbil.baselines.fingerprint`` (the same
input the lookup compares), using member 0's training calls of a finished benchmark
run, and prints its median test error next to the lookup's.

Usage::

    python scripts/probe_recall.py --run benchmark_out/quick2 --datasets speaker robot
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from napari_gerbil.baselines.fingerprint import FingerprintIndex, fingerprints
from napari_gerbil.evaluate import runner
from napari_gerbil.io.vcl import VCLDataset
from napari_gerbil.training.data import load_split

SCALE_MM = 300.0


def features(calls) -> torch.Tensor:
    """In-band cos/sin of the cross-spectral phases, one row per call."""
    prints = fingerprints(calls)
    z = prints.phase * prints.band[..., None]
    flat = np.concatenate([z.real, z.imag], axis=-1).reshape(len(prints), -1)
    return torch.tensor(flat, dtype=torch.float32)


def probe(run: Path, dataset: str, epochs: int, seed: int) -> None:
    """Train an MLP on the lookup's features of one dataset; print its test error."""
    trainval = VCLDataset(run / "data" / f"{dataset}_trainval.h5")
    test = VCLDataset(run / "data" / f"{dataset}_test.h5")
    split, _ = load_split(run / "models" / dataset / "member_00" / "split.json")
    train_calls, train_xy = runner.dataset_calls([trainval], split["train"])
    test_calls, test_xy = runner.dataset_calls([test], np.array([(0, i) for i in range(len(test))]))
    lookup = FingerprintIndex(train_calls, train_xy).match(test_calls).point_mm
    x_train, x_test = features(train_calls), features(test_calls)
    y_train = torch.tensor(train_xy / SCALE_MM, dtype=torch.float32)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Dropout(0.2), torch.nn.Linear(x_train.shape[1], 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 2),
    )  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-3)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            loss = (net(x_train[batch]) - y_train[batch]).square().sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        mlp = net(x_test).numpy() * SCALE_MM
    for name, point in (("lookup", lookup), ("mlp", mlp)):
        err = np.linalg.norm(point - test_xy, axis=1)
        print(f"{dataset} {name}: median {np.median(err):.1f} mm, p90 "
              f"{np.percentile(err, 90):.1f} mm ({len(train_calls)} training calls)")  # fmt: skip


def main() -> None:
    """Probe every dataset of a benchmark run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="benchmark --out directory")
    parser.add_argument("--datasets", nargs="+", default=["speaker", "robot"])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for dataset in args.datasets:
        probe(args.run, dataset, args.epochs, args.seed)


if __name__ == "__main__":
    main()
