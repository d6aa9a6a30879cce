"""How often the steered response ranks the caller first, by call type and cage.

Reads the sessions the attribution panel simulated (``<cage>_2animals_seed<k>`` folders
under ``PANEL_DIR``, e.g. ``benchmark_out/quick/attribution``) and prints, per call type
(volume pooled) and cage, the share of calls whose caller has the highest steered
response among the tracked animals (every animal tracked)::

    python scripts/attribution_by_call_type.py PANEL_DIR
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from napari_gerbil.evaluate.attribution import match_truth_calls
from napari_gerbil.evaluate.attribution_panel import _session_scores


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("panel_dir", type=Path)
    args = parser.parse_args()
    right_by = collections.defaultdict(list)
    for folder in sorted(args.panel_dir.glob("*_2animals_seed*")):
        scores = _session_scores(folder, None)
        match = match_truth_calls(scores["session"], scores["truth"])
        ok = (match >= 0) & np.isfinite(scores["srp"]).all(axis=1)
        caller = np.asarray(scores["truth"].animal)[match[ok]]
        kinds = np.asarray(scores["truth"].stimulus_class)[match[ok]]
        right = scores["srp"][ok].argmax(axis=1) == caller
        cage = folder.name.split("_2animals")[0]
        for kind, r in zip(kinds, right, strict=True):
            right_by[(cage, str(kind).rsplit("_", 1)[0])].append(bool(r))
    cages = sorted({c for c, _ in right_by})
    print("call type | " + " | ".join(cages))
    for kind in sorted({k for _, k in right_by}):
        cells = [right_by[(c, kind)] for c in cages]
        print(kind + " | " + " | ".join(
            f"{100 * np.mean(v):.0f}% (n={len(v)})" if v else "-" for v in cells))  # fmt: skip


if __name__ == "__main__":
    main()
