"""napari reader for session files (``*.gerbil.h5`` marked as sessions).

napari's builtin reader also claims ``*.h5``: with two readers File > Open shows a
chooser (and the builtin one fails on a session). :func:`prefer_this_reader` records
napari-gerbil as napari's preferred reader of ``*.gerbil.h5`` (napari's own setting, the
one its chooser's "Remember this choice" writes); the plugin calls it when it is activated
(any of its commands: the dock, the sample, this reader) and when the dock opens.
Before any of that (a napari that never ran the plugin) napari's chooser preselects the
first reader by display name: the manifest's ``display_name`` *Napari-gerbil* sorts
before *napari builtins*, so OK opens the session with this reader (and activates it).
"""

from __future__ import annotations

from napari_gerbil.io.session import SESSION_SUFFIX, is_session_file, load_session

#: The plugin's name (napari.yaml) and the file pattern it is the preferred reader of.
PLUGIN_NAME = "napari-gerbil"
READER_PATTERN = "*" + SESSION_SUFFIX


def prefer_this_reader() -> bool:
    """Make napari-gerbil napari's reader of ``*.gerbil.h5`` (File > Open, drag and drop).

    Returns True if the setting changed. napari saves its settings: later windows too.
    """
    from napari.settings import get_settings

    plugins = get_settings().plugins
    if plugins.extension2reader.get(READER_PATTERN) == PLUGIN_NAME:
        return False
    plugins.extension2reader = {**plugins.extension2reader, READER_PATTERN: PLUGIN_NAME}
    return True


def activate(context=None) -> None:
    """npe2's ``on_activate`` hook: the first time a napari-gerbil command runs."""
    prefer_this_reader()


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
