"""Sample data: a small synthetic session, simulated on first use into ``cache_dir()``."""

from __future__ import annotations

import sys
from pathlib import Path

from napari_gerbil.io.session import is_session_file
from napari_gerbil.paths import cache_dir

#: Folder (under cache_dir()) and file name of the sample session.
SAMPLE_FOLDER = "sample_session"
SAMPLE_NAME = "sample"
#: Length of the sample recording.
SAMPLE_DURATION_S = 20.0


def sample_session_path(terminal: bool = False) -> Path:
    """Path of the sample session, simulated (with a napari progress bar) if missing.

    ``terminal``: also show tqdm bars on stderr (``napari-gerbil demo``).
    """
    from napari.utils import progress

    from napari_gerbil.simulate.session import SessionConfig, simulate_session

    folder = cache_dir() / SAMPLE_FOLDER
    path = folder / f"{SAMPLE_NAME}.gerbil.h5"
    if is_session_file(path):
        return path
    with progress(total=0, desc="napari-gerbil: simulating the sample session (first use)"):
        if terminal:
            print("napari-gerbil: simulating the sample session (first use)", file=sys.stderr)
        simulate_session(
            folder, SessionConfig(duration_s=SAMPLE_DURATION_S), name=SAMPLE_NAME, progress=terminal
        )
    return path


def sample_session() -> list[tuple]:
    """Napari sample-data command: layer data of the sample session."""
    from napari_gerbil._napari._reader import read_session

    return read_session(sample_session_path())
