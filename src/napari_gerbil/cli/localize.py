"""``napari-gerbil localize``: localize and attribute the calls of a session file.

Each call gets the ensemble's mixture, its 95% set and the animal inside it, written
into the session (atomically, every ``--save-every`` seconds and at the end). User
attributions are never touched. Interrupted (Ctrl-C, a kill), it keeps what was saved,
and running it again continues with the calls the same model has not localized yet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import float_range, int_range
from napari_gerbil.cli._common import add_quiet


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``localize`` subcommand."""
    p = subparsers.add_parser(
        "localize", help="localize and attribute a session's calls", description=__doc__
    )
    p.add_argument("session", type=Path, help="session file (*.gerbil.h5), updated in place")
    p.add_argument("--model", type=Path, required=True, help="ensemble directory")
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


def _command(args: argparse.Namespace) -> int:
    from napari_gerbil.io.session import load_session
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.pipeline import localize_session
    from napari_gerbil.progress import TqdmProgress

    load_session(args.session)  # a bad session fails before the model loads
    truth = None
    if args.truth is not None:
        from napari_gerbil.simulate.session import load_truth

        truth = load_truth(args.truth)  # a bad truth file fails before any work
    ensemble = load_ensemble(args.model, device=args.device, field="--model")
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
    if truth is not None:
        from napari_gerbil.evaluate.attribution import score_attribution

        score = score_attribution(load_session(args.session), truth)
        print(f"against the truth: {score.summary()}")
    return 0
