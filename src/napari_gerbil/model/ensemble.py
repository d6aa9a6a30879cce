"""The ensemble that predicts Gaussian mixtures from call audio.

It is loaded from a model directory (layout and manifest:
:mod:`napari_gerbil.model.manifest`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_gerbil.errors import IncompatibleModelError, InvalidInputError
from napari_gerbil.io.compat import check_compatible as _check_compatible
from napari_gerbil.model.gaussian import raw_to_gaussian
from napari_gerbil.model.manifest import (
    MANIFEST,
    MODEL_FORMAT,
    ModelMetadata,
    read_manifest,
    sha256_file,
    write_manifest,
)
from napari_gerbil.model.mixture import MixturePrediction
from napari_gerbil.model.network import LocalizerNet
from napari_gerbil.model.preprocess import crop_or_pad
from napari_gerbil.model.presets import NetworkConfig
from napari_gerbil.progress import ProgressCallback, report

__all__ = [
    "MANIFEST",
    "MODEL_FORMAT",
    "Ensemble",
    "ModelMetadata",
    "load_ensemble",
    "load_member",
    "read_manifest",
    "save_checkpoint",
    "sha256_file",
    "write_manifest",
]


def save_checkpoint(path: Path, net: LocalizerNet, **extra: Any) -> None:
    """Save a member's weights and network config (atomically)."""
    from napari_gerbil.io.atomic import atomic_path

    payload = {"state_dict": net.state_dict(), "network": net.config.to_dict(), **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_member(path: Path, device: str | torch.device = "cpu") -> LocalizerNet:
    """Load one member checkpoint into an eval-mode network."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise InvalidInputError(path, "<file>", "a napari-gerbil checkpoint", str(exc)) from exc
    net = LocalizerNet(NetworkConfig.from_dict(payload["network"], source=str(path)))
    net.load_state_dict(payload["state_dict"])
    return net.to(device).eval()


class Ensemble:
    """Equal-weight ensemble of member networks.

    Parameters
    ----------
    members
        The member networks (same config).
    metadata
        Sample rate, channels, arena and label scale of the training data.
    temperature
        Covariance scale applied to every member's Gaussian.
    manifest, path
        Where the ensemble was loaded from (informational).
    """

    def __init__(
        self,
        members: Sequence[LocalizerNet],
        metadata: ModelMetadata,
        temperature: float = 1.0,
        manifest: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        if not members:
            raise InvalidInputError(path, "members", "at least one member", "none")
        self.members = [m.eval() for m in members]
        self.metadata = metadata
        self.temperature = float(temperature)
        self.manifest = manifest or {}
        self.path = path

    @property
    def n_members(self) -> int:
        """Number of members M."""
        return len(self.members)

    @property
    def config(self) -> NetworkConfig:
        """The network config of every member."""
        return self.members[0].config

    @property
    def arena_dims_mm(self) -> np.ndarray:
        """(3,) arena the model was trained for (mm)."""
        return np.asarray(self.metadata.arena_dims_mm, dtype=float)

    @property
    def version(self) -> str:
        """Short identifier: preset, manifest version and creation time."""
        return (
            f"{self.manifest.get('preset', self.config.name)}"
            f"-v{self.manifest.get('version', 0)}-{self.manifest.get('created', '')}"
        )

    @property
    def device(self) -> torch.device:
        """Where the members' weights are."""
        return next(self.members[0].parameters()).device

    def check_compatible(
        self,
        n_channels: int | None = None,
        sample_rate_hz: float | None = None,
        arena_dims_mm: Any = None,
        source: str | os.PathLike | None = None,
        mic_positions_mm: Any = None,
    ) -> None:
        """Raise :class:`IncompatibleModelError` naming what differs from the model.

        Channels and sample rate must match, the cage's dims and every microphone
        within 1 mm (:func:`napari_gerbil.io.cage.compare_geometry`); None = unknown.
        """
        from napari_gerbil.io.cage import compare_geometry

        try:
            _check_compatible(
                source,
                n_channels=n_channels,
                sample_rate_hz=sample_rate_hz,
                arena_dims_mm=arena_dims_mm,
                expected_n_channels=self.metadata.n_channels,
                expected_sample_rate_hz=self.metadata.sample_rate_hz,
                expected_arena_dims_mm=self.metadata.arena_dims_mm,
                what=f"model {self.path or ''}".strip(),
            )
        except IncompatibleModelError:
            raise
        except InvalidInputError as exc:
            raise IncompatibleModelError(
                exc.source, exc.field, exc.expected, exc.found, exc.hint
            ) from None
        compare_geometry(
            {
                "dims_mm": self.metadata.arena_dims_mm,
                "mic_positions_mm": self.metadata.mic_positions_mm,
            },
            {"dims_mm": arena_dims_mm, "mic_positions_mm": mic_positions_mm},
            source,
            what=f"model {self.path or ''}".strip(),
        )

    def prepare(self, audio: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Centre-crop / pad and z-score calls: (B, T, C) or list of (T_i, C) -> (B, C, L)."""
        calls = list(audio) if not isinstance(audio, np.ndarray) or audio.ndim == 3 else [audio]
        length = self.metadata.input_length_samples
        out = np.empty((len(calls), self.metadata.n_channels, length), dtype=np.float32)
        for i, call in enumerate(calls):
            call = np.asarray(call)
            if call.ndim != 2 or call.shape[1] != self.metadata.n_channels:
                raise IncompatibleModelError(
                    None,
                    "audio",
                    f"(n_samples, {self.metadata.n_channels}) per call",
                    f"shape {call.shape}",
                )
            out[i] = crop_or_pad(call, length).T
        return out

    @torch.inference_mode()
    def predict(
        self,
        audio: np.ndarray | Sequence[np.ndarray],
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
        temperature: float | None = None,
    ) -> MixturePrediction:
        """Predict each call's mixture.

        Parameters
        ----------
        audio
            (B, T, C) float array, or a list of (T_i, C) calls of any length.
        batch_size
            Calls per forward pass.
        progress
            Gets a :class:`~napari_gerbil.progress.Progress` after each batch.
        temperature
            Covariance scale; default the model's fitted one.

        Returns
        -------
        MixturePrediction with means (B, M, 2) and Cholesky factors (B, M, 2, 2) in mm.
        """
        calls = list(audio) if not isinstance(audio, np.ndarray) or audio.ndim == 3 else [audio]
        total = len(calls)
        scale = self.metadata.label_scale_mm
        means, chols = [], []
        for start in range(0, total, batch_size):
            x = torch.from_numpy(self.prepare(calls[start : start + batch_size]))
            x = x.to(self.device)
            shared = self.members[0].shared_features(x)
            mu_b, l_b = [], []
            for net in self.members:
                mu, chol = raw_to_gaussian(net(x, **shared).double())
                mu_b.append(mu.cpu().numpy() * scale)
                l_b.append(chol.cpu().numpy() * scale)
            means.append(np.stack(mu_b, axis=1))
            chols.append(np.stack(l_b, axis=1))
            done = min(start + batch_size, total)
            report(progress, done / total, f"{done}/{total} calls")
        if not means:
            m = self.n_members
            return MixturePrediction(np.zeros((0, m, 2)), np.zeros((0, m, 2, 2)))
        pred = MixturePrediction(np.concatenate(means), np.concatenate(chols))
        t = self.temperature if temperature is None else temperature
        return pred if t == 1.0 else pred.with_temperature(t)


def load_ensemble(
    model_dir: str | os.PathLike, device: str | torch.device = "cpu", verify: bool = True
) -> Ensemble:
    """Load a model directory; ``verify`` checks each member file's SHA-256."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    members = []
    for entry in manifest["members"]:
        path = model_dir / entry["file"]
        if not path.exists():
            raise InvalidInputError(model_dir, entry["file"], "a member checkpoint", "no file")
        if verify and sha256_file(path) != entry["sha256"]:
            raise InvalidInputError(
                path, "sha256", entry["sha256"], "a different checksum (file changed)"
            )
        members.append(load_member(path, device))
    meta = ModelMetadata.from_manifest(manifest, members[0].config.input_length_samples)
    return Ensemble(members, meta, manifest.get("temperature", 1.0), manifest, model_dir)
