"""Training data of a run: VCL files, a RIR bank, the data engine, sessions, and their mixes.

:func:`open_training_data` opens and checks the inputs (channels, sample rate, arena,
microphones) and splits them; :class:`TrainingData` hands out the ``train`` / ``val`` /
``test`` calls of each source (engine calls mixed with the files' or the sessions'
training calls).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import IncompatibleModelError, InvalidInputError
from napari_gerbil.io.cage import compare_geometry
from napari_gerbil.io.compat import check_compatible
from napari_gerbil.io.vcl import VCLDataset
from napari_gerbil.model.gaussian import label_scale_mm
from napari_gerbil.model.manifest import ModelMetadata
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.data import (
    SPLITS,
    CallDataset,
    SimulatedCallDataset,
    make_split,
    source_labels_mm,
)

#: Fallbacks for files without our metadata (plain vocalocator files): the paper's cage.
FALLBACK_SAMPLE_RATE_HZ = 125000.0
FALLBACK_ARENA_DIMS_MM = (600.0, 400.0, 350.0)


def fallback_note(path: Any, no_rate: bool, no_dims: bool) -> str:
    """The warning for a dataset lacking its sample rate or arena size: what is assumed.

    The fallback arena is the ``omni-corner`` cage's size, not the paper's cage (571.5 x
    355.6 x 368.3 mm): the note states the numbers actually used.
    """
    missing, assumed = [], []
    if no_rate:
        missing.append("sample rate")
        assumed.append(f"{FALLBACK_SAMPLE_RATE_HZ:g} Hz")
    if no_dims:
        missing.append("arena size")
        x, y, z = FALLBACK_ARENA_DIMS_MM
        assumed.append(f"an arena of {x:g} x {y:g} x {z:g} mm (the omni-corner cage's size)")
    return f"{path}: no {' / '.join(missing)} stored; assuming {' and '.join(assumed)}"


@dataclass
class TrainingData:
    """Opened training files, their labels, shared metadata and the split."""

    datasets: list[VCLDataset]
    labels_mm: list[np.ndarray]
    metadata: ModelMetadata
    split: dict[str, np.ndarray]
    rir_bank: str | None = None
    sim_calls_per_epoch: int = 0
    #: Data engine source: ``{"cage": keys, "config": EngineConfig dict, "seed": int}``.
    engine: dict | None = None
    #: Session calls (weak / strong labels) and their (train rows, val rows, weak val).
    sessions: Any = None
    session_split: tuple[np.ndarray, np.ndarray, bool] | None = None

    @property
    def input_paths(self) -> list[str]:
        """Every input file: the datasets, then the sessions."""
        return self.paths + ([] if self.sessions is None else list(self.sessions.paths))

    @property
    def paths(self) -> list[str]:
        """Resolved paths of the datasets."""
        return [str(Path(ds.path).resolve()) for ds in self.datasets]

    def part(
        self,
        name: str,
        config: TrainingConfig | None = None,
        seed: int = 0,
        render_device: str = "cpu",
    ) -> CallDataset | SimulatedCallDataset:
        """The ``train``/``val``/``test`` calls (``config`` given: augmented crops).

        From a RIR bank: ``sim_calls_per_epoch`` fresh calls per epoch for training,
        and fixed sets of an eighth of that for validation and test. Engine calls are
        rendered on ``render_device`` (``cuda``: the training GPU). With sessions: their
        calls with (A, 2) labels (engine calls padded to A rows).
        """
        if self.sessions is not None:
            return self._session_part(name, config, seed, render_device)
        if self.engine is not None:
            return self._engine_part(name, config, seed, render_device)
        if self.rir_bank is not None:
            fixed = name != "train"
            n = self.sim_calls_per_epoch if not fixed else max(1, self.sim_calls_per_epoch // 8)
            return SimulatedCallDataset(
                self.rir_bank,
                n,
                self.metadata.input_length_samples,
                self.metadata.label_scale_mm,
                config,
                seed if not fixed else 1_000_000 + SPLITS.index(name),
                fixed,
            )
        return CallDataset(
            self.datasets,
            self.split[name],
            self.labels_mm,
            self.metadata.input_length_samples,
            self.metadata.label_scale_mm,
            config,
            seed,
        )

    def _engine_part(
        self, name: str, config: TrainingConfig | None, seed: int, render_device: str = "cpu"
    ):
        """Engine calls (mixed with the files' training calls when there are files)."""
        from torch.utils.data import ConcatDataset

        from napari_gerbil.training.data import EngineCallDataset

        held_out = name != "train"
        # "fixed_train": the same training calls (positions) every epoch (learning curves)
        assert self.engine is not None
        fixed = held_out or bool(self.engine.get("fixed_train", False))
        n = self.sim_calls_per_epoch
        if held_out:
            n = int(self.engine.get("held_out_calls", max(64, n // 10)))
        # each member draws its own training calls; the held-out sets are shared and come
        # from seed streams no training run uses, so their positions are never trained on
        engine = self.engine
        assert engine is not None  # engine parts exist only with an engine
        engine_seed = int(engine["seed"])
        stream = engine_seed * 1000 + seed
        if held_out:
            stream = 10**9 + engine_seed + SPLITS.index(name)
        sim = EngineCallDataset(
            engine["cage"],
            engine["config"],
            n,
            self.metadata.input_length_samples,
            self.metadata.label_scale_mm,
            config,
            stream,
            fixed,
            device=render_device,
        )
        if held_out or not self.datasets:
            return sim
        files = CallDataset(
            self.datasets,
            self.split[name],
            self.labels_mm,
            self.metadata.input_length_samples,
            self.metadata.label_scale_mm,
            config,
            seed,
        )
        return ConcatDataset([sim, files])  # engine first: its blocks stay aligned

    def _session_part(
        self, name: str, config: TrainingConfig | None, seed: int, render_device: str = "cpu"
    ):
        """Session calls of a part, mixed with engine calls for training."""
        from napari_gerbil.training.sessions import EpochConcat, PaddedLabels, SessionCallDataset

        assert self.session_split is not None
        train_rows, val_rows, _ = self.session_split
        rows = {"train": train_rows, "val": val_rows}.get(name, val_rows[:0])
        calls = SessionCallDataset(
            self.sessions,
            rows,
            self.metadata.input_length_samples,
            self.metadata.label_scale_mm,
            config,
            seed,
        )
        if self.engine is None:
            return calls
        if name == "val" and not len(val_rows):  # no reviewed calls: engine calls validate
            return self._engine_part(name, config, seed, render_device)
        if name != "train":
            return calls
        sim = self._engine_part(name, config, seed, render_device)
        n_rows = self.sessions.labels_mm.shape[1]
        return EpochConcat([PaddedLabels(sim, n_rows), calls])  # engine first: blocks align


def _session_training_data(sessions, engine, config, input_length_samples, metadata):
    """Training data of session files (and engine calls with ``engine``)."""
    from napari_gerbil.training.sessions import SessionLabels, load_session_labels, session_split

    labels = sessions
    if not isinstance(sessions, SessionLabels):
        labels = load_session_labels(sessions, config.node)
    source = labels.paths[0]
    found = ModelMetadata(
        sample_rate_hz=labels.sample_rate_hz,
        n_channels=labels.n_channels,
        arena_dims_mm=labels.arena_dims_mm,
        label_scale_mm=label_scale_mm(labels.arena_dims_mm),
        input_length_samples=input_length_samples,
        mic_positions_mm=labels.mic_positions_mm,
    )
    if engine is not None:
        data = _engine_training_data([], engine, config, input_length_samples, None, metadata)
    else:
        empty = {k: np.zeros((0, 2), dtype=np.int64) for k in SPLITS}
        data = TrainingData([], [], metadata or found, empty, None, 0)
    meta = data.metadata
    if metadata is not None or engine is not None:  # the sessions must fit the model / cage
        what = "model" if metadata is not None else "engine cage"
        _check_fits(source, found, labels.mic_positions_mm, meta, what)
    data.sessions = labels
    data.session_split = session_split(labels, config, engine is not None)
    return data


def open_training_data(
    paths: Sequence[str | os.PathLike | VCLDataset],
    config: TrainingConfig,
    input_length_samples: int,
    split: dict[str, np.ndarray] | None = None,
    metadata: ModelMetadata | None = None,
    rir_bank: str | os.PathLike | None = None,
    engine: dict | None = None,
    sessions: Any = None,
) -> TrainingData:
    """Open VCL files, check they agree (channels, sample rate, arena) and split them.

    ``metadata`` (e.g. of a parent model when fine-tuning) is enforced when given.
    With ``rir_bank`` (and no ``paths``) the calls are rendered from the simulator's
    bank instead (see :meth:`TrainingData.part`). With ``engine`` (``{"cage": keys,
    "config": EngineConfig dict, "seed": int}``) fresh calls are drawn every epoch,
    mixed with the files' training calls when ``paths`` are given too. With
    ``sessions`` (session files or :class:`~napari_gerbil.training.sessions.SessionLabels`)
    their calls train with weak / strong labels (mixed with ``engine`` calls).
    """
    if sessions is not None:
        if paths or rir_bank is not None:
            raise InvalidInputError(
                None, "--sessions", "sessions alone or with --cage", "with --data / --rir-bank"
            )
        return _session_training_data(sessions, engine, config, input_length_samples, metadata)
    if rir_bank is not None:
        return _bank_training_data(rir_bank, config, input_length_samples, metadata)
    if engine is not None:
        return _engine_training_data(paths, engine, config, input_length_samples, split, metadata)
    if not paths:
        raise InvalidInputError(None, "data", "at least one VCL dataset", "none")
    datasets = [p if isinstance(p, VCLDataset) else VCLDataset(p) for p in paths]
    first = datasets[0]
    sr = first.sample_rate_hz
    dims: Any = first.arena_dims_mm
    for ds in datasets[1:] if metadata is None else datasets:
        ref_sr = metadata.sample_rate_hz if metadata else sr
        ref_dims = metadata.arena_dims_mm if metadata else dims
        ref_ch = metadata.n_channels if metadata else first.n_channels
        ref_mics = metadata.mic_positions_mm if metadata else first.mic_positions_mm
        what = "model" if metadata else f"first dataset {first.path}"
        try:
            ds.check_compatible(
                n_channels=ref_ch, sample_rate_hz=ref_sr, arena_dims_mm=ref_dims, what=what
            )
        except InvalidInputError as exc:
            if metadata is None:
                raise
            raise IncompatibleModelError(
                exc.source, exc.field, exc.expected, exc.found, exc.hint
            ) from None
        compare_geometry(
            {"dims_mm": None, "mic_positions_mm": ref_mics},
            {"dims_mm": None, "mic_positions_mm": ds.mic_positions_mm},
            ds.path,
            what=what,
        )
    if metadata is None:
        if sr is None or dims is None:
            warnings.warn(fallback_note(first.path, sr is None, dims is None), stacklevel=2)
        dims = FALLBACK_ARENA_DIMS_MM if dims is None else tuple(float(v) for v in dims)
        mics = first.mic_positions_mm
        metadata = ModelMetadata(
            sample_rate_hz=FALLBACK_SAMPLE_RATE_HZ if sr is None else float(sr),
            n_channels=first.n_channels,
            arena_dims_mm=dims,
            label_scale_mm=label_scale_mm(dims),
            input_length_samples=input_length_samples,
            mic_positions_mm=None if mics is None else np.asarray(mics).tolist(),
        )
    labels = source_labels_mm(datasets, config.node)
    if split is None:
        split = make_split([ds.n_calls for ds in datasets], config.split, config.split_seed)
    return TrainingData(datasets, labels, metadata, split)


def _engine_training_data(paths, engine, config, input_length_samples, split, metadata):
    from napari_gerbil.io.cage import Cage

    cage = Cage.from_dict(engine["cage"], source="engine cage")
    found = ModelMetadata(
        sample_rate_hz=float(engine["config"].get("sample_rate_hz", FALLBACK_SAMPLE_RATE_HZ)),
        n_channels=cage.n_mics,
        arena_dims_mm=tuple(cage.dims_mm),
        label_scale_mm=label_scale_mm(cage.dims_mm),
        input_length_samples=input_length_samples,
        mic_positions_mm=cage.mic_positions_mm,
    )
    if metadata is not None:  # fine-tuning: the engine's cage must be the model's
        _check_fits(cage.name, found, cage.mic_positions_mm, metadata, "model")
    meta = metadata or found
    if paths:
        files = open_training_data(paths, config, input_length_samples, split, meta)
        datasets, labels, split = files.datasets, files.labels_mm, files.split
    else:
        datasets, labels = [], []
        split = {k: np.zeros((0, 2), dtype=np.int64) for k in SPLITS}
    return TrainingData(
        datasets, labels, meta, split, None, config.sim_calls_per_epoch, engine=engine
    )


def _bank_training_data(
    rir_bank: str | os.PathLike,
    config: TrainingConfig,
    input_length_samples: int,
    metadata: ModelMetadata | None,
) -> TrainingData:
    from napari_gerbil.simulate.rir_bank import RIRBank

    bank = RIRBank.open(rir_bank)
    dims = tuple(float(v) for v in bank.arena_dims_mm)
    found = ModelMetadata(
        sample_rate_hz=bank.sample_rate_hz,
        n_channels=bank.n_mics,
        arena_dims_mm=dims,
        label_scale_mm=label_scale_mm(dims),
        input_length_samples=input_length_samples,
        mic_positions_mm=np.asarray(bank.mic_positions_mm).tolist(),
    )
    if metadata is not None:
        _check_model_compatible(
            rir_bank,
            n_channels=found.n_channels,
            sample_rate_hz=found.sample_rate_hz,
            arena_dims_mm=dims,
            expected_n_channels=metadata.n_channels,
            expected_sample_rate_hz=metadata.sample_rate_hz,
            expected_arena_dims_mm=metadata.arena_dims_mm,
            what="model",
        )
    empty = {k: np.zeros((0, 2), dtype=np.int64) for k in SPLITS}
    return TrainingData(
        [], [], metadata or found, empty, str(Path(rir_bank).resolve()), config.sim_calls_per_epoch
    )


def _check_fits(source, found, mic_positions_mm, expected, what: str) -> None:
    """Refuse data (``found`` metadata, its microphones) that does not fit ``expected``."""
    _check_model_compatible(
        source,
        n_channels=found.n_channels,
        sample_rate_hz=found.sample_rate_hz,
        arena_dims_mm=found.arena_dims_mm,
        expected_n_channels=expected.n_channels,
        expected_sample_rate_hz=expected.sample_rate_hz,
        expected_arena_dims_mm=expected.arena_dims_mm,
        what=what,
    )
    compare_geometry(
        {"dims_mm": None, "mic_positions_mm": expected.mic_positions_mm},
        {"dims_mm": None, "mic_positions_mm": mic_positions_mm},
        source,
        what=what,
    )


def _check_model_compatible(source, **kwargs) -> None:
    try:
        check_compatible(source, **kwargs)
    except InvalidInputError as exc:
        raise IncompatibleModelError(exc.source, exc.field, exc.expected, exc.found) from None
