"""napari-gerbil: which rodent made each vocal call.

The core (``napari_gerbil.io``, ``simulate``, ``signal``, ``model``, ``training``,
``baselines``, ``evaluate``, ``attribute``) imports without Qt or napari. The napari
front lives in ``napari_gerbil._napari``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-gerbil")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from napari_gerbil.errors import GerbilError, IncompatibleModelError, InvalidInputError

__all__ = ["GerbilError", "IncompatibleModelError", "InvalidInputError", "__version__"]
