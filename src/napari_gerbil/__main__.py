import sys

from napari_gerbil.cli.main import main

sys.exit(main())
