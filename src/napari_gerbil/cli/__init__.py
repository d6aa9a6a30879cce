"""The ``napari-gerbil`` command line (no Qt imported unless a command opens napari)."""
