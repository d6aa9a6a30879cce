"""``napari-gerbil export`` and ``review-status``: what the review of a session gave.

``export`` writes calls of a session as a VCL training dataset, each labelled with its
animal's position (pose node, mm) at the call: ``--calls reviewed`` the calls a person
attributed, ``confident`` those plus predicted calls assigned to one animal (p >= 0.95) at
probability >= ``--min-probability``, ``all`` every localized call. Every 5th reviewed
call is held out for evaluation unless ``--no-holdout``.

``review-status`` counts calls by state and lists the most uncertain ones to review.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import add_overwrite, nonnegative_int, probability
from napari_gerbil.cli._common import add_quiet
from napari_gerbil.review import CONFIDENT_PROBABILITY, EXPORT_SELECTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` and ``review-status`` subcommands."""
    e = subparsers.add_parser(
        "export",
        help="write a session's calls as a VCL training dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("session", type=Path, help="session file (*.gerbil.h5)")
    e.add_argument("--calls", choices=EXPORT_SELECTIONS, default="reviewed")
    e.add_argument("--out", type=Path, required=True, help="VCL file (.h5) to write")
    e.add_argument("--node", default="0", help="pose node of the label (name or index)")
    e.add_argument("--min-probability", type=probability, default=CONFIDENT_PROBABILITY)
    e.add_argument("--no-holdout", action="store_true", help="export held-out calls too")
    e.add_argument("--training-set", type=Path, default=None, help="merge into this VCL file")
    add_overwrite(e)
    add_quiet(e)
    e.set_defaults(func=_export)
    s = subparsers.add_parser(
        "review-status",
        help="count a session's calls by state; list the most uncertain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("session", type=Path, help="session file (*.gerbil.h5)")
    s.add_argument(
        "-n", "--n-uncertain", type=nonnegative_int, default=10, help="uncertain calls listed"
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_status)


def _export(args: argparse.Namespace) -> int:
    from napari_gerbil.io.checks import open_session
    from napari_gerbil.io.outputs import check_output_path
    from napari_gerbil.progress import TqdmProgress
    from napari_gerbil.review import export_calls

    out = check_output_path(
        args.out, overwrite=args.overwrite, inputs=[args.session, args.training_set]
    )
    session = open_session(args.session)  # its audio and poses present and unchanged
    node: int | str = int(args.node) if args.node.isdigit() else args.node
    with TqdmProgress("export", disable=args.quiet) as bar:
        path, selection = export_calls(
            session,
            out,
            args.calls,
            node=node,
            training_set=args.training_set,
            min_probability=args.min_probability,
            hold_out=not args.no_holdout,
            progress=bar,
        )
    print(
        f"exported {len(selection.rows)} {args.calls} calls -> {path} "
        f"({selection.n_heldout} held out, {selection.n_skipped} without a tracked animal"
        + (
            f", {selection.n_duplicates} already in {args.training_set}: replaced, not repeated)"
            if args.training_set is not None
            else ")"
        )
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    import json

    from napari_gerbil.io.session import load_session
    from napari_gerbil.review import review_status

    status = review_status(load_session(args.session), args.n_uncertain)
    if args.json:
        print(json.dumps(status, indent=2, allow_nan=False))
        return 0
    print(f"Session: {args.session}")
    print(
        f"  calls: {status['n_calls']}, localized: {status['n_localized']}, "
        f"reviewed: {status['n_reviewed']}, model: {status['model_version'] or '-'}"
    )
    for state, count in status["states"].items():
        print(f"  {state + ':':15} {count}")
    if status["most_uncertain"]:
        print("  most uncertain, not reviewed:")
        print("    call   start_s  state        predicted     top_p  set_cm2")
        for c in status["most_uncertain"]:
            top = "-" if c["top_probability"] is None else f"{c['top_probability']:.2f}"
            area = "-" if c["set_area_cm2"] is None else f"{c['set_area_cm2']:.1f}"
            print(
                f"    {c['call_id']:>4} {c['start_s']:9.3f}  {c['state']:<12} "
                f"{c['predicted']:<12} {top:>6} {area:>8}"
            )
    return 0
