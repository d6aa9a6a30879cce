"""``napari-gerbil localize``: localize and attribute the calls of a session file.

Each call gets the ensemble's mixture and its 95% set, and a calibrated probability per
tracked animal (:mod:`napari_gerbil.attribute`; assigned at p >= 0.95), written
into the session (atomically, every ``--save-every`` seconds and at the end). User
attributions are never touched. Interrupted (Ctrl-C, a kill), it keeps what was saved,
and running it again continues with the calls the same model has not localized yet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import add_overwrite, float_range, int_range, seed
from napari_gerbil.cli._common import add_quiet, resolve_model_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``localize`` subcommand."""
    p = subparsers.add_parser(
        "localize", help="localize and attribute a session's calls", description=__doc__
    )
    p.add_argument("session", type=Path, help="session file (*.gerbil.h5), updated in place")
    p.add_argument(
        "--model",
        required=True,
        help="ensemble directory, or 'demo' (the built-in demo ensemble, built once)",
    )
    p.add_argument(
        "--batch-size", type=int_range(1, 65536), default=16, help="calls per forward pass"
    )
    p.add_argument("--redo", action="store_true", help="localize calls already done again")
    p.add_argument(
        "--save-every",
        type=float_range(0.0, 1e6, low_open=True),
        default=30.0,
        help="seconds between saves",
    )
    p.add_argument("--device", default="cpu", help="torch device of the model")
    p.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="ground truth of a simulated session (*.truth.h5): print how many calls "
        "were assigned and how many of those to the right animal",
    )
    add_quiet(p)
    p.set_defaults(func=_command)

    c = subparsers.add_parser(
        "calibrate",
        help="fit a model's attribution calibration on simulated calls in its cage",
        description="Fit how candidate scores (steered response at each tracked animal, "
        "the ensemble's density there) become calibrated probabilities, on fresh "
        "simulated calls in the cage; writes MODEL/attribution.yaml. Every method is "
        "judged on held-out calls; the best is kept.",
    )
    _add_model_and_cage(c)
    c.add_argument(
        "--calls", type=int_range(64, 10**6), default=2048, help="simulated calls to fit on"
    )
    c.add_argument("--seed", type=seed, default=7, help="seed of the simulated calls")
    add_overwrite(c)
    add_quiet(c)
    c.set_defaults(func=_calibrate)
    t = subparsers.add_parser(
        "train-scorer",
        help="train the learned audio-pose scorer for a model's rig, then recalibrate",
        description="Render fresh simulated calls with plausible callers in the cage, train "
        "the scorer of (call, candidate animal) pairs (time differences, levels between "
        "microphones, the animal's heading), save MODEL/scorer.pt and refit "
        "MODEL/attribution.yaml (every method judged on held-out calls; the best is kept).",
    )
    _add_model_and_cage(t)
    t.add_argument(
        "--calls", type=int_range(64, 10**7), default=20000, help="simulated training calls"
    )
    t.add_argument("--epochs", type=int_range(1, 1000), default=20, help="passes over the calls")
    t.add_argument(
        "--calibration-calls",
        type=int_range(64, 10**6),
        default=2048,
        help="simulated calls the calibration is fitted on",
    )
    t.add_argument("--seed", type=seed, default=11, help="seed of the simulated calls")
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="render and train on")
    add_overwrite(t)
    add_quiet(t)
    t.set_defaults(func=_train_scorer)


def _add_model_and_cage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="ensemble directory, or 'demo'")
    parser.add_argument("--cage", default="paper", help="cage file or built-in cage name")


def _print_figures(figures: dict) -> None:
    """Every method's held-out figures, a line each."""
    for method, f in figures.items():
        print(
            f"{method:>9}: held-out NLL {f['nll']:.3f}, picked right {f['picked_right']:.1%}, "
            f"assigned {f['assigned']:.1%}, right {f['right']:.1%} (n={f['n']})"
        )


def _command(args: argparse.Namespace) -> int:
    from napari_gerbil.io.session import load_session
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.pipeline import localize_session
    from napari_gerbil.progress import TqdmProgress

    session = load_session(args.session)  # a bad session fails before the model loads
    truth = None
    if args.truth is not None:
        from napari_gerbil.evaluate.attribution import check_truth_matches
        from napari_gerbil.simulate.truth import load_truth

        truth = load_truth(args.truth)  # a bad truth file fails before any work
        check_truth_matches(session, truth, args.truth)  # another session's: refused
    ensemble = load_ensemble(
        resolve_model_dir(args.model, args.quiet), device=args.device, field="--model"
    )
    with TqdmProgress("localize", disable=args.quiet) as bar:
        summary = localize_session(
            args.session,
            ensemble,
            redo=args.redo,
            batch_size=args.batch_size,
            save_every_s=args.save_every,
            progress=bar,
        )
    print(
        f"localized {summary.n_localized} calls ({summary.n_skipped} already done) "
        f"of {summary.n_calls} with {summary.model_version} -> {summary.path}"
    )
    session = load_session(args.session)
    if session.tracks is None or not session.animal_names:
        print("no animals to attribute to: the session has no pose tracks (calls localized only)")
    if truth is not None:
        from napari_gerbil.evaluate.attribution import score_attribution

        score = score_attribution(session, truth)
        print(f"against the truth: {score.summary()}")
        print(score.distance_table())
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from napari_gerbil.attribute import CALIBRATION_FILE
    from napari_gerbil.io.cage import load_cage
    from napari_gerbil.progress import TqdmProgress
    from napari_gerbil.training.attribution import write_calibration

    model = resolve_model_dir(args.model, args.quiet)
    cage = load_cage(args.cage)
    if (model / CALIBRATION_FILE).exists() and not args.overwrite:
        from napari_gerbil.errors import InvalidInputError

        raise InvalidInputError(
            model / CALIBRATION_FILE, "output", "a new file", "an existing calibration",
            hint="Pass --overwrite to fit it again.",
        )  # fmt: skip
    with TqdmProgress("calibrate", disable=args.quiet) as bar:
        figures = write_calibration(
            model, cage, args.calls, seed=args.seed, overwrite=args.overwrite, progress=bar
        )
    _print_figures(figures)
    print(f"wrote {model / CALIBRATION_FILE}")
    return 0


def _train_scorer(args: argparse.Namespace) -> int:
    from napari_gerbil.progress import TqdmProgress
    from napari_gerbil.training.scorer import write_scorer

    model = resolve_model_dir(args.model, args.quiet)
    with TqdmProgress("train-scorer", disable=args.quiet) as bar:
        result = write_scorer(
            model, args.cage, args.calls, epochs=args.epochs,
            calibration_calls=args.calibration_calls, seed=args.seed, device=args.device,
            overwrite=args.overwrite, progress=bar,
        )  # fmt: skip
    _print_figures(result["figures"])
    print(
        f"scorer trained on {result['n_calls']} calls, {result['epochs']} epochs, "
        f"{result['wall_s']:.0f} s -> {model / 'scorer.pt'}; calibration -> "
        f"{model / 'attribution.yaml'}"
    )
    return 0
