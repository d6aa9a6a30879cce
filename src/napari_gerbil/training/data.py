"""Torch datasets over VCL files: split, random crops, augmentations, epoch-keyed seeds.

Every random choice for a call (crop offset, augmentations) comes from a generator
seeded with (member seed, epoch, call index), and the order of an epoch from one
seeded with (member seed, epoch). A run is therefore reproducible per seed, does
not depend on the number of DataLoader workers, and can resume mid-epoch exactly.
Workers open the HDF5 files themselves (:class:`~napari_gerbil.io.vcl.VCLDataset`
reopens after pickling).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text
from napari_gerbil.io.vcl import VCLDataset
from napari_gerbil.model.preprocess import crop_or_pad
from napari_gerbil.training.config import TrainingConfig

SPLITS = ("train", "val", "test")


def augment(audio: np.ndarray, rng: np.random.Generator, config: TrainingConfig) -> np.ndarray:
    """Time masking, white noise and polarity inversion, each with its probability.

    ``audio`` is z-scored (n_samples, n_channels) float32; returns a new array.
    """
    out = audio.copy()
    n = out.shape[0]
    if rng.random() < config.time_mask_p:
        span = int(rng.integers(1, max(2, int(config.time_mask_max_fraction * n) + 1)))
        start = int(rng.integers(0, n - span + 1))
        out[start : start + span] = 0.0
    if rng.random() < config.noise_p:
        std = rng.uniform(*config.noise_std_range)
        out += (rng.standard_normal(out.shape) * std).astype(np.float32)
    if rng.random() < config.invert_p:
        out = -out
    return out


def make_split(
    n_calls: Sequence[int], fractions: Sequence[float], seed: int
) -> dict[str, np.ndarray]:
    """Randomly split pooled calls of several files 8:1:1 (by ``fractions``).

    Returns ``{"train", "val", "test"}`` -> (n, 2) int arrays of (file index, call index).
    Validation and test get at least one call each when there are 3 calls or more.
    """
    pooled = np.array([(d, i) for d, n in enumerate(n_calls) for i in range(n)], dtype=np.int64)
    total = len(pooled)
    if total < 3:
        raise InvalidInputError(None, "datasets", "at least 3 calls in all", f"{total} calls")
    order = np.random.default_rng(seed).permutation(total)
    n_val = max(1, int(round(fractions[1] * total))) if fractions[1] > 0 else 0
    n_test = max(1, int(round(fractions[2] * total))) if fractions[2] > 0 else 0
    n_train = total - n_val - n_test
    parts = np.split(order, [n_train, n_train + n_val])
    return {name: pooled[np.sort(idx)] for name, idx in zip(SPLITS, parts, strict=True)}


def save_split(path: Path, split: dict[str, np.ndarray], dataset_paths: Sequence[str]) -> None:
    """Write the split as JSON: the files and, per part, (file, call) index pairs."""
    data = {"datasets": [str(p) for p in dataset_paths]}
    data.update({k: v.tolist() for k, v in split.items()})
    atomic_write_text(path, json.dumps(data))


def load_split(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read a split written by :func:`save_split` (malformed: InvalidInputError)."""
    from napari_gerbil.io.inputs import check_input_file

    path = check_input_file(path, "--split", "split.json file")
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, OSError) as exc:
        raise InvalidInputError(path, "<file>", "a JSON split file", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise InvalidInputError(path, "<root>", "a JSON object", type(data).__name__)
    datasets = data.get("datasets")
    if not (isinstance(datasets, list) and all(isinstance(d, str) for d in datasets)):
        raise InvalidInputError(path, "datasets", "a list of file paths", repr(datasets)[:120])
    split = {}
    for k in SPLITS:
        pairs: np.ndarray | None
        try:
            pairs = np.asarray(data[k])
            ok = pairs.size == 0 or (pairs.dtype.kind in "iu" and pairs.ndim == 2)
            pairs = pairs.astype(np.int64).reshape(-1, 2) if ok else None
        except (KeyError, ValueError, TypeError):
            pairs = None
        if pairs is None or (pairs < 0).any() or (pairs[:, 0] >= len(datasets)).any():
            raise InvalidInputError(
                path,
                k,
                f"(file, call) pairs of non-negative integers, file < {len(datasets)}",
                repr(data.get(k))[:120],
            )
        split[k] = pairs
    return split, datasets


def source_labels_mm(datasets: Sequence[VCLDataset], node: int | str) -> list[np.ndarray]:
    """(n_calls, 2) source positions of each single-animal file."""
    return [ds.source_xy_mm(node) for ds in datasets]


def network_item(
    audio: np.ndarray,
    target_mm: np.ndarray,
    length: int,
    scale_mm: float,
    config: TrainingConfig | None,
    seed_key: list[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input (n_channels, length), scaled target (2,)) of one call.

    ``config`` given: a random crop and the augmentations, drawn from ``seed_key``;
    otherwise the centre crop.
    """
    if config is None:
        x = crop_or_pad(audio, length)
    else:
        rng = np.random.default_rng(seed_key)
        free = abs(audio.shape[0] - length)
        x = crop_or_pad(audio, length, int(rng.integers(0, free + 1)))
        x = augment(x, rng, config)
    target = np.asarray(target_mm, dtype=np.float64) / scale_mm
    return torch.from_numpy(np.ascontiguousarray(x.T)), torch.tensor(target, dtype=torch.float32)


class CallDataset(Dataset):
    """Calls of VCL files as (audio (n_channels, length), scaled target (2,)) tensors.

    Parameters
    ----------
    datasets
        The files.
    index
        (n, 2) (file index, call index) pairs of this part of the split.
    labels_mm
        Per file (n_calls, 2) source positions.
    length_samples
        Network input length.
    scale_mm
        Label scale (targets are ``xy_mm / scale_mm``).
    config
        Augmentation settings for training; ``None`` for evaluation (centre crop).
    seed
        Member seed.

    Items are addressed by ``epoch * len(self) + i`` (see :class:`EpochSampler`).
    """

    def __init__(
        self,
        datasets: Sequence[VCLDataset],
        index: np.ndarray,
        labels_mm: Sequence[np.ndarray],
        length_samples: int,
        scale_mm: float,
        config: TrainingConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.datasets = list(datasets)
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 2)
        self.labels_mm = [np.asarray(lab, dtype=np.float64) for lab in labels_mm]
        self.length = int(length_samples)
        self.scale_mm = float(scale_mm)
        self.config = config
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.index)

    def targets_mm(self) -> np.ndarray:
        """(n, 2) source positions of the items."""
        return np.array([self.labels_mm[d][i] for d, i in self.index]).reshape(-1, 2)

    def calls(self) -> list[np.ndarray]:
        """The items' full audio, (n_samples_i, n_channels) each."""
        return [self.datasets[d].call_audio(int(i)) for d, i in self.index]

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, item = divmod(int(key), len(self))
        d, i = self.index[item]
        audio = self.datasets[d].call_audio(int(i))
        key_seed = [self.seed, epoch, item]
        return network_item(
            audio, self.labels_mm[d][i], self.length, self.scale_mm, self.config, key_seed
        )


class EpochSampler(Sampler):
    """Yields ``epoch * n + i`` keys in a per-(seed, epoch) random order, from ``start``.

    With ``block > 1`` whole blocks of ``block`` consecutive items are shuffled (engine
    calls are rendered a block at a time).
    """

    def __init__(
        self, n: int, seed: int, epoch: int, start: int = 0, shuffle: bool = True, block: int = 1
    ):
        self.n, self.seed, self.epoch, self.start, self.shuffle = n, seed, epoch, start, shuffle
        self.block = max(1, int(block))

    def __iter__(self):
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, 7])
            starts = rng.permutation(np.arange(0, self.n, self.block))
            order = np.concatenate([np.arange(s, min(s + self.block, self.n)) for s in starts])
        else:
            order = np.arange(self.n)
        return iter((self.epoch * self.n + order[self.start :]).tolist())

    def __len__(self) -> int:
        return self.n - self.start


