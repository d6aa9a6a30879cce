"""``python -m napari_gerbil`` runs the command line."""

import sys

from napari_gerbil.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
