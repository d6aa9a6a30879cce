"""Fine-tune a model directory's members into a new version (``<model>-ft<k>``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text
from napari_gerbil.model.manifest import ModelMetadata, is_model_dir, read_manifest
from napari_gerbil.model.presets import NetworkConfig
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.ensembles import train_ensemble
from napari_gerbil.training.loop import Progress


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
    A parent with a learned scorer (``scorer.pt``) gets it fine-tuned too, on the reviewed
    calls of ``sessions`` and of the sessions the ``datasets`` were exported from
    (:func:`napari_gerbil.training.scorer.finetune_scorer`; its verdict is reported and
    kept in ``scorer_finetune.json``).
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
    created = not out.exists()
    try:
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
    except OSError as exc:  # a full disk, an I/O error: name the new model, leave no husk
        if created and out.is_dir() and not any(p.is_file() for p in out.rglob("*")):
            import shutil

            shutil.rmtree(out, ignore_errors=True)  # empty: nothing to resume from
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(out)) from exc
        raise
    from napari_gerbil.training.scorer import finetune_scorer

    reviewed = [*(sessions or []), *_exported_from(datasets)]
    taught = finetune_scorer(model_dir, result, reviewed, log=report) if reviewed else None
    if sessions or taught is not None:
        _copy_attribution(model_dir, result)
    return result


def _exported_from(datasets: Sequence[str | os.PathLike]) -> list[str]:
    """Sessions that reviewed-call exports among ``datasets`` came from (if still there)."""
    from napari_gerbil.io.vcl import VCLDataset

    found = []
    for path in datasets:
        with VCLDataset(path) as data:
            source = data.provenance.get("session")
        if isinstance(source, str) and Path(source).is_file():
            found.append(source)
    return found


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