class SimulatedCallDataset(Dataset):
    """Calls rendered on the fly from a simulator RIR bank: fresh pairs every epoch.

    Item ``epoch * n + i`` renders a random bank position with a random stimulus and
    fresh noise from a generator seeded by (seed, epoch, i); with ``fixed=True`` the
    epoch is ignored (a fixed validation / test set). ``config`` given: random crop
    and augmentations, else centre crop.
    """

    def __init__(
        self,
        bank_path: str | Path,
        n_calls: int,
        length_samples: int,
        scale_mm: float,
        config: TrainingConfig | None = None,
        seed: int = 0,
        fixed: bool = False,
    ) -> None:
        self.bank_path = str(bank_path)
        self.n_calls = int(n_calls)
        self.length = int(length_samples)
        self.scale_mm = float(scale_mm)
        self.config = config
        self.seed = int(seed)
        self.fixed = fixed
        self._bank: Any = None

    @property
    def bank(self) -> Any:
        """The RIR bank, opened on first use (in each worker process)."""
        if self._bank is None:
            from napari_gerbil.simulate.rir_bank import RIRBank

            self._bank = RIRBank.open(self.bank_path)
        return self._bank

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_bank": None}

    def __len__(self) -> int:
        return self.n_calls

    def render(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        """(audio (n, n_mics), source xy mm (2,)) of item ``key``."""
        epoch, item = divmod(int(key), self.n_calls)
        rng = np.random.default_rng([self.seed, 0 if self.fixed else epoch, item, 11])
        audio, loc_mm, _ = self.bank.sample(rng)
        return audio, np.asarray(loc_mm[:2], dtype=np.float64)

    def targets_mm(self) -> np.ndarray:
        """(n, 2) source positions of the calls (mm)."""
        return np.array([self.render(i)[1] for i in range(self.n_calls)]).reshape(-1, 2)

    def calls(self) -> list[np.ndarray]:
        """The calls' audio, (n_samples_i, n_channels) each."""
        return [self.render(i)[0] for i in range(self.n_calls)]

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        audio, xy = self.render(key)
        epoch, item = divmod(int(key), self.n_calls)
        key_seed = [self.seed, epoch, item, 12]
        return network_item(audio, xy, self.length, self.scale_mm, self.config, key_seed)


class EngineCallDataset(Dataset):
    """Calls drawn by the data engine: fresh positions, stimuli and noise every epoch.

    Item ``epoch * n + i`` is call ``i % B`` of engine batch ``epoch * ceil(n / B) + i //
    B`` (``B`` = the engine's ``calls_per_room``), so a loader reading keys in order
    renders each engine batch once (the last one is cached per process). With
    ``fixed=True`` the epoch is ignored: a fixed validation or test set, drawn from its
    own seed stream (its positions are never training positions).

    Parameters
    ----------
    cage
        Cage keys (``Cage.to_dict()``) or a cage name/path.
    engine_config
        :class:`~napari_gerbil.simulate.engine.EngineConfig` as a dict.
    n_calls
        Calls per epoch.
    length_samples, scale_mm
        Network input length and label scale.
    config
        Augmentations for training (None: centre crop).
    seed
        Engine seed (training and each fixed set use different ones).
    fixed
        Same calls every epoch.
    device
        Where the engine renders (``cuda``: the training GPU, torch kernel).
    """

    def __init__(
        self,
        cage,
        engine_config: dict,
        n_calls: int,
        length_samples: int,
        scale_mm: float,
        config: TrainingConfig | None = None,
        seed: int = 0,
        fixed: bool = False,
        device: str = "cpu",
    ) -> None:
        self.cage = cage
        self.engine_config = dict(engine_config)
        self.n_calls = int(n_calls)
        self.length = int(length_samples)
        self.scale_mm = float(scale_mm)
        self.config = config
        self.seed = int(seed)
        self.fixed = fixed
        self.device = str(device)
        self._engine: Any = None
        self._cached: tuple[int, object] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_engine": None, "_cached": None}

    @property
    def engine(self):
        """The data engine, built on first use (in each worker process)."""
        if self._engine is None:
            from napari_gerbil.io.cage import Cage, load_cage
            from napari_gerbil.simulate.engine import DataEngine, EngineConfig

            cage = (
                Cage.from_dict(self.cage) if isinstance(self.cage, dict) else load_cage(self.cage)
            )
            self._engine = DataEngine(
                cage, EngineConfig.from_dict(self.engine_config), self.seed, device=self.device
            )
        return self._engine

    def __len__(self) -> int:
        return self.n_calls

    def _batch(self, index: int):
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, self.engine.batch(index))
        return self._cached[1]

    def render(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        """(audio (n, n_mics), source xy mm (2,)) of item ``key``."""
        epoch, item = divmod(int(key), self.n_calls)
        per_batch = self.engine.config.calls_per_room
        per_epoch = -(-self.n_calls // per_batch)
        batch = self._batch((0 if self.fixed else epoch) * per_epoch + item // per_batch)
        k = item % per_batch
        return batch.audio[k], np.asarray(batch.locations_mm[k, :2], dtype=np.float64)

    def targets_mm(self) -> np.ndarray:
        """(n, 2) source positions of the items (epoch 0)."""
        return np.array([self.render(i)[1] for i in range(self.n_calls)]).reshape(-1, 2)

    def positions_mm(self, epoch: int = 0) -> np.ndarray:
        """(n, 3) source positions of one epoch's items (without rendering them)."""
        per_batch = self.engine.config.calls_per_room
        per_epoch = -(-self.n_calls // per_batch)
        first = (0 if self.fixed else epoch) * per_epoch
        return np.concatenate([self.engine.positions(first + b) for b in range(per_epoch)])[
            : self.n_calls
        ]

    def calls(self) -> list[np.ndarray]:
        """The items' full audio (epoch 0)."""
        return [self.render(i)[0] for i in range(self.n_calls)]

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        audio, xy = self.render(key)
        epoch, item = divmod(int(key), self.n_calls)
        key_seed = [self.seed, epoch, item, 13]
        return network_item(audio, xy, self.length, self.scale_mm, self.config, key_seed)
