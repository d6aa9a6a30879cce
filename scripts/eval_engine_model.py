"""Judge a model on calls at positions no training run draws from; MUSE on the same calls.

Usage::

    python scripts/eval_engine_model.py MODEL_DIR [N_CALLS] [CAGE]

Prints, for the nominal cage and for randomly perturbed rooms: the model's median and
90th-percentile error, MUSE's median and the centre guess's median (mm).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from napari_gerbil.evaluate.scaling import TEST_SEED, engine_test_set
from napari_gerbil.io.cage import load_cage
from napari_gerbil.model.ensemble import load_ensemble
from napari_gerbil.model.predict import localize_with_baseline


def main() -> None:
    """Print the scores of the nominal and the perturbed test sets."""
    model = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    cage = load_cage(sys.argv[3] if len(sys.argv) > 3 else "paper")
    ensemble = load_ensemble(model)
    for name, randomize in (("nominal", False), ("randomized", True)):
        calls, truth = engine_test_set(cage, n, TEST_SEED + 1, randomize=randomize)
        err = np.linalg.norm(ensemble.predict(calls).point_mm - truth, axis=-1)
        muse = localize_with_baseline("muse", calls, cage.mics, 125000.0, cage.dims, truth_mm=truth)
        row = {
            "n": n,
            "median_mm": float(np.median(err)),
            "p90_mm": float(np.percentile(err, 90)),
            "muse_median_mm": float(np.median(muse.errors_mm)),
            "centre_guess_median_mm": float(np.median(np.linalg.norm(truth, axis=-1))),
        }
        print(name, json.dumps(row))


if __name__ == "__main__":
    main()
