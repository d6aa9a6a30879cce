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


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """Read a checkpoint as data only (``weights_only=True``).

    A pickled object that would run code on loading is refused, never executed.

    Raises :class:`InvalidInputError` naming the file for anything but a dict of tensors
    and plain values.
    """
    import pickle

    from napari_gerbil.io.inputs import check_input_file

    path = check_input_file(path, "<file>", "checkpoint")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        named = [ln for ln in lines if "Unsupported" in ln or "GLOBAL" in ln]
        first = (named or lines or [type(exc).__name__])[0]
        raise InvalidInputError(
            path,
            "<file>",
            "a checkpoint holding only tensors and plain values",
            f"content refused by the safe loader ({first[:160]})",
            hint="A model directory is data; checkpoints that need code to load are never run.",
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidInputError(
            path, "<file>", "a napari-gerbil checkpoint", f"unreadable ({str(exc)[:160]})"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidInputError(path, "<root>", "a dict", type(payload).__name__)
    return payload


def load_member(path: Path, device: str | torch.device = "cpu") -> LocalizerNet:
    """Load one member checkpoint into an eval-mode network (weights only, never code)."""
    payload = load_checkpoint(path, device)
    for key in ("network", "state_dict"):
        if not isinstance(payload.get(key), dict):
            raise InvalidInputError(path, key, "a dict", type(payload.get(key)).__name__)
    try:
        net = LocalizerNet(NetworkConfig.from_dict(payload["network"], source=str(path)))
    except InvalidInputError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidInputError(
            path, "network", "a valid network configuration", str(exc)[:200]
        ) from None
    try:
        net.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        raise InvalidInputError(
            path,
            "state_dict",
            f"weights of the {net.config.name!r} architecture in 'network'",
            first[0][:200] + (f" {first[1].strip()[:200]}" if len(first) > 1 else ""),
        ) from None
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
            if not np.isfinite(out[i]).all():
                raise InvalidInputError(
                    None,
                    "audio",
                    "finite samples in every call",
                    f"NaN/inf in call {i} of the batch",
                    hint="Check the recording with `napari-gerbil validate`.",
                )
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


def check_device(device: str | torch.device) -> torch.device:
    """A torch device that exists here (InvalidInputError for a typo or a missing GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidInputError(
            None, "device", "a torch device (cpu, cuda, cuda:N, mps)", repr(device)
        ) from None
    if dev.type == "cuda" and (
        not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()
    ):
        raise InvalidInputError(None, "device", "an available device", f"{device} (no such GPU)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError(None, "device", "an available device", f"{device} (no MPS)")
    return dev


def load_ensemble(
    model_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    verify: bool = True,
    *,
    field: str = "model directory",
    hint: str | None = None,
) -> Ensemble:
    """Load a model directory; ``verify`` checks each member file's SHA-256.

    ``field`` names where the directory came from in a message (``--model`` on the
    command line, the model field of the window); ``hint`` says how to fix a missing one.
    """
    device = check_device(device)
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InvalidInputError(
            model_dir,
            field,
            "an existing model directory",
            "a file" if model_dir.exists() else "no such folder (moved or deleted?)",
            hint=hint,
        )
    manifest = read_manifest(model_dir)
    members = []
    for entry in manifest["members"]:
        path = model_dir / entry["file"]
        if not path.is_file():
            raise InvalidInputError(model_dir, entry["file"], "a member checkpoint", "no file")
        if verify and sha256_file(path) != entry["sha256"]:
            raise InvalidInputError(
                path, "sha256", entry["sha256"], "a different checksum (file changed)"
            )
        members.append(load_member(path, device))
    first = members[0].config
    for entry, net in zip(manifest["members"], members, strict=True):
        if net.config != first:
            raise InvalidInputError(
                model_dir / entry["file"],
                "network",
                f"the architecture of member 0 ({first.name})",
                f"another one ({net.config.name})",
            )
        if net.config.n_channels != manifest["n_channels"]:
            raise InvalidInputError(
                model_dir / entry["file"],
                "network.n_channels",
                f"{manifest['n_channels']} (manifest n_channels)",
                str(net.config.n_channels),
            )
    meta = ModelMetadata.from_manifest(manifest, members[0].config.input_length_samples)
    return Ensemble(members, meta, manifest.get("temperature", 1.0), manifest, model_dir)
