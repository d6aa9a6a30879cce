"""Train an ensemble: members one after another, in processes or as cluster jobs; resume it.

:func:`train_ensemble` writes a model directory (members, manifest, calibration);
:func:`resume_ensemble` continues a run from its ``run.json`` record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text
from napari_gerbil.io.checks import check_training_files
from napari_gerbil.io.vcl import VCLDataset
from napari_gerbil.model.ensemble import Ensemble
from napari_gerbil.model.manifest import ModelMetadata, write_manifest
from napari_gerbil.model.presets import NetworkConfig
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.data import load_split
from napari_gerbil.training.loop import Progress, member_job, train_member
from napari_gerbil.training.run_record import (
    check_or_record_inputs,
    check_run_fields,
    describe_inputs,
)
from napari_gerbil.training.sources import TrainingData, open_training_data


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
            for done in pool.map(member_job, args):
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
    except ValueError as exc:
        raise InvalidInputError(path, "<file>", "a run record (JSON)", str(exc)[:200]) from None
    check_run_fields(rec, path)  # typed fields, each error naming its field
    try:
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
