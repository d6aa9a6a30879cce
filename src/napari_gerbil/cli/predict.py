"""``napari-gerbil predict``: localize every call of a VCL dataset or a session file.

Writes an HDF5 prediction file with vocalocator's names (``point_predictions``,
``confidence_set_areas``, ``location_in_confidence_set`` when the truth is known,
``raw_model_output``) plus ours; see :mod:`napari_gerbil.model.predict`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict", help="localize the calls of a dataset or session", description=__doc__
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="model directory")
    src.add_argument("--baseline", choices=("muse", "gcc-phat"), help="classical localizer")
    p.add_argument("--data", type=Path, required=True, help="VCL dataset or session file")
    p.add_argument("--out", type=Path, required=True, help="prediction file (.h5) to write")
    p.add_argument("--mass", type=float, default=0.95, help="confidence set probability")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="torch device for the model")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    import numpy as np

    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.model.predict import predict_file
    from napari_gerbil.progress import TqdmProgress

    ensemble = load_ensemble(args.model, device=args.device) if args.model else None
    with TqdmProgress("predict") as progress:
        result = predict_file(
            args.data,
            args.out,
            ensemble=ensemble,
            baseline=args.baseline,
            mass=args.mass,
            batch_size=args.batch_size,
            progress=progress,
        )
    line = f"{len(result.point_mm)} calls -> {args.out}"
    if result.errors_mm is not None and len(result.errors_mm):
        line += f"; median error {np.median(result.errors_mm):.1f} mm"
    if result.in_set is not None and len(result.in_set):
        line += f"; {args.mass:.0%} set coverage {result.in_set.mean():.3f}"
    print(line)
    return 0
