"""Training data from a lab's own sessions: every call, labelled by the tracked animals.

A call's caller is usually unknown, but the tracks say where every animal was when it
started: a *weak* label, the (A, 2) positions of the animals tracked at the call (NaN
rows for untracked ones), scored by the multiple-instance NLL
(:func:`napari_gerbil.model.gaussian.weak_label_nll`). A call the user attributed in
review (``session.user.animal >= 0``) is a *strong* label: that animal's position only.
Calls with no tracked animal (or that the user marked as no animal's) are skipped.

Validation: half of the reviewed calls when there are any; otherwise engine calls when
an engine is mixed in; otherwise a share of the weak-label calls, scored by the MIL NLL
(the median error is then NaN: the caller is unknown).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.data import network_item


@dataclasses.dataclass
class SessionLabels:
    """The usable calls of session files and their labels.

    ``index`` (n, 2) (session, call) pairs; ``labels_mm`` (n, A, 2) positions of the
    tracked animals (NaN rows: untracked; strong labels have one finite row);
    ``strong`` (n,) bool: the user attributed the call.
    """

    paths: list[str]
    index: np.ndarray
    labels_mm: np.ndarray
    strong: np.ndarray
    sample_rate_hz: float
    n_channels: int
    arena_dims_mm: tuple[float, ...]
    mic_positions_mm: list[list[float]]
    skipped: int = 0

    def summary(self) -> str:
        """One line: how many calls are used, of which reviewed, and how many skipped."""
        return (
            f"{len(self.index)} calls from {len(self.paths)} session(s) "
            f"({int(self.strong.sum())} reviewed); {self.skipped} skipped "
            "(no tracked animal at the call, or marked as no animal's)"
        )


def load_session_labels(paths: Sequence[str | os.PathLike], node: int | str = 0) -> SessionLabels:
    """Open session files and label their calls with the animals' positions (mm).

    Raises :class:`InvalidInputError` naming the file when a session has no poses or
    no video calibration, when the sessions disagree (channels, sample rate, arena,
    microphones), or when no call at all can be labelled.
    """
    from napari_gerbil.io.animals import animal_positions_at_calls
    from napari_gerbil.io.cage import compare_geometry
    from napari_gerbil.io.checks import open_session
    from napari_gerbil.io.session import UNASSIGNED
    from napari_gerbil.io.tracks import load_poses

    if not paths:
        raise InvalidInputError(None, "--sessions", "at least one session file", "none")
    index, labels, strong, ref = [], [], [], None
    skipped = 0
    for s, path in enumerate(paths):
        session = open_session(path)  # its audio and poses present and unchanged
        if session.tracks is None:
            raise InvalidInputError(path, "tracks", "the animals' poses (a tracks file)", "none")
        if session.arena.arena_to_pixels is None:
            raise InvalidInputError(
                path, "arena/arena_to_pixels", "a video calibration (homography)", "none"
            )
        found = (
            float(session.audio.sample_rate_hz),
            int(session.audio.n_channels),
            tuple(float(v) for v in session.arena.dims_mm),
        )
        if ref is None:
            ref = (*found, session.arena.mic_positions_mm.tolist(), str(path))
        elif found != ref[:3]:
            raise InvalidInputError(
                path, "audio / arena", f"(sample rate, channels, arena) {ref[:3]} as {ref[4]}",
                str(found),
            )  # fmt: skip
        else:
            compare_geometry(
                {"dims_mm": None, "mic_positions_mm": ref[3]},
                {"dims_mm": None, "mic_positions_mm": session.arena.mic_positions_mm},
                path,
                what=f"first session {ref[4]}",
            )
        xy = animal_positions_at_calls(session, load_poses(session.tracks.path), node)
        user = session.user.animal
        for i in range(session.n_calls):
            row = xy[i].copy()
            if user[i] >= 0:  # reviewed: the user's animal only
                keep = np.zeros(len(row), bool)
                if user[i] < len(row):
                    keep[user[i]] = True
                row[~keep] = np.nan
            if user[i] == UNASSIGNED or not np.isfinite(row).all(-1).any():
                skipped += 1
                continue
            index.append((s, i))
            labels.append(row)
            strong.append(bool(user[i] >= 0))
    if not index:
        raise InvalidInputError(
            paths[0] if len(paths) == 1 else None, "calls",
            "calls with at least one tracked animal (localizable calls)",
            f"none in {len(paths)} session(s) ({skipped} calls without a tracked animal)",
        )  # fmt: skip
    assert ref is not None
    n_animals = max(len(r) for r in labels)
    padded = np.full((len(labels), n_animals, 2), np.nan)
    for k, r in enumerate(labels):
        padded[k, : len(r)] = r
    return SessionLabels(
        [str(Path(p).resolve()) for p in paths],
        np.asarray(index, dtype=np.int64).reshape(-1, 2),
        padded,
        np.asarray(strong, bool),
        ref[0],
        ref[1],
        ref[2],
        ref[3],
        skipped,
    )


def session_split(
    labels: SessionLabels, config: TrainingConfig, engine_validates: bool
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(train rows, validation rows, validation is weak) of ``labels``.

    Half of the reviewed calls (at least one) validate when there are any; none when
    ``engine_validates`` (the engine's held-out calls do); else a share
    ``config.split[1]`` (at least one) of the weak-label calls.
    """
    rng = np.random.default_rng([config.split_seed, 17])
    rows = np.arange(len(labels.index))
    strong = rows[labels.strong]
    if len(strong):
        val = rng.permutation(strong)[: max(1, len(strong) // 2)]
        weak = False
    elif engine_validates:
        val, weak = rows[:0], False
    else:
        share = max(config.split[1], 0.05)
        n_val = min(len(rows) - 1, max(1, int(round(share * len(rows)))))
        val, weak = rng.permutation(rows)[:n_val], True
    if len(rows) - len(val) < 1:
        raise InvalidInputError(
            None, "calls", "at least 2 localizable calls (training and validation)",
            f"{len(rows)} call(s)",
        )  # fmt: skip
    train = np.setdiff1d(rows, val)
    return train, np.sort(val), weak


class SessionCallDataset(Dataset):
    """Session calls as (audio (n_channels, length), scaled labels (A, 2)) tensors.

    Items are addressed by ``epoch * len(self) + i`` (see
    :class:`~napari_gerbil.training.data.EpochSampler`); ``config`` given: random crops
    and augmentations keyed by (seed, epoch, item), else centre crops. ``weak``: some
    items have more than one candidate (validation by MIL NLL, no median error).
    """

    def __init__(
        self,
        labels: SessionLabels,
        rows: np.ndarray,
        length_samples: int,
        scale_mm: float,
        config: TrainingConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.paths = list(labels.paths)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.index = labels.index[self.rows]
        self.labels_mm = labels.labels_mm[self.rows]
        self.length = int(length_samples)
        self.scale_mm = float(scale_mm)
        self.config = config
        self.seed = int(seed)
        self.weak = bool((np.isfinite(self.labels_mm).all(-1).sum(-1) > 1).any())
        self._open: dict[int, tuple[Any, Any]] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": {}}

    def __len__(self) -> int:
        return len(self.rows)

    def _audio(self, item: int) -> np.ndarray:
        from napari_gerbil.io.session import load_session

        s, i = (int(v) for v in self.index[item])
        if s not in self._open:
            session = load_session(self.paths[s])
            self._open[s] = (session, session.audio.open())
        session, source = self._open[s]
        return session.read_call_audio(i, source)

    def targets_mm(self) -> np.ndarray:
        """(n, 2) positions of the callers; only for strong labels (one row each)."""
        finite = np.isfinite(self.labels_mm).all(-1)
        if (finite.sum(-1) != 1).any():
            raise InvalidInputError(None, "labels", "one known caller per call", "weak labels")
        return self.labels_mm[finite].reshape(-1, 2)

    def calls(self) -> list[np.ndarray]:
        """The items' full audio, (n_samples_i, n_channels) each."""
        return [self._audio(k) for k in range(len(self))]

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, item = divmod(int(key), len(self))
        x, _ = network_item(
            self._audio(item), np.zeros(2), self.length, self.scale_mm, self.config,
            [self.seed, epoch, item, 19],
        )  # fmt: skip
        y = torch.tensor(self.labels_mm[item] / self.scale_mm, dtype=torch.float32)
        return x, y


class PaddedLabels(Dataset):
    """A dataset of (x, (2,) label) items as (x, (n_rows, 2)) with NaN rows below."""

    def __init__(self, base: Any, n_rows: int) -> None:
        self.base, self.n_rows = base, int(n_rows)
        self.scale_mm = base.scale_mm

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[key]
        out = torch.full((self.n_rows, 2), float("nan"), dtype=y.dtype)
        out[0] = y
        return x, out


class EpochConcat(Dataset):
    """Datasets one after another, keeping the epoch-key protocol of each.

    Key ``epoch * len(self) + i`` goes to part ``p`` as ``epoch * len(p) + j`` (``j``:
    ``i``'s place in ``p``), so each part draws its own epoch's crops and calls.
    """

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = [p for p in parts if len(p)]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        self.scale_mm = self.parts[0].scale_mm if self.parts else 1.0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key: int):
        epoch, item = divmod(int(key), len(self))
        p = int(np.searchsorted(self.offsets, item, side="right")) - 1
        part = self.parts[p]
        return part[epoch * len(part) + item - int(self.offsets[p])]
