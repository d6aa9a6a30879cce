"""napari reader for session files (``*.gerbil.h5`` marked as sessions)."""

from __future__ import annotations

from napari_gerbil.io.session import SESSION_SUFFIX, is_session_file, load_session


def get_reader(path):
    """Return a reader for a napari-gerbil session file, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = str(path)
    if not path.endswith(SESSION_SUFFIX) or not is_session_file(path):
        return None
    return read_session


def read_session(path) -> list[tuple]:
    """Layer data (video, tracks, arena) of a session file."""
    from napari_gerbil._napari._layers import session_layer_data

    if isinstance(path, list):
        path = path[0]
    return session_layer_data(load_session(path))
