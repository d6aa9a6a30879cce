"""``napari-gerbil predict``: localize every call of a VCL dataset or a session file.

Writes an HDF5 prediction file with vocalocator's names (``point_predictions``,
``confidence_set_areas``, ``location_in_confidence_set`` when the truth is known,
``raw_model_output``) plus ours; see :mod:`napari_gerbil.model.predict`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import add_overwrite, positive_int, probability_open
from napari_gerbil.cli._common import resolve_model_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict", help="localize the calls of a dataset or session", description=__doc__
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="model directory, or 'demo' (the built-in demo ensemble)")
    src.add_argument("--baseline", choices=("muse", "gcc-phat"), help="classical localizer")
    p.add_argument("--data", type=Path, required=True, help="VCL dataset or session file")
    p.add_argument("--out", type=Path, required=True, help="prediction file (.h5) to write")
    p.add_argument("--mass", type=probability_open, default=0.95, help="confidence set probability")
    p.add_argument("--batch-size", type=positive_int, default=64)
    add_overwrite(p)
    p.add_argument("--device", default="cpu", help="torch device for the model")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:

    from napari_gerbil.io.inputs import check_input_file
    from napari_gerbil.io.outputs import check_output_path
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.model.predict import predict_file
    from napari_gerbil.progress import TqdmProgress

    # cheap checks first: a bad --data or --out fails before the model is loaded
    check_input_file(args.data, "--data", "VCL dataset or session file")
    check_output_path(args.out, overwrite=args.overwrite, inputs=[args.data])
    ensemble = (
        load_ensemble(resolve_model_dir(args.model), device=args.device, field="--model")
        if args.model
        else None
    )
    with TqdmProgress("predict") as progress:
        result = predict_file(
            args.data,
            args.out,
            ensemble=ensemble,
            baseline=args.baseline,
            mass=args.mass,
            batch_size=args.batch_size,
            progress=progress,
            overwrite=args.overwrite,
        )
    print(summary_line(result, args.out, args.mass, _arena_of(args.data, ensemble)))
    return 0


def _arena_of(data, ensemble):
    """The arena size of the data (or the model), for flagging estimates outside it."""
    from napari_gerbil.io.session import is_session_file, load_session
    from napari_gerbil.io.vcl import VCLDataset

    if is_session_file(data):
        return load_session(data).arena.dims_mm
    dims = VCLDataset(data).arena_dims_mm
    return dims if dims is not None or ensemble is None else ensemble.arena_dims_mm


def summary_line(result, out, mass: float, arena_dims_mm) -> str:
    """One line: calls written, and (with ground truth) error and coverage.

    Error and coverage are of the estimates inside the arena; estimates far outside it
    are counted apart, never averaged in.
    """
    import numpy as np

    from napari_gerbil.model.predict import OUTSIDE_MARGIN_MM

    n = len(result.point_mm)
    line = f"{n} calls -> {out}"
    inside = np.ones(n, bool)
    if arena_dims_mm is not None and n:
        outside = result.outside_arena(arena_dims_mm)
        inside = ~outside
        if outside.any():
            line += (
                f"; WARNING {int(outside.sum())} of {n} estimates lie more than "
                f"{OUTSIDE_MARGIN_MM:g} mm outside the arena (a failed model, not a result)"
            )
    if result.errors_mm is not None and inside.any():
        line += f"; median error {np.median(result.errors_mm[inside]):.1f} mm"
    if result.in_set is not None and inside.any():
        line += f"; {mass:.0%} set coverage {result.in_set[inside].mean():.3f}"
    if n and not inside.any():
        line += "; no estimate inside the arena: retrain the model"
    return line
