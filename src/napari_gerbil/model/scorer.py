"""The learned audio-pose scorer: one score per (call, candidate animal).

A small MLP over :func:`~napari_gerbil.baselines.candidate_features.candidate_features`
(GCC windows at the candidate, levels between microphones, the candidate's distance and
bearing to each microphone from its pose). The softmax of the scores over a call's
tracked animals, times the calibrated scale of ``attribution.yaml``, gives the
probabilities. In the spirit of VCL 2.0 (Aramist/vocalocator-ssl: audio and pose
embeddings scored by an MLP), built for CPUs: the audio enters as correlation and level
features, not as raw samples.

A scorer is trained for one rig (microphone positions, sample rate) and refuses others.
It lives in a model directory as ``scorer.pt`` (loaded with ``weights_only=True``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_gerbil.errors import IncompatibleModelError, InvalidInputError

#: File of a model directory holding its scorer.
SCORER_FILE = "scorer.pt"
#: Format version of the scorer file.
SCORER_FORMAT = 1


class CandidateScorer(nn.Module):
    """MLP scoring each candidate's features; inputs are standardized inside.

    Parameters
    ----------
    n_features
        Length of a candidate's feature vector.
    hidden
        Widths of the hidden layers.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int, hidden: tuple[int, ...] = (256, 128)) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.hidden = tuple(int(h) for h in hidden)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def set_normalization(self, features: np.ndarray, valid: np.ndarray) -> None:
        """Standardize inputs by the mean and spread of the tracked candidates' features."""
        rows = np.asarray(features, np.float32)[np.asarray(valid, bool)]
        self.mean.copy_(torch.as_tensor(rows.mean(axis=0)))
        self.std.copy_(torch.as_tensor(np.maximum(rows.std(axis=0), 1e-3)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, K, F) features -> (B, K) scores."""
        return self.net((features - self.mean) / self.std)[..., 0]


def score_candidates(
    scorer: CandidateScorer, features: np.ndarray, valid: np.ndarray, batch: int = 4096
) -> np.ndarray:
    """(B, K) scores of candidates (NaN where ``valid`` is False), no gradients."""
    feats = np.asarray(features, np.float32)
    out = np.full(feats.shape[:2], np.nan)
    scorer.eval()
    with torch.no_grad():
        for start in range(0, len(feats), batch):
            chunk = torch.as_tensor(feats[start : start + batch])
            out[start : start + batch] = scorer(chunk).double().numpy()
    return np.where(valid, out, np.nan)


def save_scorer(scorer: CandidateScorer, path: str | os.PathLike, rig: dict[str, Any],
                provenance: dict[str, Any]) -> Path:  # fmt: skip
    """Write the scorer atomically: weights, normalization, its rig and provenance."""
    from napari_gerbil.io.atomic import atomic_path

    path = Path(path)
    payload = {
        "format": SCORER_FORMAT,
        "n_features": scorer.n_features,
        "hidden": list(scorer.hidden),
        "state_dict": scorer.state_dict(),
        "rig": _plain(rig),
        "provenance": _plain(provenance),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_scorer(path: str | os.PathLike) -> tuple[CandidateScorer, dict[str, Any]]:
    """A saved scorer and its record (``rig``, ``provenance``); ``weights_only`` loading."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InvalidInputError(path, "<file>", "a scorer file", "no such file") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a bad scorer file
        raise InvalidInputError(
            path, "<file>", "a napari-gerbil scorer file", f"unreadable ({exc})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != SCORER_FORMAT:
        raise InvalidInputError(path, "format", f"scorer format {SCORER_FORMAT}", "another file")
    try:
        scorer = CandidateScorer(int(payload["n_features"]), tuple(payload["hidden"]))
        scorer.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise InvalidInputError(path, "state_dict", "the scorer's weights", str(exc)) from None
    scorer.eval()
    return scorer, {"rig": payload.get("rig", {}), "provenance": payload.get("provenance", {})}


def check_rig(record: dict[str, Any], mic_positions_mm, sample_rate_hz: float,
              source: str | os.PathLike | None, tolerance_mm: float = 5.0) -> None:  # fmt: skip
    """Refuse data from a rig the scorer was not trained for (microphones, rate)."""
    rig = record.get("rig", {})
    mics = np.asarray(mic_positions_mm, float)
    trained = np.asarray(rig.get("mic_positions_mm", []), float)
    if trained.shape != mics.shape:
        raise IncompatibleModelError(
            source, "mic_positions_mm",
            f"the {len(trained)} microphones the scorer was trained for", f"{len(mics)}",
            hint="Train a scorer for this rig: napari-gerbil train-scorer --cage YOUR_CAGE.",
        )  # fmt: skip
    far = np.linalg.norm(trained - mics, axis=1)
    if (far > tolerance_mm).any():
        k = int(np.argmax(far))
        raise IncompatibleModelError(
            source, f"mic_positions_mm[{k}]",
            f"within {tolerance_mm:g} mm of the scorer's microphone {trained[k].round(1).tolist()}",
            f"{mics[k].round(1).tolist()} ({far[k]:.1f} mm away)",
            hint="Train a scorer for this rig: napari-gerbil train-scorer --cage YOUR_CAGE.",
        )  # fmt: skip
    rate = float(rig.get("sample_rate_hz", sample_rate_hz))
    if abs(rate - float(sample_rate_hz)) > 1e-6 * rate:
        raise IncompatibleModelError(
            source, "sample_rate_hz", f"{rate:g} Hz like the scorer", f"{sample_rate_hz:g} Hz"
        )


def load_model_scorer(
    model_dir: str | os.PathLike, mic_positions_mm, sample_rate_hz: float,
    source: str | os.PathLike | None = None,
) -> CandidateScorer:  # fmt: skip
    """The scorer of a model directory, checked against the data's rig."""
    path = Path(model_dir) / SCORER_FILE
    if not path.is_file():
        raise InvalidInputError(
            Path(model_dir) / "attribution.yaml", "method",
            f"a method whose files exist ({SCORER_FILE} is missing)", "scorer",
            hint="Train one (napari-gerbil train-scorer) or calibrate another method.",
        )  # fmt: skip
    scorer, record = load_scorer(path)
    check_rig(record, mic_positions_mm, sample_rate_hz, source)
    return scorer


def _plain(value: Any) -> Any:
    """Plain Python values (``weights_only`` loading accepts only those and tensors)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
