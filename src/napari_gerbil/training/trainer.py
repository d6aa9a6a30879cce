"""Train ensemble members: NLL loss, cosine SGD, checkpoints, resume, ensembles, fine-tuning.

One member's run directory holds ``network.yaml``, ``training.yaml``, ``split.json``,
``metrics.jsonl`` (one line per epoch: train NLL, validation NLL, median error mm,
95% coverage, learning rate, seconds), ``last.pt`` (resumable state, written
atomically at the end of each epoch and every ``checkpoint_every_s`` mid-epoch),
``best.pt`` (lowest validation NLL) and ``final.pt``. Calling :func:`train_member`
again on the same directory resumes from ``last.pt``: because every random choice is
keyed by (seed, epoch, call), the resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from napari_gerbil.errors import GerbilError, IncompatibleModelError, InvalidInputError
from napari_gerbil.io.atomic import atomic_path, atomic_write_text
from napari_gerbil.io.cage import compare_geometry
from napari_gerbil.io.checks import check_training_files
from napari_gerbil.io.compat import check_compatible
from napari_gerbil.io.vcl import VCLDataset
from napari_gerbil.model.ensemble import Ensemble, load_checkpoint, save_checkpoint
from napari_gerbil.model.gaussian import label_scale_mm, raw_to_gaussian, weak_label_nll
from napari_gerbil.model.manifest import (
    ModelMetadata,
    is_model_dir,
    read_manifest,
    write_manifest,
)
from napari_gerbil.model.network import LocalizerNet, build_network
from napari_gerbil.model.presets import NetworkConfig
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.data import (
    SPLITS,
    CallDataset,
    EpochSampler,
    SimulatedCallDataset,
    load_split,
    make_split,
    save_split,
    source_labels_mm,
)
from napari_gerbil.training.run_record import check_or_record_inputs, describe_inputs

#: Squared Mahalanobis radius of a 2-D Gaussian's 95% ellipse (chi-square, 2 dof).
CHI2_95 = -2.0 * math.log(0.05)

#: Fallbacks for files without our metadata (plain vocalocator files): the paper's cage.
FALLBACK_SAMPLE_RATE_HZ = 125000.0
FALLBACK_ARENA_DIMS_MM = (600.0, 400.0, 350.0)

Progress = Callable[[dict[str, Any]], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(None, "device", "an available device", "cuda (no GPU found)")
    return torch.device(name)


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
    from napari_gerbil.training.sessions import (
        SessionLabels,
        load_session_labels,
        session_split,
    )

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
            warnings.warn(
                f"{first.path}: no sample rate / arena size stored; assuming the paper's cage "
                f"({FALLBACK_SAMPLE_RATE_HZ:g} Hz, {FALLBACK_ARENA_DIMS_MM} mm)",
                stacklevel=2,
            )
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


@torch.inference_mode()
def evaluate_member(
    net: LocalizerNet, data: Any, device: torch.device, batch_size: int = 64
) -> dict[str, float]:
    """Validation NLL (scaled units), median error (mm) and 95% ellipse coverage.

    Weak labels ((A, 2) candidates, ``data.weak``): the NLL is the multiple-instance
    NLL; the median error and coverage are NaN (the caller is unknown).
    """
    if len(data) == 0:
        return {"val_nll": float("nan"), "val_median_error_mm": float("nan"), "val_cov95": 0.0}
    net.eval()
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    nll, err, inside = [], [], []
    weak = bool(getattr(data, "weak", False))
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        mean, chol = raw_to_gaussian(net(x))
        nll.append(weak_label_nll(mean, chol, y).cpu())
        if weak:
            continue
        if y.ndim == 3:  # strong labels: the one finite row
            y = torch.nan_to_num(y, nan=0.0).sum(1)
        err.append((mean - y).norm(dim=-1).cpu() * data.scale_mm)
        z = torch.linalg.solve_triangular(chol, (y - mean).unsqueeze(-1), upper=False)
        inside.append((z.square().sum((-1, -2)) <= CHI2_95).cpu())
    if weak:
        return {
            "val_nll": float(torch.cat(nll).mean()),
            "val_median_error_mm": float("nan"),
            "val_cov95": float("nan"),
        }
    return {
        "val_nll": float(torch.cat(nll).mean()),
        "val_median_error_mm": float(torch.cat(err).median()),
        "val_cov95": float(torch.cat(inside).float().mean()),
    }


def _lr(config: TrainingConfig, step: int, total_steps: int) -> float:
    """Cosine annealing from the initial rate to 0 over ``total_steps``."""
    return (
        0.5 * config.learning_rate * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )


def _save_state(path: Path, net, optimizer, **state: Any) -> None:
    payload = {"state_dict": net.state_dict(), "optimizer": optimizer.state_dict(), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def train_member(
    network_config: NetworkConfig,
    config: TrainingConfig,
    data: TrainingData,
    run_dir: str | os.PathLike,
    *,
    init_checkpoint: str | os.PathLike | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    show_progress: bool = True,
    position: int = 0,
) -> Path:
    """Train (or resume) one member in ``run_dir``; return the path of ``best.pt``.

    Parameters
    ----------
    network_config, config
        Architecture and training settings (``config.seed`` is the member's seed).
    data
        Opened data with its split (shared by the members of an ensemble).
    run_dir
        The member's directory; resumes from ``last.pt`` when present.
    init_checkpoint
        Start from these weights (fine-tuning) instead of a random initialization.
    progress
        Called with a dict (``member``, ``epoch``, ``epochs``, ``step``, ``steps``,
        ``loss``, and after each epoch the validation metrics).
    cancel
        Polled each step; when it returns True the state is saved and
        :class:`InterruptedError` raised (calling again resumes).
    """
    from napari_gerbil.training import distributed

    config.validate()
    ctx = distributed.current()
    main = ctx is None or ctx.main
    show_progress = show_progress and main
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    seed = config.seed
    if main and not (run_dir / "network.yaml").exists():
        network_config.save(run_dir / "network.yaml")
        config.save(run_dir / "training.yaml")
        if data.sessions is not None:
            assert data.session_split is not None
            train_rows, val_rows, weak = data.session_split
            source = {
                "sessions": data.sessions.paths, "engine": data.engine,
                "train_rows": train_rows.tolist(), "val_rows": val_rows.tolist(),
                "weak_validation": weak,
            }  # fmt: skip
            atomic_write_text(run_dir / "split.json", json.dumps(source))
        elif data.engine is not None:
            source = {"engine": data.engine, "datasets": data.paths}
            atomic_write_text(run_dir / "split.json", json.dumps(source))
        elif data.rir_bank is None:
            save_split(run_dir / "split.json", data.split, data.paths)
        else:
            atomic_write_text(run_dir / "split.json", json.dumps({"rir_bank": data.rir_bank}))
    distributed.barrier(ctx)

    torch.manual_seed(seed)
    net = build_network(network_config).to(device)
    if init_checkpoint is not None:
        net.load_state_dict(load_checkpoint(init_checkpoint, device)["state_dict"])
    optimizer: torch.optim.Optimizer
    if config.optimizer == "adam":
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            net.parameters(),
            lr=config.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "best_val_nll": float("inf"),
        "loss_sum": 0.0,
    }
    state["n_loss"] = 0
    last = run_dir / "last.pt"
    if last.exists():
        payload = load_checkpoint(last, device)  # weights only: a model directory is data
        try:
            net.load_state_dict(payload.pop("state_dict"))
            optimizer.load_state_dict(payload.pop("optimizer"))
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise InvalidInputError(
                last, "state_dict / optimizer", "the resumable state of this run", str(exc)[:200]
            ) from None
        state.update(payload)
    if main:
        _trim_metrics(run_dir / "metrics.jsonl", state["epoch"])
    model = net  # saved and evaluated; ``net`` is what trains (DDP-wrapped on ranks)
    if ctx is not None:
        net = torch.nn.parallel.DistributedDataParallel(  # type: ignore[assignment]
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    render = _render_device(device, data)
    train = data.part("train", config, seed, render_device=render)
    val = data.part("val", render_device=render)
    # engine calls are rendered a batch at a time: shuffle whole blocks, not calls
    block = int(data.engine["config"].get("calls_per_room", 32)) if data.engine else 1
    steps = math.ceil(len(train) / config.batch_size)
    total_steps = steps * config.epochs
    last_save = time.monotonic()
    for epoch in range(state["epoch"], config.epochs):
        t0 = time.monotonic()
        start = state["step_in_epoch"]
        sampler = EpochSampler(len(train), seed, epoch, start * config.batch_size, block=block)
        workers = _loader_workers(config.num_workers, data.engine is not None, render)
        sharded = None
        if ctx is None:
            loader = DataLoader(
                train,
                batch_size=config.batch_size,
                sampler=sampler,
                num_workers=workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
            )
        else:  # this rank's shard of every global batch
            sharded = distributed.ShardedBatchSampler(
                sampler, config.batch_size, ctx.rank, ctx.world
            )
            loader = DataLoader(
                train, batch_sampler=sharded, num_workers=workers, pin_memory=device.type == "cuda"
            )
        net.train()
        bar = tqdm(
            total=steps,
            initial=start,
            desc=f"{run_dir.name} epoch {epoch + 1}/{config.epochs}",
            disable=not show_progress,
            position=position,
            leave=False,
            dynamic_ncols=True,
        )
        for step, (x, y) in enumerate(loader, start=start):
            lr = _lr(config, epoch * steps + step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            mean, chol = raw_to_gaussian(net(x))
            _check_labels(run_dir, y)
            loss = weak_label_nll(mean, chol, y).mean()
            optimizer.zero_grad(set_to_none=True)
            n_batch = len(x)
            if sharded is not None and ctx is not None:  # the whole batch's mean loss
                n_batch = sharded.global_sizes[step - start]
                share = len(x) / n_batch
                value = distributed.all_sum(ctx, float(loss.detach()) * share)
                loss = loss * (share * ctx.world)  # DDP averages: the batch's gradient
            else:
                value = float(loss.detach())
            state["first_loss"] = state.get("first_loss", value)
            _check_divergence(run_dir, config, epoch, step, value, state)
            loss.backward()
            if config.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.clip_grad_norm)
            optimizer.step()
            state["loss_sum"] += value * n_batch
            state["n_loss"] += n_batch
            state["step_in_epoch"] = step + 1
            bar.update(1)
            bar.set_postfix(nll=f"{value:.3f}")
            if progress is not None and main:
                progress(
                    {
                        "member": run_dir.name,
                        "epoch": epoch,
                        "epochs": config.epochs,
                        "step": step + 1,
                        "steps": steps,
                        "loss": value,
                    }
                )
            stop = cancel is not None and cancel()
            due = config.checkpoint_every_s > 0 and (
                time.monotonic() - last_save > config.checkpoint_every_s
            )
            if (stop or due) and step + 1 < steps and main:
                _save_state(last, model, optimizer, **state)
                last_save = time.monotonic()
            if stop:
                bar.close()
                raise InterruptedError(f"training of {run_dir} cancelled; call again to resume")
        bar.close()
        # rank 0 evaluates; every rank takes the same decisions from its numbers
        scores = evaluate_member(model, val, device) if main else None
        metrics = {
            "epoch": epoch + 1,
            "train_nll": state["loss_sum"] / max(1, state["n_loss"]),
            **distributed.broadcast(ctx, scores),
            "lr": _lr(config, (epoch + 1) * steps, total_steps),
            "seconds": round(time.monotonic() - t0, 3),
        }
        length_mm, width_mm = data.metadata.arena_dims_mm[:2]
        diagonal_mm = float(np.hypot(length_mm, width_mm))
        if getattr(val, "weak", False) and len(val):  # no error to check: the NLL must be
            if not metrics["val_nll"] < 1e3:  # finite and not exploded
                raise TrainingDivergedError(
                    f"{run_dir}: training diverged: after epoch {epoch + 1} the validation "
                    f"multiple-instance NLL is {metrics['val_nll']:.4g}. {DIVERGENCE_HINT}"
                )
        elif len(val) and not metrics["val_median_error_mm"] <= diagonal_mm:
            raise TrainingDivergedError(
                f"{run_dir}: training diverged: after epoch {epoch + 1} the median validation "
                f"error is {metrics['val_median_error_mm']:.4g} mm, beyond the arena's "
                f"diagonal ({diagonal_mm:.0f} mm). {DIVERGENCE_HINT}"
            )
        improved = len(val) == 0 or metrics["val_nll"] < state["best_val_nll"]
        if improved:
            state["best_val_nll"] = metrics["val_nll"] if len(val) else float("inf")
            if main:
                save_checkpoint(run_dir / "best.pt", model, epoch=epoch + 1, metrics=metrics)
        state.update(epoch=epoch + 1, step_in_epoch=0, loss_sum=0.0, n_loss=0)
        if main:
            with open(run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(metrics) + "\n")
            _save_state(last, model, optimizer, **state)
        last_save = time.monotonic()
        if progress is not None and main:
            progress({"member": run_dir.name, "epochs": config.epochs, **metrics})
    if main and (not (run_dir / "final.pt").exists() or state["epoch"] == config.epochs):
        save_checkpoint(run_dir / "final.pt", model, epoch=state["epoch"])
    if main and not (run_dir / "best.pt").exists():
        save_checkpoint(run_dir / "best.pt", model, epoch=state["epoch"])
    distributed.barrier(ctx)
    return run_dir / "best.pt"


def _check_labels(run_dir: Path, y: torch.Tensor) -> None:
    """Labels (B, 2) must be finite; candidates (B, A, 2) need a finite row each."""
    finite = torch.isfinite(y).all(-1)
    ok = bool(finite.all()) if y.ndim == 2 else bool(finite.any(-1).all())
    if y.ndim == 3:
        ok = ok and not bool(torch.isinf(y).any())
    if not ok:
        raise InvalidInputError(run_dir, "labels", "finite source positions", "NaN/inf in a batch")


def _render_device(device: torch.device, data: TrainingData) -> str:
    """Where engine calls are rendered: on the training GPU, else on the CPU."""
    return str(device) if data.engine is not None and device.type == "cuda" else "cpu"


def _loader_workers(num_workers: int, engine: bool, render_device: str = "cpu") -> int:
    """Data-loader processes: engine calls render in one at least, on the main thread.

    Off the main thread (napari's workers) no process is started: forking a threaded
    Qt process is unsafe, and spawned ones would import the caller's main module.
    Calls rendered on a GPU are rendered in the training process (CUDA cannot be
    used in forked workers; the GPU renders faster than workers would).
    """
    import threading

    if threading.current_thread() is not threading.main_thread() or render_device != "cpu":
        return 0
    return max(1, num_workers) if engine else num_workers


class TrainingDivergedError(GerbilError):
    """Training blew up (non-finite or exploding loss, or an error beyond the arena)."""


DIVERGENCE_HINT = (
    "Nothing was saved as a model. Lower the learning rate (e.g. a --config file with "
    "'learning_rate: 0.0003'), or use 'optimizer: adam' with 'clip_grad_norm: 1.0' (the "
    "default config)"
)


def _check_divergence(
    run_dir: Path, config: TrainingConfig, epoch: int, step: int, loss: float, state: dict
) -> None:
    """Stop on a non-finite loss, or when its running mean has exploded.

    Single spikes are normal early in training; a running mean (weight 0.1 per step)
    above ``max(1000, 100 * |first loss|)`` is not. The median validation error is
    checked against the arena's diagonal after every epoch as well.
    """
    ema = loss if "loss_ema" not in state else 0.9 * state["loss_ema"] + 0.1 * loss
    state["loss_ema"] = ema
    limit = max(1000.0, 100.0 * abs(state["first_loss"]))
    if math.isfinite(loss) and ema <= limit:
        return
    raise TrainingDivergedError(
        f"{run_dir}: training diverged at epoch {epoch + 1}, step {step + 1}: loss {loss:.4g} "
        f"(running mean {ema:.4g}; it started at {state['first_loss']:.4g}; optimizer "
        f"{config.optimizer}, learning rate {config.learning_rate:g}). {DIVERGENCE_HINT}"
    )


def _trim_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric lines of epochs not covered by the checkpoint (after a crash)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= epochs_done]
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch metrics of a member run."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


# -- ensembles -------------------------------------------------------------------------


def _member_job(args: tuple) -> str:
    """Run one member in a worker process (picklable arguments only)."""
    net_cfg, cfg, paths, split, meta, bank, engine, run_dir, init, threads, position = args
    torch.set_num_threads(threads)
    data = open_training_data(paths, cfg, meta.input_length_samples, split, meta, bank, engine)
    return str(train_member(net_cfg, cfg, data, run_dir, init_checkpoint=init, position=position))


def with_data_geometry(network_config: NetworkConfig, metadata: ModelMetadata) -> NetworkConfig:
    """Give an SRP network the data's microphones, arena and sample rate (others: as is)."""
    if network_config.srp_resolution_mm <= 0 or metadata.mic_positions_mm is None:
        return network_config
    return network_config.replace(
        mic_positions_mm=tuple(tuple(float(v) for v in m) for m in metadata.mic_positions_mm),
        arena_dims_mm=tuple(float(v) for v in metadata.arena_dims_mm),
        sample_rate_hz=float(metadata.sample_rate_hz),
    )


def train_ensemble(
    network_config: NetworkConfig,
    config: TrainingConfig,
    data_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    n_members: int,
    *,
    rir_bank: str | os.PathLike | None = None,
    engine: dict | None = None,
    sessions: Sequence[str | os.PathLike] | None = None,
    jobs: int = 1,
    cluster: Any = None,
    report: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    show_progress: bool = True,
    _init: Sequence[str | os.PathLike] | None = None,
    _metadata: ModelMetadata | None = None,
    _parent: dict[str, Any] | None = None,
    _version: int = 1,
) -> Path:
    """Train ``n_members`` members with seeds ``config.seed + k`` and write a model dir.

    ``data_paths`` are VCL files; or pass ``rir_bank`` (a simulator RIR bank) and no
    paths to train on freshly rendered calls. Members share the split
    (``config.split_seed``). ``jobs > 1`` trains that many
    members at once in separate processes (each with ``cpu_count // jobs`` threads);
    ``cluster`` (a :class:`~napari_gerbil.training.cluster.ClusterSpec`) submits them
    as cluster jobs instead (``report`` gets their progress lines). Under ``torchrun``
    the members train one after another, each data-parallel over the ranks (rank 0
    writes). Re-running on the same ``out_dir`` resumes unfinished members. Returns
    ``out_dir``; with a detached cluster run, before the model is assembled (no
    ``manifest.json`` yet: ``train --resume`` finishes it). ``sessions``: session files
    whose calls train with the tracked animals as weak labels (see
    :mod:`napari_gerbil.training.sessions`; one process, no ``jobs`` / ``cluster``).
    """
    from napari_gerbil.training import distributed

    if n_members < 1:
        raise InvalidInputError(None, "ensemble", ">= 1 member", str(n_members))
    rank = distributed.current()
    main = rank is None or rank.main
    if rank is not None and (jobs > 1 or cluster is not None):
        raise InvalidInputError(
            None, "--nproc", "one data-parallel run (no --jobs or --cluster)", "both"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    length = network_config.input_length_samples
    if sessions and (jobs > 1 or cluster is not None):
        raise InvalidInputError(
            None, "--sessions", "one process (no --jobs or --cluster)", "--jobs / --cluster"
        )
    if rir_bank is None and not sessions:  # `napari-gerbil validate`'s checks, NaN labels too
        check_training_files([p.path if isinstance(p, VCLDataset) else p for p in data_paths])
    existing_split = out_dir / "member_00" / "split.json"
    split = None
    if rir_bank is None and engine is None and not sessions and existing_split.exists():
        split = load_split(existing_split)[0]
    data = open_training_data(
        data_paths, config, length, split, _metadata, rir_bank, engine, sessions or None
    )
    if data.sessions is not None and report is not None:
        report(data.sessions.summary())
    if network_config.n_channels != data.metadata.n_channels:
        network_config = network_config.replace(n_channels=data.metadata.n_channels)
    network_config = with_data_geometry(network_config, data.metadata)
    record = describe_inputs(
        network_config.digest(), config.digest(), data.input_paths, data.rir_bank, data.engine
    )
    if main:
        check_or_record_inputs(out_dir, record)
        config.save(out_dir / "training.yaml")
        if _init is None:  # what ``train --resume`` needs to run this again
            invocation = {
                "network": network_config.to_dict(),
                "training": config.to_dict(),
                "data": data.paths,
                "rir_bank": data.rir_bank,
                "engine": data.engine,
                "sessions": None if data.sessions is None else data.sessions.paths,
                "n_members": n_members,
                "jobs": jobs,
                "cluster": None if cluster is None else cluster.to_dict(),
            }
            atomic_write_text(out_dir / RUN_RECORD, json.dumps(invocation, indent=2))
    distributed.barrier(rank)
    seeds = [config.seed + k for k in range(n_members)]
    runs = [out_dir / f"member_{k:02d}" for k in range(n_members)]
    inits = list(_init) if _init is not None else [None] * n_members
    if cluster is not None:
        from napari_gerbil.training.cluster import run_members

        args = [
            (network_config, config.replace(seed=s), data.paths, data.split, data.metadata,
             data.rir_bank, data.engine, str(r), None if i is None else str(i), 1, k)
            for k, (s, r, i) in enumerate(zip(seeds, runs, inits, strict=True))
        ]  # fmt: skip
        if not run_members(out_dir, args, cluster, report):
            return out_dir  # detached: --resume collects the members
    elif jobs > 1 and n_members > 1:
        import concurrent.futures
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // jobs)
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            args = [
                (network_config, config.replace(seed=s), data.paths, data.split, data.metadata,
                 data.rir_bank, data.engine, str(r), None if i is None else str(i), threads, k)
                for k, (s, r, i) in enumerate(zip(seeds, runs, inits, strict=True))
            ]  # fmt: skip
            for done in pool.map(_member_job, args):
                if progress is not None:
                    progress({"member_done": done})
    else:
        for s, r, i in zip(seeds, runs, inits, strict=True):
            train_member(
                network_config,
                config.replace(seed=s),
                data,
                r,
                init_checkpoint=i,
                progress=progress,
                cancel=cancel,
                show_progress=show_progress,
            )
    if main:
        finalize_model_dir(
            out_dir, network_config, config, data, seeds, parent=_parent, version=_version
        )
    distributed.barrier(rank)
    return out_dir


#: ``train_ensemble``'s record of its arguments (``train --resume DIR`` reads it).
RUN_RECORD = "run.json"


def resume_ensemble(
    out_dir: str | os.PathLike,
    *,
    cluster: Any = None,
    jobs: int | None = None,
    report: Callable[[str], None] | None = None,
    show_progress: bool = True,
) -> Path:
    """Continue the ``train_ensemble`` run recorded in ``out_dir/run.json``.

    Finished members are kept, members whose cluster job still runs are waited for,
    and the others are trained again (resuming from their ``last.pt``): as cluster jobs
    with ``cluster`` (default: the recorded one) or as local processes.
    """
    out_dir = Path(out_dir)
    path = out_dir / RUN_RECORD
    if not path.is_file():
        raise InvalidInputError(
            out_dir, "--resume", f"a folder started by 'napari-gerbil train' ({RUN_RECORD})",
            "no run.json",
        )  # fmt: skip
    try:
        rec = json.loads(path.read_text())
        network_config = NetworkConfig.from_dict(rec["network"], str(path))
        config = TrainingConfig.from_dict(rec["training"], str(path))
        n_members = int(rec["n_members"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(path, "<file>", "a run record", str(exc)[:200]) from None
    if cluster is None and rec.get("cluster"):
        import dataclasses

        from napari_gerbil.training.cluster import ClusterSpec

        recorded = ClusterSpec.from_dict(rec["cluster"])
        cluster = dataclasses.replace(recorded, detach=False).check(str(path))
    return train_ensemble(
        network_config,
        config,
        rec.get("data") or [],
        out_dir,
        n_members,
        rir_bank=rec.get("rir_bank"),
        engine=rec.get("engine"),
        sessions=rec.get("sessions"),
        jobs=int(jobs if jobs is not None else rec.get("jobs", 1)),
        cluster=cluster,
        report=report,
        show_progress=show_progress,
    )


def finalize_model_dir(
    out_dir: Path,
    network_config: NetworkConfig,
    config: TrainingConfig,
    data: TrainingData,
    seeds: Sequence[int],
    parent: dict[str, Any] | None = None,
    version: int = 1,
) -> Path:
    """Write the manifest; compute calibration on the validation calls (and temperature)."""
    from napari_gerbil.model.calibration import calibration_report, fit_temperature
    from napari_gerbil.model.ensemble import load_member

    files = [f"member_{k:02d}/best.pt" for k in range(len(seeds))]
    members = [load_member(out_dir / f) for f in files]
    ensemble = Ensemble(members, data.metadata)
    val = data.part("val")
    temperature = 1.0
    if len(val) and not getattr(val, "weak", False):  # weak labels: no known source
        pred = ensemble.predict(val.calls())
        truth = val.targets_mm()
        if config.fit_temperature:
            temperature = fit_temperature(pred, truth)
            pred = pred.with_temperature(temperature)
        report = calibration_report(pred, truth, data.metadata.arena_dims_mm)
        err = np.linalg.norm(pred.point_mm - truth, axis=-1)
        summary = {**report.to_dict(), "median_error_mm": float(np.median(err)), "split": "val"}
        summary["temperature"] = temperature
        atomic_write_text(out_dir / "calibration.json", json.dumps(summary))
    if data.engine is not None:  # the model records the cage it was simulated for
        from napari_gerbil.io.cage import Cage, save_cage

        save_cage(Cage.from_dict(data.engine["cage"]), out_dir / "cage.yaml")
    digest = f"{network_config.digest()}-{config.digest()}"
    write_manifest(
        out_dir,
        network_config=network_config,
        metadata=data.metadata,
        member_files=files,
        member_seeds=seeds,
        config_digest=digest,
        parent=parent,
        temperature=temperature,
        version=version,
    )
    return out_dir


def next_version_dir(model_dir: Path) -> Path:
    """``<model_dir>-ft<k>`` with the first k that does not exist yet."""
    k = 1
    while (model_dir.parent / f"{model_dir.name}-ft{k}").exists():
        k += 1
    return model_dir.parent / f"{model_dir.name}-ft{k}"


def finetune(
    model_dir: str | os.PathLike,
    datasets: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    config: TrainingConfig | None = None,
    *,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    show_progress: bool = True,
    engine: dict | None = None,
    sessions: Sequence[str | os.PathLike] | None = None,
    overrides: dict[str, Any] | None = None,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Fine-tune every member of ``model_dir`` on ``datasets`` into a new model directory.

    The new directory (default ``<model_dir>-ft<k>``) gets version = parent's + 1 and
    a ``parent`` entry in its manifest; the old directory is never written to. An
    existing ``out_dir`` that already holds a model is refused; one left by an
    interrupted fine-tune is resumed. Default ``config``: the parent's, with 10 epochs
    at a tenth of its learning rate, then ``overrides`` (e.g. ``{"epochs": 3}``).
    ``sessions``: train on session calls (weak labels, see
    :mod:`napari_gerbil.training.sessions`); the parent's ``attribution.yaml`` is copied.
    """
    from napari_gerbil.training.config import TrainingConfig as _TC

    model_dir = Path(model_dir).resolve()
    manifest = read_manifest(model_dir)
    out = next_version_dir(model_dir) if out_dir is None else Path(out_dir).resolve()
    if out == model_dir or is_model_dir(out):
        raise InvalidInputError(
            out, "out_dir", "a new directory (models are never overwritten)", "an existing model"
        )
    if config is None:
        parent_cfg = _TC.load(model_dir / "training.yaml")
        config = parent_cfg.replace(epochs=10, learning_rate=parent_cfg.learning_rate / 10)
    if overrides:
        config = config.replace(**overrides)
    network_config = NetworkConfig.load(model_dir / "network.yaml")
    meta = ModelMetadata.from_manifest(
        manifest, NetworkConfig.load(model_dir / "network.yaml").input_length_samples
    )
    seeds = [m.get("seed", k) for k, m in enumerate(manifest["members"])]
    config = config.replace(seed=int(seeds[0]) + 1000 * int(manifest.get("version", 1)))
    parent = {
        "path": str(model_dir),
        "version": manifest.get("version", 1),
        "config_digest": manifest.get("config_digest"),
        "created": manifest.get("created"),
    }
    result = train_ensemble(
        network_config,
        config,
        datasets,
        out,
        len(seeds),
        progress=progress,
        cancel=cancel,
        show_progress=show_progress,
        engine=engine,
        sessions=sessions,
        report=report,
        _init=[model_dir / m["file"] for m in manifest["members"]],
        _metadata=meta,
        _parent=parent,
        _version=int(manifest.get("version", 1)) + 1,
    )
    if sessions:
        _copy_attribution(model_dir, result)
    return result


#: A model directory's attribution scales (``napari_gerbil.attribute.CALIBRATION_FILE``).
ATTRIBUTION_FILE = "attribution.yaml"


def _copy_attribution(parent: Path, out: Path) -> None:
    """Give a fine-tuned model its parent's attribution scales (provenance noted)."""
    import yaml

    source, target = parent / ATTRIBUTION_FILE, out / ATTRIBUTION_FILE
    if not source.is_file() or target.exists():
        return
    keys = yaml.safe_load(source.read_text())
    if not isinstance(keys, dict):
        raise InvalidInputError(source, "<root>", "a YAML mapping", type(keys).__name__)
    keys["fitted_on"] = f"{keys.get('fitted_on', '')} (copied from parent {parent.name})"
    atomic_write_text(target, yaml.safe_dump(keys, sort_keys=False))
