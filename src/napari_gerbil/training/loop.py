"""Train one ensemble member: NLL loss, cosine SGD, validation, divergence checks, resume.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from napari_gerbil.errors import GerbilError, InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text
from napari_gerbil.model.ensemble import load_checkpoint, save_checkpoint
from napari_gerbil.model.gaussian import raw_to_gaussian, weak_label_nll
from napari_gerbil.model.network import LocalizerNet, build_network
from napari_gerbil.model.presets import NetworkConfig
from napari_gerbil.training.checkpoints import save_state, trim_metrics
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.data import EpochSampler, save_split
from napari_gerbil.training.sources import TrainingData, open_training_data

#: Squared Mahalanobis radius of a 2-D Gaussian's 95% ellipse (chi-square, 2 dof).
CHI2_95 = -2.0 * math.log(0.05)


Progress = Callable[[dict[str, Any]], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(None, "device", "an available device", "cuda (no GPU found)")
    return torch.device(name)


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
        trim_metrics(run_dir / "metrics.jsonl", state["epoch"])
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
                save_state(last, model, optimizer, **state)
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
            save_state(last, model, optimizer, **state)
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


def member_job(args: tuple) -> str:
    """Run one member in a worker process (picklable arguments only)."""
    net_cfg, cfg, paths, split, meta, bank, engine, run_dir, init, threads, position = args
    torch.set_num_threads(threads)
    data = open_training_data(paths, cfg, meta.input_length_samples, split, meta, bank, engine)
    return str(train_member(net_cfg, cfg, data, run_dir, init_checkpoint=init, position=position))
