"""Where napari-gerbil keeps generated data (sample sessions, demo ensembles)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Directory for generated sample data and demo models.

    ``$NAPARI_GERBIL_HOME`` if set, else ``$XDG_CACHE_HOME/napari-gerbil``, else
    ``~/.cache/napari-gerbil``. Created on first use.
    """
    env = os.environ.get("NAPARI_GERBIL_HOME")
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "napari-gerbil"
    root.mkdir(parents=True, exist_ok=True)
    return root
