"""Build the demo model's learned scorer (``src/napari_gerbil/training/demo_scorer.pt``).

The demo ensemble (``napari-gerbil localize --model demo``) is trained when a user
first asks for it; its scorer would take too long to train then, so it ships in the
package (a few hundred kB) and this script regenerates it::

    .venv/bin/python scripts/build_demo_scorer.py --chunks 30 --cache scorer_chunks/

It renders ``--chunks`` x 2000 fresh engine calls with plausible callers in the ``paper``
cage (chunk k from seed 1000 + k, so an interrupted run resumes from ``--cache``),
trains the scorer (:func:`napari_gerbil.training.scorer.train_scorer`) and prints its
share of held-out engine calls whose caller ranks first against a neighbour, next to
the steered response's. About 65 s per chunk on 2 free CPU cores; ``--device cuda``
renders on a GPU.
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from pathlib import Path

from napari_gerbil.io.cage import builtin_cage
from napari_gerbil.model.scorer import save_scorer, score_candidates
from napari_gerbil.training.demo import DEMO_CAGE, DEMO_SCORER_PATH
from napari_gerbil.training.scorer import (
    CandidateSet,
    engine_candidate_set,
    ranked_first,
    train_scorer,
)

CHUNK_CALLS = 2000
TEST_SEED = 999


def _chunk(k: int, cache: Path | None, device: str) -> CandidateSet:
    path = None if cache is None else cache / f"c{k:03d}.pkl"
    if path is not None and path.is_file():
        with open(path, "rb") as handle:
            return pickle.load(handle)  # noqa: S301 - our own cache, written below
    part = engine_candidate_set(DEMO_CAGE, CHUNK_CALLS, seed=1000 + k, device=device)
    if path is not None:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            pickle.dump(part, handle)
        os.replace(tmp, path)
    return part


def main() -> None:
    """Render (or reuse) the chunks, train, judge on held-out calls, save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=30, help="x 2000 training calls")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=None, help="keep rendered chunks here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=DEMO_SCORER_PATH)
    args = parser.parse_args()
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train = CandidateSet.concatenate([_chunk(k, args.cache, args.device)
                                      for k in range(args.chunks)])  # fmt: skip
    rendered = time.perf_counter() - t0
    scorer = train_scorer(train, epochs=args.epochs, device=args.device, log=print)
    test = engine_candidate_set(DEMO_CAGE, 1000, seed=TEST_SEED, device=args.device)
    scores = score_candidates(scorer, test.features, test.valid)
    pair = [0, 1]  # the caller and its nearest (hard) negative, 1-30 cm away
    srp_first = ranked_first(test.steered_response[:, pair])
    scorer_first = ranked_first(scores[:, pair])
    cage = builtin_cage(DEMO_CAGE)
    save_scorer(
        scorer,
        args.out,
        rig={"cage": cage.name, "mic_positions_mm": cage.mics, "dims_mm": cage.dims,
             "sample_rate_hz": 125000.0},
        provenance={"calls": len(train), "epochs": args.epochs, "caller": "plausible",
                    "script": "scripts/build_demo_scorer.py",
                    "held_out_ranked_first": {"srp": srp_first, "scorer": scorer_first}},
    )  # fmt: skip
    print(
        f"{len(train)} calls rendered in {rendered:.0f} s, trained in "
        f"{time.perf_counter() - t0 - rendered:.0f} s; held-out caller vs neighbour ranked "
        f"first: steered response {srp_first:.1%}, scorer {scorer_first:.1%} "
        f"(n = {len(test)}) -> {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)"
    )


if __name__ == "__main__":
    main()
