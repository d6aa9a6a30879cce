"""A member run's resumable state (``last.pt``) and its per-epoch ``metrics.jsonl``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from napari_gerbil.io.atomic import atomic_path, atomic_write_text


def save_state(path: Path, net, optimizer, **state: Any) -> None:
    """Write the resumable state (weights, optimizer, counters) atomically to ``path``."""
    payload = {"state_dict": net.state_dict(), "optimizer": optimizer.state_dict(), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def trim_metrics(path: Path, epochs_done: int) -> None:
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
