"""Does reviewing teach the scorer? Truth stands in for the reviewer, in a shifted room.

    .venv/bin/python scripts/measure_review_loop.py --model demo --room paper-diffuse \
        --out review_loop --reviewed 100 300 --test-seeds 512 513

Simulates 2-animal sessions in ``--room`` (seeds 900, 901, ...) until enough calls exist,
takes their first ``N`` calls (in time order across sessions) as reviewed with the true
caller, fine-tunes the model's scorer on them (:func:`napari_gerbil.training.scorer.
train_scorer`, as a fine-tune does), and scores held-out sessions (``--test-seeds``, 2
and 3 animals as the attribution panel simulates them) with the model's calibrated
scale: the share of calls assigned (p >= 0.95) and right, before and after each ``N``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np


def main() -> None:
    """Simulate, fine-tune, judge, print."""
    from napari_gerbil.attribute import assign, load_calibration, softmax_probabilities
    from napari_gerbil.cli._common import resolve_model_dir
    from napari_gerbil.evaluate.attribution import match_truth_calls
    from napari_gerbil.evaluate.attribution_panel import _session, _session_scores
    from napari_gerbil.io.session import load_session
    from napari_gerbil.io.tracks import load_poses
    from napari_gerbil.model.scorer import SCORER_FILE, load_scorer
    from napari_gerbil.simulate.truth import load_truth
    from napari_gerbil.training.scorer import CandidateSet, session_candidate_set, train_scorer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--room", default="paper-diffuse")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reviewed", nargs="+", type=int, default=[100, 300])
    parser.add_argument("--test-seeds", nargs="+", type=int, default=[512, 513])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    t0 = time.perf_counter()
    model = resolve_model_dir(args.model)
    scorer, _ = load_scorer(model / SCORER_FILE)
    calibration = load_calibration(model)
    scale = calibration.scorer_scale if calibration.uses_scorer else 1.0
    tests = [_session(args.out, args.room, 2 + (s % 2 == 1), 120.0, s) for s in args.test_seeds]

    def judge(candidate_scorer) -> dict[str, float]:
        assigned = right = total = 0
        for folder in tests:
            scores = _session_scores(folder, None, candidate_scorer)
            match = match_truth_calls(scores["session"], scores["truth"])
            ok = match >= 0
            probs = softmax_probabilities(scale * scores["scorer_score"][ok])
            codes = assign(probs, calibration.assign_probability)
            caller = scores["truth"].animal[match[ok]]
            assigned += int((codes >= 0).sum())
            right += int((codes[codes >= 0] == caller[codes >= 0]).sum())
            total += int(ok.sum())
        return {"n": total, "assigned": assigned / total, "right": right / max(assigned, 1)}

    parts, n_calls, seed = [], 0, 900
    while n_calls < max(args.reviewed):
        folder = _session(args.out, args.room, 2, 120.0, seed)
        session = load_session(folder / "session.gerbil.h5")
        truth = load_truth(folder / "session.truth.h5")
        match = match_truth_calls(session, truth)
        rows = np.flatnonzero(match >= 0)
        assert session.tracks is not None
        poses = load_poses(session.tracks.path)
        parts.append(session_candidate_set(session, poses, rows, truth.animal[match[rows]]))
        n_calls += len(rows)
        seed += 1
    reviewed = CandidateSet.concatenate(parts)
    before = judge(scorer)
    print(f"{args.room}, held-out sessions {args.test_seeds}: before: {_fmt(before)}")
    for n in args.reviewed:
        taught = train_scorer(reviewed.take(np.arange(n)), epochs=args.epochs,
                              learning_rate=5e-4, curriculum=False, batch_size=32,
                              init=copy.deepcopy(scorer))  # fmt: skip
        after = judge(taught)
        gain = 100 * (after["assigned"] - before["assigned"])
        print(f"after {n} reviewed calls: {_fmt(after)} ({gain:+.1f} points assigned)")
    print(f"{time.perf_counter() - t0:.0f} s")


def _fmt(figures: dict[str, float]) -> str:
    return (f"{100 * figures['assigned']:.1f}% of {figures['n']} calls assigned, "
            f"{100 * figures['right']:.1f}% right")  # fmt: skip


if __name__ == "__main__":
    main()
