"""The model directory's ``manifest.json``: the one reader and writer (no torch needed).

A model directory holds::

    manifest.json      format, version, created, preset, n_members, metadata, members
                       [{file, sha256, seed}], config_digest, parent, temperature
    network.yaml       the NetworkConfig of every member
    training.yaml      the TrainingConfig used
    calibration.json   coverage curve and ECE on the validation calls (if computed)
    member_XX/         one training run per member: best.pt (used), final.pt, last.pt
                       (resume), metrics.jsonl, split.json

``napari-gerbil info``, the ensemble loader, the trainer and the napari dock all read it
through :func:`read_manifest`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text
from napari_gerbil.model.presets import NetworkConfig

MODEL_FORMAT = "napari-gerbil-model"
MANIFEST = "manifest.json"
#: Keys a manifest must have to be used.
REQUIRED_KEYS = ("members", "sample_rate_hz", "n_channels", "arena_dims_mm", "label_scale_mm")


@dataclass
class ModelMetadata:
    """What a model needs to know about its data (stored in the manifest)."""

    sample_rate_hz: float
    n_channels: int
    arena_dims_mm: tuple[float, ...]
    label_scale_mm: float
    input_length_samples: int
    mic_positions_mm: list[list[float]] | None = None
    normalization: str = "zscore over all channels and samples of the cropped call"

    def to_dict(self) -> dict[str, Any]:
        """The manifest entries of the metadata."""
        return {
            "sample_rate_hz": float(self.sample_rate_hz),
            "n_channels": int(self.n_channels),
            "arena_dims_mm": [float(v) for v in self.arena_dims_mm],
            "label_scale_mm": float(self.label_scale_mm),
            "input_length_samples": int(self.input_length_samples),
            "mic_positions_mm": self.mic_positions_mm,
            "normalization": self.normalization,
        }

    @classmethod
    def from_manifest(
        cls, manifest: dict[str, Any], input_length_samples: int | None = None
    ) -> ModelMetadata:
        """The metadata stored in a manifest read by :func:`read_manifest`.

        ``input_length_samples`` is used only by old manifests that lack the entry.
        """
        length = manifest.get("input_length_samples", input_length_samples)
        if length is None:
            raise InvalidInputError(MANIFEST, "input_length_samples", "present", "missing")
        return cls(
            sample_rate_hz=float(manifest["sample_rate_hz"]),
            n_channels=int(manifest["n_channels"]),
            arena_dims_mm=tuple(float(v) for v in manifest["arena_dims_mm"]),
            label_scale_mm=float(manifest["label_scale_mm"]),
            input_length_samples=int(length),
            mic_positions_mm=manifest.get("mic_positions_mm"),
        )


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_model_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with a ``manifest.json`` (not checked further)."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest_json(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest as a JSON object, unchecked (for listing it, e.g. ``info``)."""
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInputError(
            model_dir, MANIFEST, "a napari-gerbil model directory", "no manifest.json"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(path, "<file>", "valid JSON", str(exc)) from None
    if not isinstance(manifest, dict):
        raise InvalidInputError(path, "<root>", "a JSON object", type(manifest).__name__)
    return manifest


def read_manifest(model_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check a model directory's manifest."""
    manifest = read_manifest_json(model_dir)
    path = Path(model_dir) / MANIFEST
    if manifest.get("format") != MODEL_FORMAT:
        raise InvalidInputError(path, "format", repr(MODEL_FORMAT), repr(manifest.get("format")))
    for key in REQUIRED_KEYS:
        if key not in manifest:
            raise InvalidInputError(path, key, "present", "missing")
    check_manifest(manifest, path)
    return manifest


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_manifest(manifest: dict[str, Any], path: str | os.PathLike) -> None:
    """Check the types and ranges of a manifest's fields; raise InvalidInputError."""

    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise InvalidInputError(path, key, expected, repr(manifest.get(key))[:120])

    def positive(value: Any) -> bool:
        return _is_number(value) and np.isfinite(value) and value > 0

    need("sample_rate_hz", positive(manifest["sample_rate_hz"]), "a positive rate (Hz)")
    need("n_channels", _is_int(manifest["n_channels"]) and manifest["n_channels"] >= 1, ">= 1")
    dims = manifest["arena_dims_mm"]
    need(
        "arena_dims_mm",
        isinstance(dims, list)
        and len(dims) in (2, 3)
        and all(positive(v) for v in dims[:2])
        and all(_is_number(v) for v in dims),
        "[length, width(, height)] in mm, positive",
    )
    need("label_scale_mm", positive(manifest["label_scale_mm"]), "a positive length (mm)")
    if "input_length_samples" in manifest:
        n = manifest["input_length_samples"]
        need("input_length_samples", _is_int(n) and n >= 1, "an integer >= 1")
    if "temperature" in manifest:
        need("temperature", positive(manifest["temperature"]), "a positive covariance scale")
    if "version" in manifest:
        need("version", _is_int(manifest["version"]) and manifest["version"] >= 1, ">= 1")
    mics = manifest.get("mic_positions_mm")
    if mics is not None:
        try:
            arr: np.ndarray | None = np.asarray(mics, dtype=float)
        except (TypeError, ValueError):
            arr = None
        need(
            "mic_positions_mm",
            arr is not None
            and arr.shape == (manifest["n_channels"], 3)
            and bool(np.isfinite(arr).all()),
            f"({manifest['n_channels']}, 3) finite positions (mm), one per channel",
        )
    members = manifest["members"]
    need("members", isinstance(members, list) and len(members) >= 1, "a non-empty list")
    for k, entry in enumerate(members):
        field = f"members[{k}]"
        if not isinstance(entry, dict):
            raise InvalidInputError(path, field, "an object {file, sha256, seed}", repr(entry))
        file = entry.get("file")
        if not isinstance(file, str) or not file:
            raise InvalidInputError(path, f"{field}.file", "a relative file name", repr(file))
        rel = Path(file)
        if rel.is_absolute() or ".." in rel.parts:
            raise InvalidInputError(
                path, f"{field}.file", "a path inside the model directory", repr(file)
            )
        sha = entry.get("sha256")
        if not (isinstance(sha, str) and len(sha) == 64):
            raise InvalidInputError(path, f"{field}.sha256", "64 hex digits", repr(sha)[:80])
        if "seed" in entry and not _is_int(entry["seed"]):
            raise InvalidInputError(path, f"{field}.seed", "an integer", repr(entry["seed"]))
    if "n_members" in manifest:
        need("n_members", manifest["n_members"] == len(members), f"{len(members)} (members)")


def write_manifest(
    model_dir: Path,
    *,
    network_config: NetworkConfig,
    metadata: ModelMetadata,
    member_files: Sequence[str],
    member_seeds: Sequence[int],
    config_digest: str,
    parent: dict[str, Any] | None = None,
    temperature: float = 1.0,
    version: int = 1,
) -> dict[str, Any]:
    """Write ``manifest.json`` (member hashes computed here) and ``network.yaml``."""
    from napari_gerbil import __version__

    model_dir = Path(model_dir)
    network_config.save(model_dir / "network.yaml")
    manifest = {
        "format": MODEL_FORMAT,
        "version": int(version),
        "napari_gerbil_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "preset": network_config.name,
        "n_members": len(member_files),
        **metadata.to_dict(),
        "members": [
            {"file": str(f), "sha256": sha256_file(model_dir / f), "seed": int(s)}
            for f, s in zip(member_files, member_seeds, strict=True)
        ],
        "config_digest": config_digest,
        "parent": parent,
        "temperature": float(temperature),
    }
    atomic_write_text(model_dir / MANIFEST, json.dumps(manifest, indent=2))
    return manifest
